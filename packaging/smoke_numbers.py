"""The numbers the installer's smoke test checks: embeddings and liveness scores against a reference.

The bundle may run a different torch than the development environment (the CPU-only installer ships
torch 2.13.0+cpu, the development venv has the pinned CUDA build), so the smoke test checks numbers,
not only that commands run. The reference is made in the development environment, from the source
tree, with the same command line and the same test images as the smoke test:

    .venv/bin/python packaging/smoke_numbers.py          # writes packaging/smoke_reference.json

(with ../shared/data/lfw present, so the reference has the LFW photos too; without it only the
astronaut). It holds, for every engine of `engines --json`, the embedding that `enroll --engine E`
stores for each gallery image, the liveness scores of `liveness --json` for each query, and a digest
of the models/ folder: a reference made with other model files is reported as stale, not compared.
The smoke test (smoke_test.py) then requires a cosine >= 1 - 1e-5 to the reference embedding for
every image and engine, and liveness scores within 1e-4.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "packaging" / "smoke_reference.json"
COSINE_TOL = 1e-5
LIVENESS_TOL = 1e-4


def models_digest(models: Path) -> str:
    """sha256 over the names and contents of the model cards and weights (what the spec bundles)."""

    h = hashlib.sha256()
    for path in sorted(models.iterdir()):
        if path.name.endswith(".card.json") or path.suffix in (".pt", ".pth", ".onnx", ".npz"):
            h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def image_key(path: str) -> str:
    p = Path(path)
    return f"{p.parent.name}/{p.name}"


def stored_embeddings(db: Path, engine: str) -> dict[str, np.ndarray]:
    """{label/file: embedding} that `enroll` stored (one face per image: the largest)."""

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT images.path, embeddings.vector FROM embeddings JOIN faces ON faces.id = embeddings.face_id "
                            "JOIN images ON images.id = faces.image_id WHERE embeddings.engine = ? ORDER BY faces.id",
                            (engine,)).fetchall()
    finally:
        conn.close()
    return {image_key(path): np.frombuffer(vec, dtype=np.float32) for path, vec in rows}


def encode(vec: np.ndarray) -> str:
    """A reference vector as base64: float32 up to 512 dimensions, float16 above (cam-vector's 16,384: the
    float16 rounding moves a cosine by about 1e-7, far below the 1e-5 checked, and keeps the file small)."""

    dtype = "<f4" if vec.size <= 512 else "<f2"
    return base64.b64encode(np.asarray(vec, dtype=dtype).tobytes()).decode("ascii")


def decode(text: str, dim: int) -> np.ndarray:
    raw = base64.b64decode(text)
    return np.frombuffer(raw, dtype="<f4" if len(raw) == 4 * dim else "<f2").astype(np.float64)


def liveness_scores(json_lines: list[dict]) -> dict[str, list[float]]:
    return {Path(r["query"]).name: [f["liveness"]["score"] for f in r.get("faces") or [] if f.get("liveness")]
            for r in json_lines if not r.get("error")}


def measure(app: list[str], env: dict, gallery: Path, queries: list[Path], engines: list[str], tmp: Path,
            prefix: list[str] = ()) -> dict:
    """Run `enroll --engine E` for every engine and `liveness` on the queries; return what the reference holds."""

    out: dict = {"engines": {}, "liveness": {}, "errors": {}}
    for engine in engines:
        db = tmp / f"numbers-{engine}.db"
        p = subprocess.run([*prefix, *app, "enroll", str(gallery), "--db", str(db), "--engine", engine, "--json"],
                           env=env, capture_output=True, text=True, timeout=1200)
        if p.returncode != 0 or not db.is_file():
            out["errors"][engine] = f"enroll exit {p.returncode}: {p.stderr[-2000:]}"
            continue
        out["engines"][engine] = stored_embeddings(db, engine)
    p = subprocess.run([*prefix, *app, "liveness", *map(str, queries), "--json"], env=env, capture_output=True,
                       text=True, timeout=600)
    if p.returncode != 0:
        out["errors"]["liveness"] = f"liveness exit {p.returncode}: {p.stderr[-2000:]}"
    else:
        out["liveness"] = liveness_scores([json.loads(line) for line in p.stdout.splitlines() if line.strip()])
    return out


def compare(reference: dict, got: dict) -> list[tuple[str, bool, str]]:
    """(check name, passed, detail) for every engine of the reference and for the liveness scores."""

    checks = []
    for engine, ref in reference["engines"].items():
        name = f"numbers: {engine} embeddings match the development build (cosine >= 1 - {COSINE_TOL:g})"
        if engine in got["errors"] or engine not in got["engines"]:
            checks.append((name, False, got["errors"].get(engine, "no embeddings")))
            continue
        emb = {k: np.asarray(v, dtype=np.float64) for k, v in got["engines"][engine].items()}
        missing = sorted(set(ref) - set(emb))
        ref_vecs = {k: decode(ref[k], len(emb[k])) for k in ref if k in emb}
        cos = {k: float(np.dot(r, emb[k]) / (np.linalg.norm(r) * np.linalg.norm(emb[k]))) for k, r in ref_vecs.items()}
        worst = min(cos, key=cos.get) if cos else None
        ok = bool(cos) and not missing and all(1.0 - c <= COSINE_TOL for c in cos.values())
        detail = (f"{len(cos)} images, min cosine {cos[worst]:.9f} ({worst})" if worst else "nothing compared") + (
            f"; missing {missing}" if missing else "")
        checks.append((name, ok, detail))
    name = f"numbers: liveness scores match the development build (within {LIVENESS_TOL:g})"
    if "liveness" in got["errors"]:
        checks.append((name, False, got["errors"]["liveness"]))
    else:
        diffs, bad = [], []
        for query, scores in reference["liveness"].items():
            mine = got["liveness"].get(query)
            if mine is None or len(mine) != len(scores):
                bad.append(f"{query}: {mine} vs reference {scores}")
                continue
            diffs += [abs(a - b) for a, b in zip(scores, mine)]
        worst = max(diffs) if diffs else float("nan")
        ok = bool(diffs) and not bad and worst <= LIVENESS_TOL
        checks.append((name, ok, f"{len(diffs)} faces, max |difference| {worst:.2e}" + (f"; {bad}" if bad else "")))
    return checks


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from smoke_test import make_gallery, scratch_env

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fasfinder-reference-") as name:
        tmp = Path(name)
        env = scratch_env(tmp)
        app = [sys.executable, str(REPO / "main.py")]
        listed = subprocess.run([*app, "engines", "--json"], env=env, capture_output=True, text=True, check=True)
        rows = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
        engines = [r["name"] for r in rows if r.get("error") is None]
        gallery, queries = make_gallery(tmp)
        got = measure(app, env, gallery, [q for q, _ in queries], engines, tmp)
    if got["errors"]:
        print(json.dumps(got["errors"], indent=1), file=sys.stderr)
        return 1
    import torch

    ref = {"made_with": {"command": "python packaging/smoke_numbers.py", "python": sys.version.split()[0],
                         "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")},
           "models_digest": models_digest(REPO / "models"),
           "engines": {e: {k: encode(v) for k, v in emb.items()} for e, emb in got["engines"].items()},
           "liveness": got["liveness"]}
    REFERENCE.write_text(json.dumps(ref, indent=None, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size} bytes): {len(engines)} engines, "
          f"{len(next(iter(got['engines'].values())))} images, {len(got['liveness'])} liveness queries, "
          f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
