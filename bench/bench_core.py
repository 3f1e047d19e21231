"""Core benchmark (docs/BENCHMARKS.md section 6): per-stage medians, exact search scaling, end-to-end
query at a 1e5 gallery, the face_recognition-style reference pipeline side by side, enrollment
throughput.

    python bench/bench_core.py --out docs/results/bench_core.json [--runs 20] [--enroll 1000]
    python bench/bench_core.py --only-e2e --e2e-engines dlib-resnet-torch --e2e-rounds 3   # ~40 s

Everything is measured in one run on this machine; ratios compare numbers from the same run.
``--only-e2e``: just the end-to-end comparison. Its rounds interleave the configurations (each
round: every product configuration, then the reference, each over the same images), so a change
in the machine's load hits all of them alike. ``--e2e-compute-threads 0,auto``: the product runs
once per compute-pool size (fasfinder.compute; 0 = serial, the pipeline before the pool; rows
named ``... [compute 0]``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
LFW = REPO.parent / "shared" / "data" / "lfw"


def med(xs):
    return round(statistics.median(xs) * 1e3, 3)


def p99(xs):
    return round(float(np.percentile(np.array(xs) * 1e3, 99)), 3)


def timeit(fn, runs):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def real_images(n):
    if LFW.is_dir():
        files = sorted((LFW / "images_deepfunneled").glob("*/*_0001.jpg"))
        step = max(1, len(files) // n)
        return files[::step][:n]
    from PIL import Image
    from skimage import data

    p = Path(tempfile.mkdtemp()) / "astronaut.png"
    Image.fromarray(data.astronaut()).save(p)
    return [p] * n


def fill_gallery(db: Path, n: int, engine: str, dim: int, rng) -> None:
    """n synthetic gallery faces (random unit vectors) written straight into the gallery schema."""

    from fasfinder.gallery import Gallery

    Gallery(db).close()  # create the schema
    con = sqlite3.connect(db)
    ts = "2026-01-01T00:00:00"
    lm = np.zeros((68, 2), np.float32).tobytes()
    with con:
        con.executemany("INSERT INTO persons(id, label, case_id, metadata, created_at, updated_at) VALUES (?,?,?,?,?,?)",
                        [(i + 1, f"synthetic-{i:07d}", None, "{}", ts, ts) for i in range(n)])
        con.executemany("INSERT INTO images(id, person_id, path, sha256, width, height, created_at) VALUES (?,?,?,?,?,?,?)",
                        [(i + 1, i + 1, f"synthetic/{i}.jpg", f"{i:064x}", 250, 250, ts) for i in range(n)])
        con.executemany("INSERT INTO faces(id, image_id, box, landmarks, detector, score, crop, crop_box) VALUES (?,?,?,?,?,?,?,?)",
                        [(i + 1, i + 1, "[0,0,1,1]", lm, "synthetic", 0.0, b"", "[0,0,1,1]") for i in range(n)])
        for s in range(0, n, 100_000):
            v = rng.standard_normal((min(100_000, n - s), dim)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            con.executemany("INSERT INTO embeddings(face_id, engine, vector) VALUES (?,?,?)",
                            [(s + i + 1, engine, v[i].tobytes()) for i in range(len(v))])
    con.close()


def end_to_end(args, files, tmp: Path, rng) -> dict:
    """Single-face query at a 1e5 gallery: the product (per engine, liveness off / on, per compute-pool
    size) and the face_recognition-style reference, in interleaved rounds; medians over all rounds."""

    import dlib

    from fasfinder.compute import default_workers, set_compute_threads
    from fasfinder.imaging import load_image
    from fasfinder.modelfiles import dlib_file
    from fasfinder.service import FasFinder
    from fasfinder.settings import Settings

    pools = [default_workers() if v.strip() == "auto" else int(v) for v in args.e2e_compute_threads.split(",")]
    configs = []  # (row name, FasFinder, compute threads)
    for name in [e.strip() for e in args.e2e_engines.split(",") if e.strip()]:
        db = tmp / f"{name}.db"
        fill_gallery(db, 100_000, name, 128, rng)
        for liveness in (False, True):
            for n in (pools if liveness else pools[-1:]):  # without liveness the pool has nothing to do
                row = f"{name}{'+liveness' if liveness else ''}" + (f" [compute {n}]" if len(pools) > 1 else "")
                ff = FasFinder(db, settings=Settings(gallery=str(db), engine=name, liveness=liveness, flip=True))
                set_compute_threads(n)
                ff.search(files[0])  # loads the models
                configs.append((row, ff, n))
    det = dlib.get_frontal_face_detector()
    sp5 = dlib.shape_predictor(str(dlib_file("shape5")))
    rec = dlib.face_recognition_model_v1(str(dlib_file("resnet")))
    known = rng.standard_normal((100_000, 128)).astype(np.float64) * 0.1

    def reference(f):
        im = np.asarray(load_image(f).pixels)
        for r in det(im, 1):
            d = np.array(rec.compute_face_descriptor(im, sp5(im, r)))
            np.argsort(np.linalg.norm(known - d, axis=1))[:5]

    reference(files[0])
    times: dict[str, list[float]] = {row: [] for row, _, _ in configs}
    times["reference_face_recognition_style"] = []
    stages: dict[str, dict[str, list[float]]] = {row: {} for row, _, _ in configs}
    for _ in range(max(1, args.e2e_rounds)):
        for row, ff, n in configs:
            if ff.settings.liveness:
                set_compute_threads(n)
            for f in files:
                t = time.perf_counter()
                res = ff.search(f)
                times[row].append(time.perf_counter() - t)
                for k, v in res.timings_ms.items():
                    stages[row].setdefault(k, []).append(v)
        times["reference_face_recognition_style"] += [t for f in files for t in timeit(lambda f=f: reference(f), 1)]
    set_compute_threads(default_workers())
    e2e = {row: {"ms_median": med(ts), "ms_p99": p99(ts), "n": len(ts)} for row, ts in times.items()}
    for row, st in stages.items():
        e2e[row]["stages_ms_median"] = {k: round(statistics.median(v), 2) for k, v in st.items()}
    e2e["reference_face_recognition_style"]["what"] = \
        "dlib HOG (upsample 1) + 5-point + dlib ResNet descriptor + numpy linear scan of 1e5"
    ref = e2e["reference_face_recognition_style"]["ms_median"]
    for v in e2e.values():
        v["ratio_to_reference"] = round(v["ms_median"] / ref, 3)
    for _, ff, _ in configs:
        ff.close()
    return e2e


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--enroll", type=int, default=1000, help="images for the enrollment throughput (0: skip)")
    ap.add_argument("--enroll-heatmaps", type=int, default=200, help="images for enrollment + heatmaps (0: skip)")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--torch-threads", type=int, default=2)
    ap.add_argument("--only-e2e", action="store_true", help="only the end-to-end comparison at a 1e5 gallery")
    ap.add_argument("--e2e-engines", default="dlib-resnet-torch,dlib-resnet")
    ap.add_argument("--e2e-rounds", type=int, default=1, help="interleaved rounds over the images")
    ap.add_argument("--e2e-compute-threads", default="auto",
                    help="compute-pool sizes to compare (comma-separated; 0 = serial, auto = the default)")
    ap.add_argument("--out")
    args = ap.parse_args()

    import faiss
    import torch

    torch.set_num_threads(args.torch_threads)
    import dlib

    from fasfinder.engines import get_engine
    from fasfinder.faces import FaceAnalyzer
    from fasfinder.imaging import load_image
    from fasfinder.service import FasFinder
    from fasfinder.settings import Settings

    rng = np.random.default_rng(0)
    load_before = os.getloadavg()
    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "torch_threads": torch.get_num_threads(), "faiss_threads": faiss.omp_get_max_threads(),
                          "dlib": dlib.__version__, "torch": torch.__version__},
              "runs": args.runs}
    files = real_images(args.images)
    report["images"] = {"source": "LFW deep-funneled 250x250 (one per identity, evenly spaced)" if LFW.is_dir()
                        else "skimage astronaut", "n": len(files)}
    if not args.only_e2e:
        analyzer = FaceAnalyzer()
        imgs = [load_image(f).pixels for f in files]
        faces = [analyzer.detect(im)[:1] or [analyzer.face_at(im, (62, 62, 188, 188))] for im in imgs]

        stage = {}
        stage["decode"] = med([t for f in files for t in timeit(lambda f=f: load_image(f), 1)] * 1)
        stage["detect_landmarks"] = med([t for im in imgs for t in timeit(lambda im=im: analyzer.detect(im), 1)])
        engines = {}
        for name in ("dlib-resnet", "dlib-resnet-torch"):
            try:
                eng = get_engine(name)
            except Exception as exc:  # noqa: BLE001
                engines[name] = {"error": str(exc)}
                continue
            eng.embed_faces(imgs[0], faces[0], flip=True)
            engines[name] = {
                "embed_flip_ms": med([t for im, fc in zip(imgs, faces) for t in timeit(lambda: eng.embed_faces(im, fc, flip=True), 1)]),
                "embed_plain_ms": med([t for im, fc in zip(imgs, faces) for t in timeit(lambda: eng.embed_faces(im, fc, flip=False), 1)]),
            }
        stage["embed"] = engines
        try:
            from fasfinder.liveness import default_liveness_model

            lv = default_liveness_model()
            lv.predict(imgs[0], faces[0])
            stage["liveness"] = med([t for im, fc in zip(imgs, faces) for t in timeit(lambda: lv.predict(im, fc), 1)])
        except Exception as exc:  # noqa: BLE001
            stage["liveness"] = f"unavailable: {exc}"
        try:
            from fasfinder.explain import explain_face

            explain_face(imgs[0], faces[0][0])
            stage["heatmap"] = med([t for im, fc in zip(imgs[:10], faces[:10]) for t in timeit(lambda: explain_face(im, fc[0]), 1)])
        except Exception as exc:  # noqa: BLE001
            stage["heatmap"] = f"unavailable: {exc}"
        report["stages_ms_median"] = stage

        # -- exact search scaling (random unit vectors) ---------------------------------------
        search = {}
        for n in [int(s) for s in args.sizes.split(",")]:
            base = rng.standard_normal((n, 128)).astype(np.float32)
            base /= np.linalg.norm(base, axis=1, keepdims=True)
            index = faiss.IndexFlatIP(128)
            index.add(base)
            qs = rng.standard_normal((args.runs * 3, 128)).astype(np.float32)
            qs /= np.linalg.norm(qs, axis=1, keepdims=True)
            ts = [t for q in qs for t in timeit(lambda q=q: index.search(q[None], 5), 1)]
            scan = [t for q in qs[: args.runs] for t in timeit(lambda q=q: np.argsort(np.linalg.norm(base - q, axis=1))[:5], 1)]
            search[str(n)] = {"faiss_flat_ms_median": med(ts), "faiss_flat_ms_p99": p99(ts), "numpy_scan_ms_median": med(scan)}
            base = index = None  # freed before the next size is allocated
        report["search_single_query"] = search

    # -- end to end at a 1e5 gallery, and the reference pipeline, side by side ------------
    tmp = Path(tempfile.mkdtemp(prefix="bench_core_"))
    report["end_to_end_single_face_query_1e5"] = end_to_end(args, files, tmp, rng)
    report["end_to_end_load"] = {"uptime_before": load_before, "uptime_after": os.getloadavg()}

    # -- enrollment throughput --------------------------------------------------------------
    if args.enroll and LFW.is_dir() and not args.only_e2e:
        pool = sorted((LFW / "images_deepfunneled").glob("*/*.jpg"))[: args.enroll]
        db = tmp / "enroll.db"
        ff = FasFinder(db, settings=Settings(gallery=str(db), engine="dlib-resnet-torch", liveness=True, flip=True))
        t = time.perf_counter()
        ok = sum(1 for r in ff.enroll(pool) if r.error is None)
        dt = time.perf_counter() - t
        report["enrollment"] = {"images": len(pool), "enrolled": ok, "seconds": round(dt, 1),
                                "images_per_second": round(len(pool) / dt, 3), "engine": "dlib-resnet-torch",
                                "liveness": ff.liveness_model() is not None}
        ff.close()
        if args.enroll_heatmaps:
            from fasfinder.explain import explain_face

            db = tmp / "enroll_h.db"
            ff = FasFinder(db, settings=Settings(gallery=str(db), engine="dlib-resnet-torch", liveness=True, flip=True))
            sub = pool[: args.enroll_heatmaps]
            t = time.perf_counter()
            for f in sub:
                r = ff.enroll_one(f)
                if r.error is None:
                    im = ff.load(f)
                    explain_face(im.pixels, ff.detect(im)[0])
            dt = time.perf_counter() - t
            report["enrollment_with_heatmaps"] = {"images": len(sub), "seconds": round(dt, 1),
                                                  "images_per_second": round(len(sub) / dt, 3)}
            ff.close()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
