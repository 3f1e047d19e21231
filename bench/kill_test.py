"""Kill test (not CI): a 2,000-image import killed with SIGKILL at random moments, then reopened and resumed.

What runs in the killed process is the product's own import path, ``FasFinder.enroll`` (load
image, content-hash check, ``Gallery.add_image``: one transaction per image, then the FAISS index
update and periodic index checkpoints), with two test-only substitutions so that 20 runs of 2,000
images finish in minutes on 2 cores:

* detection is bypassed: ``detect`` returns one fixed face box (no dlib HOG, ~0.1 s per image);
* the embedding engine is ``test-pixelhash`` (registered only by this script via
  ``fasfinder.engines.register``): a 128-d unit vector drawn from a generator seeded by the
  sha256 of the image's pixels -- deterministic, so stored vectors can be checked exactly.

Inputs: 2,000 distinct 64x64 PNGs (the astronaut's face with seeded noise). Kill moment: when
the gallery holds a random number of images (uniform in [0, 2000), polled read-only every 10 ms)
plus a random 0-50 ms, so every kill lands inside the import. Half of the runs save the index
after every image (``checkpoint_seconds=0``) so that kills land inside index saves (temp file
written, not yet renamed), the other half every 0.5 s.

After each kill the gallery is reopened and checked: SQLite integrity_check, no half-written
record (every image has exactly 1 face, every face exactly 1 embedding, one ``image.enroll`` audit
row per image, no orphans), stored vectors equal the engine's, the FAISS index holds exactly the
SQLite face ids. Then the import is resumed (same command, already-enrolled content skipped) and
the gallery must hold each of the 2,000 images exactly once, with the index consistent again.

    python bench/kill_test.py --runs 20 --images 2000 --out docs/results/kill_test.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ENGINE = "test-pixelhash"
DIM = 128


def pixel_vector(rgb: np.ndarray) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def register_test_engine() -> None:
    from fasfinder.engines import register
    from fasfinder.engines.base import Engine

    class PixelHashEngine(Engine):
        name = ENGINE
        dim = DIM

        def embed_faces(self, rgb, faces, *, flip=False):
            return np.stack([pixel_vector(rgb) for _ in faces]) if faces else np.zeros((0, DIM), np.float32)

    register(ENGINE, PixelHashEngine, "TEST ONLY: sha256-of-pixels vectors (kill/concurrency tests)")


def make_images(folder: Path, n: int) -> list[Path]:
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    paths = sorted(folder.glob("*.png"))
    if len(paths) == n:
        return paths
    a = data.astronaut()[60:190, 155:285]
    import cv2

    base = cv2.resize(a, (64, 64), interpolation=cv2.INTER_AREA).astype(np.int16)
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        img = np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)
        p = folder / f"person{i % 100:03d}" / f"img{i:05d}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(img).save(p)
        out.append(p)
    return out


def fixed_face():
    from fasfinder.faces import Face

    lm = np.tile(np.array([[32.0, 32.0]], np.float32), (68, 1))
    return Face(box=(16, 16, 48, 48), landmarks=lm, shape5=lm[:5].copy(), score=1.0, detector="test-fixed")


def child(args) -> int:
    """The import that gets killed (and the resume)."""

    register_test_engine()
    from fasfinder.gallery import Gallery
    from fasfinder.service import FasFinder
    from fasfinder.settings import Settings

    class TestFinder(FasFinder):
        def detect(self, image):  # test-only: detection bypassed (one fixed face box)
            return [fixed_face()]

    settings = Settings(gallery=args.db, engine=ENGINE, liveness=False, flip=False)
    ff = TestFinder(args.db, settings=settings)
    ff._gallery = Gallery(args.db, checkpoint_seconds=args.checkpoint)
    n_new = n_dup = 0
    for res in ff.iter_enroll([args.images_dir]):
        if res.error and res.error["code"] == "duplicate":
            n_dup += 1
        elif res.error:
            print(json.dumps(res.to_dict()), file=sys.stderr)
            return 3
        else:
            n_new += 1
    ff.close()
    print(json.dumps({"new": n_new, "duplicates": n_dup}))
    return 0


def index_file_state(db: Path) -> str:
    from fasfinder.gallery.index import VectorIndex

    p = db.with_name(f"{db.name}.{ENGINE}.faiss")
    if not p.exists():
        return "missing"
    return "valid" if VectorIndex.load(DIM, p) is not None else "damaged"


def check(db: Path, expected: dict[str, Path], complete: bool) -> dict:
    """Consistency checks on a (reopened) gallery; ``expected``: sha256 of file -> path."""

    register_test_engine()
    from fasfinder.gallery import Gallery
    from fasfinder.imaging import load_image

    problems = []
    raw = sqlite3.connect(str(db))
    if raw.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
        problems.append("sqlite integrity_check failed")
    raw.close()
    g = Gallery(db)
    rep = g.verify_index(ENGINE)
    c = g.conn
    q = lambda sql: c.execute(sql).fetchone()[0]  # noqa: E731
    n_img = q("SELECT COUNT(*) FROM images")
    half = q("SELECT COUNT(*) FROM images i WHERE (SELECT COUNT(*) FROM faces f WHERE f.image_id = i.id) != 1")
    half += q("SELECT COUNT(*) FROM faces f WHERE (SELECT COUNT(*) FROM embeddings e WHERE e.face_id = f.id) != 1")
    half += q("SELECT COUNT(*) FROM faces WHERE image_id NOT IN (SELECT id FROM images)")
    half += q("SELECT COUNT(*) FROM embeddings WHERE face_id NOT IN (SELECT id FROM faces)")
    if half:
        problems.append(f"{half} half-written rows")
    audits = q("SELECT COUNT(*) FROM audit WHERE action = 'image.enroll'")
    if audits != n_img:
        problems.append(f"{audits} image.enroll audit rows for {n_img} images")
    shas = [r[0] for r in c.execute("SELECT sha256 FROM images")]
    dup = len(shas) - len(set(shas))
    unknown = len(set(shas) - set(expected))
    if dup or unknown:
        problems.append(f"{dup} duplicated, {unknown} unknown images")
    # stored vectors are exactly the engine's (spot check 50 records)
    rows = c.execute("SELECT i.sha256, e.vector FROM images i JOIN faces f ON f.image_id = i.id "
                     "JOIN embeddings e ON e.face_id = f.id ORDER BY RANDOM() LIMIT 50").fetchall()
    for sha, vec in rows:
        want = pixel_vector(load_image(expected[sha]).pixels)
        if not np.array_equal(np.frombuffer(vec, np.float32), want):
            problems.append(f"vector of {sha[:12]} differs")
    lost = len(expected) - len(set(shas)) if complete else 0
    if lost:
        problems.append(f"{lost} lost images after resume")
    if not rep["consistent"]:
        problems.append(f"index inconsistent: {rep}")
    # a search must only return ids SQLite holds
    hits = g.search(ENGINE, np.random.default_rng(0).standard_normal((3, DIM)).astype(np.float32), 5, audit=False)
    ids = {h.face_id for hs in hits for h in hs}
    held = {r[0] for r in c.execute("SELECT id FROM faces")}
    if not ids <= held:
        problems.append("search returned ids SQLite does not hold")
    g.close()
    return {"images": n_img, "half_written": half, "duplicates": dup, "lost": lost, "index": rep, "problems": problems}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--workdir", default="/tmp/fasfinder-kill-test")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", type=float, default=0.5, help=argparse.SUPPRESS)
    ap.add_argument("--images-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)

    from fasfinder.imaging import load_image

    work = Path(args.workdir)
    img_dir = work / "images"
    paths = make_images(img_dir, args.images)
    expected = {load_image(p).sha256: p for p in paths}
    assert len(expected) == len(paths), "inputs are not distinct"
    rng = random.Random(args.seed)
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def run_child(db, checkpoint):
        return subprocess.Popen(
            [sys.executable, __file__, "--child", "--db", str(db), "--checkpoint", str(checkpoint),
             "--images-dir", str(img_dir)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def images_in(db: Path) -> int:
        if not db.exists():
            return 0
        try:
            c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            try:
                return c.execute("SELECT COUNT(*) FROM images").fetchone()[0]
            finally:
                c.close()
        except sqlite3.Error:  # schema not created yet
            return 0

    runs = []
    t_start = time.time()
    for r in range(args.runs):
        cp = 0.0 if r % 2 == 0 else 0.5
        db = work / f"run{r:02d}.db"
        for f in work.glob(f"run{r:02d}.db*"):
            f.unlink()
        # kill point: after a random number of committed images, plus a random fraction of one
        # image's cycle (so kills land anywhere: in a transaction, between commit and index update,
        # inside an index save)
        target = rng.randrange(0, args.images)
        jitter = rng.uniform(0.0, 0.05)
        p = run_child(db, cp)
        t0 = time.time()
        while p.poll() is None and images_in(db) < target:
            time.sleep(0.01)
        time.sleep(jitter)
        delay = time.time() - t0
        killed_alive = p.poll() is None
        p.send_signal(signal.SIGKILL)
        p.communicate()
        tmp_left = len(list(work.glob(f"run{r:02d}.db.*.tmp")))
        file_state = index_file_state(db)
        after_kill = check(db, expected, complete=False) if db.exists() else {"images": 0, "problems": []}
        t0 = time.time()
        p = run_child(db, cp)
        out, err = p.communicate()
        resume_s = time.time() - t0
        resumed = json.loads(out.strip().splitlines()[-1]) if p.returncode == 0 else {"error": err[-500:]}
        final = check(db, expected, complete=True)
        row = {"run": r, "checkpoint_s": cp, "kill_target_images": target, "kill_after_s": round(delay, 2),
               "killed_while_running": killed_alive,
               "index_file_after_kill": file_state, "tmp_files_after_kill": tmp_left,
               "images_after_kill": after_kill["images"], "repair_after_kill": after_kill.get("index", {}).get("action"),
               "problems_after_kill": after_kill["problems"], "resume": resumed, "resume_s": round(resume_s, 1),
               "images_final": final["images"], "problems_final": final["problems"]}
        runs.append(row)
        print(json.dumps(row), flush=True)
    summary = {
        "runs": len(runs), "images_per_run": args.images, "killed_while_running": sum(r["killed_while_running"] for r in runs),
        "runs_with_problems": sum(bool(r["problems_after_kill"] or r["problems_final"]) for r in runs),
        "lost": sum(args.images - r["images_final"] for r in runs),
        "duplicated": sum(max(0, r["images_final"] - args.images) for r in runs),
        "half_written": sum(1 for r in runs for p in r["problems_after_kill"] + r["problems_final"] if "half" in p),
        "index_inconsistent": sum(1 for r in runs for p in r["problems_after_kill"] + r["problems_final"] if "index" in p),
        "index_file_after_kill": {s: sum(r["index_file_after_kill"] == s for r in runs) for s in ("valid", "missing", "damaged")},
        "kills_mid_index_save": sum(r["tmp_files_after_kill"] > 0 for r in runs),
        "repairs_after_kill": {a: sum(r["repair_after_kill"] == a for r in runs)
                               for a in ("loaded", "repaired", "rebuilt", None)},
        "seconds": round(time.time() - t_start, 1), "runs_detail": runs,
    }
    summary["repairs_after_kill"] = {str(k): v for k, v in summary["repairs_after_kill"].items()}
    text = json.dumps(summary, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs_detail"}, indent=1))
    return 0 if summary["runs_with_problems"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
