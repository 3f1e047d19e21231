"""Search latency with gallery encryption off vs on, in one run, on the same synthetic gallery.

A plain gallery of ``--faces`` synthetic faces (random unit vectors, a 64x64 noise photo each) is
built, copied, and the copy encrypted with the migration (``encrypt_gallery``), so both hold the
same rows. Then, interleaved (plain, encrypted, plain, ...) so machine load hits both alike:

* ``search``: one ``Gallery.search`` of one query vector, top 5, with its audit row (the default
  path of the service: FAISS search, the hits looked up in SQLite, one audit row written);
* ``search_no_audit``: the same without the audit row (reads only);
* ``open``: opening the gallery and loading its index (scrypt + AES-GCM decryption when encrypted).

Each is the median (and p90) of ``--runs`` timings. Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_encryption.py --faces 2000 --runs 50
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fasfinder.faces import Face  # noqa: E402
from fasfinder.gallery import Gallery  # noqa: E402
from fasfinder.gallery.migrate_encrypt import encrypt_gallery  # noqa: E402

ENGINE = "bench-vec"
KEY = "bench passphrase"


def build(path: Path, n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rgb = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    lm = np.full((68, 2), 32.0, np.float32)
    face = Face(box=(16, 16, 48, 48), landmarks=lm, shape5=lm[:5].copy(), score=1.0, detector="bench")
    with Gallery(path, user="bench", checkpoint_seconds=1e9) as g:
        for i in range(n):
            g.add_image(label=f"person{i}", path=f"img{i}.png", sha256=f"sha{i}", width=64, height=64, rgb=rgb,
                        faces=[face], embeddings={ENGINE: vecs[i:i + 1]})
    return vecs


def stats(ms: list[float]) -> dict:
    return {"median_ms": round(statistics.median(ms), 3), "p90_ms": round(float(np.percentile(ms, 90)), 3),
            "runs": len(ms)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--out", help="also write the result JSON here")
    args = ap.parse_args()
    if args.runs < 20:
        ap.error("--runs must be at least 20")
    rng = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(prefix="bench_enc_"))
    try:
        plain, enc = root / "plain.db", root / "enc.db"
        t = time.perf_counter()
        vecs = build(plain, args.faces, args.dim, rng)
        build_s = time.perf_counter() - t
        for f in root.iterdir():
            shutil.copy2(f, root / f.name.replace("plain.db", "enc.db"))
        t = time.perf_counter()
        encrypt_gallery(enc, KEY, user="bench")
        migrate_s = time.perf_counter() - t
        queries = vecs[rng.choice(len(vecs), args.runs)] + 0.05 * rng.standard_normal((args.runs, args.dim)).astype(
            np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        timings = {mode: {"search": [], "search_no_audit": [], "open": []} for mode in ("off", "on")}
        galleries = {"off": Gallery(plain, user="bench"), "on": Gallery(enc, user="bench", key=KEY)}
        same = 0
        try:
            for g in galleries.values():
                g.search(ENGINE, queries[:1], k=5)  # warm: index loaded
            for i in range(args.runs):
                hits = {}
                for mode, g in galleries.items():
                    t = time.perf_counter()
                    hits[mode] = g.search(ENGINE, queries[i:i + 1], k=5)
                    timings[mode]["search"].append((time.perf_counter() - t) * 1e3)
                    t = time.perf_counter()
                    g.search(ENGINE, queries[i:i + 1], k=5, audit=False)
                    timings[mode]["search_no_audit"].append((time.perf_counter() - t) * 1e3)
                same += [h.face_id for h in hits["off"][0]] == [h.face_id for h in hits["on"][0]]
        finally:
            for g in galleries.values():
                g.close()
        for _ in range(args.runs):
            for mode, path in (("off", plain), ("on", enc)):
                t = time.perf_counter()
                with Gallery(path, user="bench", key=KEY if mode == "on" else None) as g:
                    g.index_info(ENGINE)
                timings[mode]["open"].append((time.perf_counter() - t) * 1e3)
        out = {"faces": args.faces, "dim": args.dim, "build_plain_s": round(build_s, 2),
               "migrate_s": round(migrate_s, 2), "same_top5": f"{same}/{args.runs}",
               "sizes_bytes": {f.name: f.stat().st_size for f in sorted(root.iterdir())}}
        for what in ("search", "search_no_audit", "open"):
            off, on = stats(timings["off"][what]), stats(timings["on"][what])
            out[what] = {"off": off, "on": on, "ratio_median": round(on["median_ms"] / off["median_ms"], 3)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
