"""Fuzz run (not CI): mutated export archives through ``Gallery.import_file`` (issue 14 acceptance).

Seed: a 12-image gallery of synthetic faces (unit embeddings of a 16-d test engine), exported as a
signed archive. Each of the ``--n`` inputs is that archive with one seeded mutation:

* ``bytes``: 1-64 random byte flips, a truncation or appended garbage in the zip file itself;
* ``field``: one value anywhere in a record (person, image, a face, their nested lists) replaced by
  a hostile value (huge or negative numbers, NaN/inf, strings with NUL, "/" or 100 k characters,
  objects where text is expected, ...), every hash recomputed (an attacker who knows the format);
* ``manifest``: one manifest value replaced the same way, hashes recomputed;
* ``crop``: the JPEG crop of a face byte-flipped, truncated or swapped for a 30000 px header, its
  hash recomputed; ``embedding``: an embedding scaled, NaN, cut or lengthened, hash recomputed;
* ``members``: members dropped, duplicated, renamed or added.

Mutated archives are unsigned or carry a signature that no longer matches; they are imported with
``allow_unsigned=True`` so that the validation behind the signature check is reached (a bad signature
is still refused). Outcome per input: ``ok``, a typed error code (``FasFinderError``), or ``crash``
(any other exception). Every 250 inputs the target gallery is checked: its index consistent with
SQLite and no search similarity above 1.

    python bench/fuzz_archives.py --n 10000 --out docs/results/fuzz_archives.json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import sys
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fasfinder.errors import FasFinderError  # noqa: E402
from fasfinder.faces import Face  # noqa: E402
from fasfinder.gallery import Gallery  # noqa: E402

ENGINE, DIM = "fuzz-vec", 16
HOSTILE = [None, True, -1, 0, 2**70, -2**63, 1e308, float("nan"), float("inf"), "", "x" * 100_000, "a/b", "\0",
           "../../etc/passwd", {"a": 1}, [], [1, 2, 3], [[1e9, 1e9]], "é" * 1000, 3.5, "1", {"$": [None]}]


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True).encode("ascii")


def seed_archive(work: Path) -> Path:
    rng = np.random.default_rng(0)
    rgb = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    lm = np.full((68, 2), 32.0, np.float32)
    vecs = rng.standard_normal((12, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with Gallery(work / "src.db", user="fuzz") as g:
        for i in range(12):
            face = Face(box=(16, 16, 48, 48), landmarks=lm, shape5=lm[:5].copy(), score=1.0, detector="test")
            g.add_image(label=f"person {i % 4}", path=f"p{i}.png", sha256=f"sha{i}", width=64, height=64, rgb=rgb,
                        faces=[face], embeddings={ENGINE: vecs[i:i + 1]}, case_id=f"case-{i % 3}")
        g.export(work / "seed.zip")
    return work / "seed.zip"


def _write(dst: Path, members: list[tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)


def _rehashed(recs: list[dict], manifest: dict) -> list[tuple[str, bytes]]:
    out = [_canonical(r) + b"\n" for r in recs]
    manifest["record_sha256"] = [_sha(x) for x in out]
    manifest["records_sha256"] = _sha(b"".join(out))
    return [("records.jsonl", b"".join(out)), ("manifest.json", json.dumps(manifest, allow_nan=True).encode())]


def _slots(obj, path=()):
    """Every (container, key) inside a JSON value."""

    if isinstance(obj, dict):
        for k, v in obj.items():
            yield obj, k
            yield from _slots(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield obj, i
            yield from _slots(v, path + (i,))


def mutate(seed: bytes, rnd: random.Random, dst: Path) -> str:
    kind = rnd.choice(["bytes", "field", "field", "manifest", "crop", "embedding", "members"])
    if kind == "bytes":
        b = bytearray(seed)
        how = rnd.choice(["flip", "truncate", "append"])
        if how == "flip":
            for _ in range(rnd.randint(1, 64)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
        elif how == "truncate":
            b = b[: rnd.randrange(len(b))]
        else:
            b += os.urandom(rnd.randint(1, 4096))
        dst.write_bytes(bytes(b))
        return f"bytes:{how}"
    with zipfile.ZipFile(__import__("io").BytesIO(seed)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        recs = [json.loads(line) for line in zf.read("records.jsonl").splitlines()]
    if kind == "field":
        rec = rnd.choice(recs)
        slots = list(_slots(rec))
        container, key = rnd.choice(slots)
        container[key] = rnd.choice(HOSTILE)
        _write(dst, _rehashed(recs, manifest))
        return f"field:{key}"
    if kind == "manifest":
        slots = [s for s in _slots(manifest) if s[1] not in ("record_sha256", "records_sha256")]
        container, key = rnd.choice(slots)
        container[key] = rnd.choice(HOSTILE)
        members = _rehashed(recs, manifest)
        _write(dst, members)
        return f"manifest:{key}"
    face = rnd.choice(recs)["faces"][0]
    if kind == "crop":
        blob = bytearray(base64.b64decode(face["crop"]))
        how = rnd.choice(["flip", "truncate", "bomb"])
        if how == "flip":
            for _ in range(rnd.randint(1, 32)):
                blob[rnd.randrange(len(blob))] = rnd.randrange(256)
        elif how == "truncate":
            blob = blob[: rnd.randrange(1, len(blob))]
        else:  # a baseline JPEG header claiming 30000 x 30000 pixels
            i = blob.find(b"\xff\xc0")
            if i > 0:
                blob[i + 5:i + 9] = (30000).to_bytes(2, "big") * 2
        face["crop"] = base64.b64encode(bytes(blob)).decode()
        face["crop_sha256"] = _sha(bytes(blob))
        _write(dst, _rehashed(recs, manifest))
        return f"crop:{how}"
    if kind == "embedding":
        raw = np.frombuffer(base64.b64decode(face["embeddings"][ENGINE]), np.float32).copy()
        how = rnd.choice(["scale", "nan", "cut", "longer", "zero"])
        raw = {"scale": lambda v: v * rnd.choice([10.0, 1e30, -3.0, 1.01]), "nan": lambda v: v * np.nan,
               "cut": lambda v: v[: rnd.randrange(len(v))], "longer": lambda v: np.concatenate([v, v]),
               "zero": lambda v: v * 0}[how](raw).astype(np.float32)
        face["embeddings"][ENGINE] = base64.b64encode(raw.tobytes()).decode()
        face["embeddings_sha256"][ENGINE] = _sha(raw.tobytes())
        _write(dst, _rehashed(recs, manifest))
        return f"embedding:{how}"
    members = _rehashed(recs, manifest)
    how = rnd.choice(["drop", "duplicate", "rename", "extra"])
    if how == "drop":
        members.pop(rnd.randrange(len(members)))
    elif how == "duplicate":
        members.append(rnd.choice(members))
    elif how == "rename":
        i = rnd.randrange(len(members))
        members[i] = (rnd.choice(["../evil", "/abs", "records.jsonl/x", "MANIFEST.JSON", "a" * 300]), members[i][1])
    else:
        members.append((f"extra{rnd.randrange(100)}.bin", os.urandom(rnd.randint(1, 2048))))
    _write(dst, members)
    return f"members:{how}"


def check_target(g: Gallery, rng: np.random.Generator) -> str | None:
    try:
        if g.counts()["faces"] == 0:
            return None
        rep = g.verify_index(ENGINE)
        if not rep.get("consistent"):
            return f"index inconsistent: {rep}"
        q = rng.standard_normal((4, DIM)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        for hits in g.search(ENGINE, q, 5):
            if any(h.similarity > 1.0 + 1e-6 for h in hits):
                return "similarity above 1"
    except Exception as exc:  # noqa: BLE001 - the check itself must report, not stop the run
        return f"check failed: {type(exc).__name__}: {exc}"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fasfuzz-archives-"))
    os.environ.setdefault("FASFINDER_CONFIG_DIR", str(work / "config"))
    seed = seed_archive(work).read_bytes()
    rnd, rng = random.Random(args.seed), np.random.default_rng(args.seed)
    outcomes, kinds, accepted, crashes, checks = Counter(), Counter(), Counter(), [], []
    t0 = time.perf_counter()
    target = Gallery(work / "target.db", user="fuzz")
    try:
        for i in range(args.n):
            path = work / "in.zip"
            kind = mutate(seed, rnd, path)
            kinds[kind.split(":")[0]] += 1
            try:
                res = target.import_file(path, allow_unsigned=True)
                outcomes["ok"] += 1
                if res.get("images"):  # something new went in: which mutation let it through
                    accepted[kind] += 1
            except FasFinderError as exc:
                outcomes[exc.code] += 1
            except Exception as exc:  # noqa: BLE001 - a crash is what the run counts
                outcomes["crash"] += 1
                if len(crashes) < 20:
                    crashes.append({"i": i, "kind": kind, "error": f"{type(exc).__name__}: {exc}"[:300],
                                    "where": traceback.format_exc().strip().splitlines()[-3:]})
            if (i + 1) % 250 == 0:
                bad = check_target(target, rng)
                if bad:
                    checks.append({"i": i, "problem": bad})
                print(f"[{i + 1}/{args.n}] {dict(outcomes)}", file=sys.stderr, flush=True)
    finally:
        target.close()
    report = {"inputs": args.n, "seed": args.seed, "seconds": round(time.perf_counter() - t0, 1),
              "outcomes": dict(outcomes.most_common()), "mutations": dict(kinds.most_common()),
              "imported_new_images_after": dict(accepted.most_common()),
              "crashes": outcomes["crash"], "internal_errors": outcomes["internal_error"] + outcomes["internal"],
              "gallery_checks_failed": checks, "crash_examples": crashes}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
