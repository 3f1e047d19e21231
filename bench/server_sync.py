"""Sync against a real PostgreSQL: initial pull of N faces, push and incremental pull of 1,000 changes.

    OMP_NUM_THREADS=1 .venv/bin/python bench/server_sync.py --faces 100000 --runs 3 --out docs/results/server_sync.json

Starts its own PostgreSQL (tests/pg_server.py: initdb in a temporary folder, unix socket, run as
``nobody`` when root). The server is filled with COPY (N faces, one per photo, 5 photos per person,
one 128-d embedding each; every crop is the same real 256x256 JPEG face crop of skimage's astronaut,
16 KB, the size the gallery stores), then each run pulls everything into a *fresh* replica (timed:
the whole ``Sync.run`` including the FAISS build/save), and a second workstation pushes 1,000 changes
(500 new photos, 400 edits, 100 deletions; timed) which the first replica pulls (timed). Medians over
``--runs``; the replica's size on disk (SQLite + FAISS files) after the initial sync.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fasfinder.faces import Face  # noqa: E402
from fasfinder.gallery import Gallery  # noqa: E402
from fasfinder.gallery.crops import face_crop  # noqa: E402
from fasfinder.server.connection import ServerConfig  # noqa: E402
from fasfinder.server.sync import Sync  # noqa: E402
from tests.pg_server import PgServer  # noqa: E402

DIM = 128


def real_crop():
    from skimage import data

    img = data.astronaut()
    lm = np.full((68, 2), 200.0, np.float32)
    face = Face(box=(150, 60, 260, 190), landmarks=lm, shape5=lm[:5].copy(), score=1.0, detector="hog")
    crop, box = face_crop(img, face)
    return img, face, crop, box


def fill(pg: PgServer, db: str, n: int, crop: bytes, crop_box: list) -> float:
    import psycopg

    rng = np.random.default_rng(0)
    t = time.perf_counter()
    lm = np.full((68, 2), 200.0, np.float32).tobytes()
    with psycopg.connect(pg.url(db=db)) as conn, conn.cursor() as cur:
        with cur.copy("COPY fasfinder.persons (uuid, case_id, label) FROM STDIN") as cp:
            for p in range(n // 5):
                cp.write_row((f"p{p:08d}", "C1", f"person {p}"))
        with cur.copy("COPY fasfinder.images (sha256, person_uuid, case_id, path, width, height) FROM STDIN") as cp:
            for i in range(n):
                cp.write_row((hashlib.sha256(b"%d" % i).hexdigest(), f"p{i // 5:08d}", "C1", f"/photos/{i}.jpg",
                              512, 512))
        with cur.copy("COPY fasfinder.faces (uuid, image_sha256, case_id, box, landmarks, detector, score, crop, "
                      "crop_box) FROM STDIN") as cp:
            for i in range(n):
                cp.write_row((f"f{i:09d}", hashlib.sha256(b"%d" % i).hexdigest(), "C1", "[150, 60, 260, 190]", lm,
                              "hog", 1.0, crop, json.dumps(crop_box)))
        with cur.copy("COPY fasfinder.embeddings (face_uuid, engine, case_id, vector) FROM STDIN") as cp:
            for start in range(0, n, 10000):
                v = rng.standard_normal((min(10000, n - start), DIM)).astype(np.float32)
                v /= np.linalg.norm(v, axis=1, keepdims=True)
                for j, row in enumerate(v):
                    cp.write_row((f"f{start + j:09d}", "dlib-resnet-torch", "C1", row.tobytes()))
        conn.commit()
    return time.perf_counter() - t


def changes(g: Gallery, run: int, img, face) -> None:
    rng = np.random.default_rng(100 + run)
    persons = g.persons()
    for i in range(500):
        v = rng.standard_normal((1, DIM)).astype(np.float32)
        g.add_image(label=f"new {run}-{i}", path=f"/new/{run}-{i}.jpg",
                    sha256=hashlib.sha256(f"new-{run}-{i}".encode()).hexdigest(), width=512, height=512, rgb=img,
                    faces=[face], embeddings={"dlib-resnet-torch": v / np.linalg.norm(v)}, case_id="C1")
    for rec in persons[run * 500: run * 500 + 400]:
        g.update_person(rec.person_id, metadata={"run": run})
    for rec in persons[-(run + 1) * 100: len(persons) - run * 100]:
        g.delete_image(rec.images[0]["id"])


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    img, face, crop, crop_box = real_crop()
    pg = PgServer(port=54377).start()
    work = Path(tempfile.mkdtemp(prefix="server-bench-"))
    try:
        pg.office("bench")
        fill_s = fill(pg, "bench", args.faces, crop, crop_box)
        print(f"filled the server with {args.faces} faces in {fill_s:.1f} s", file=sys.stderr)
        initial, sizes, push, incr = [], [], [], []
        for run in range(args.runs):
            path = work / f"replica{run}.db"
            g = Gallery(path, audit_searches=False)
            t = time.perf_counter()
            report = Sync(g, ServerConfig(pg.url("bob", "bench"))).run()
            initial.append(time.perf_counter() - t)
            g.close()
            sizes.append(size(path))
            print(f"run {run}: initial sync {initial[-1]:.1f} s, {report.pulled_images} images, "
                  f"{sizes[-1] / 1e6:.0f} MB", file=sys.stderr)
        other = Gallery(work / "replica0.db", audit_searches=False)  # the second workstation makes changes
        mine = Gallery(work / "replica1.db", audit_searches=False)
        for run in range(args.runs):
            changes(other, run, img, face)
            t = time.perf_counter()
            r1 = Sync(other, ServerConfig(pg.url("alice", "bench"))).run()
            push.append(time.perf_counter() - t)
            t = time.perf_counter()
            r2 = Sync(mine, ServerConfig(pg.url("bob", "bench"))).run()
            incr.append(time.perf_counter() - t)
            print(f"run {run}: pushed {r1.pushed} outbox entries in {push[-1]:.2f} s; pulled {r2.pulled_persons} "
                  f"person rows + {r2.pulled_images} image rows in {incr[-1]:.2f} s", file=sys.stderr)
        assert mine.counts() == other.counts(), (mine.counts(), other.counts())
        out = {"faces": args.faces, "runs": args.runs, "server_fill_copy_s": round(fill_s, 1),
               "initial_sync_s_median": round(statistics.median(initial), 1), "initial_sync_s": [round(x, 1) for x in initial],
               "replica_bytes_median": int(statistics.median(sizes)),
               "push_1000_changes_s_median": round(statistics.median(push), 2), "push_s": [round(x, 2) for x in push],
               "pull_1000_changes_s_median": round(statistics.median(incr), 2), "pull_s": [round(x, 2) for x in incr],
               "replica_counts_after": mine.counts(), "index": mine.index_info("dlib-resnet-torch")["kind"],
               "crop_bytes": len(crop), "machine": "2 shared CPU cores, OMP_NUM_THREADS=1, PostgreSQL 15 fsync=off"}
        other.close(), mine.close()
        print(json.dumps(out, indent=2))
        if args.out:
            Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    finally:
        pg.cleanup()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
