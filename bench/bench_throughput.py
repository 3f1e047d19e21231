"""Enrollment throughput of several code trees (issue 18 part 1), in one run, one after the other.

    python bench/bench_throughput.py --tree "one photo at a time=/tmp/t/742815c:100" \
        --tree "batched threads=/tmp/t/f268c00" --enroll 1000 --projection 10000 --out docs/results/bench_throughput.json

``--tree NAME=DIR[:N]``: a checkout of other code (``git archive REV fasfinder models | tar -x -C DIR``),
enrolling the first N (default ``--enroll``) of the same files; this tree's code runs last. Every
enrollment runs in a fresh subprocess with the same settings (dlib-resnet-torch, flip, liveness on
with the default model) into a new gallery, timed from the first file to the last result (worker
processes started inside the timing). ``--projection N``: this tree on N files (LFW, then the
CelebA folders) with the 100,000-image time projected from it. Also: the per-stage CPU time per image
of the old (one photo at a time) and new (batched) steps on the same images, one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
LFW = DATA / "lfw" / "images_deepfunneled"

ENROLL = r"""
import json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[4]))
from fasfinder.service import FasFinder
from fasfinder.settings import Settings
files = json.loads(Path(sys.argv[2]).read_text())
db = Path(tempfile.mkdtemp()) / "enroll.db"
extra = {"liveness_model": sys.argv[3]} if sys.argv[3] else {}  # older trees have no such setting
ff = FasFinder(db, settings=Settings(gallery=str(db), engine="dlib-resnet-torch", liveness=True, flip=True, **extra))
ff.warm_up()
t, c = time.perf_counter(), time.process_time()
res = ff.enroll(files)
wall, cpu = time.perf_counter() - t, time.process_time() - c
workers = getattr(ff._procs, "processes", 0) if hasattr(ff, "_procs") else "n/a (no worker processes in this code)"
ff.close()  # ends the worker processes, so that their CPU time is counted below (not part of the wall time)
import resource
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"images": len(files), "enrolled": sum(r.error is None for r in res), "seconds": round(wall, 1),
                  "images_per_second": round(len(files) / wall, 3),
                  "cpu_seconds_per_image": round((cpu + kids.ru_utime + kids.ru_stime) / len(files), 4),
                  "cpu_seconds_per_image_this_process": round(cpu / len(files), 4),
                  "liveness_model": ff.liveness_model().name, "worker_processes": workers,
                  "errors": {c: sum(1 for r in res if r.error and r.error["code"] == c)
                             for c in sorted({r.error["code"] for r in res if r.error})}}))
"""


def enroll_run(tree: Path, files: list[str], liveness_model: str, threads: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(files, fh)
    out = subprocess.run([sys.executable, "-c", ENROLL, str(tree), fh.name, liveness_model, str(threads)],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"enrollment with {tree} failed:\n{out.stderr[-3000:]}")
    run = json.loads(out.stdout.strip().splitlines()[-1])
    run["tree"] = str(tree)
    run["projected_hours_100k_at_measured_rate"] = round(100_000 / run["images_per_second"] / 3600, 2)
    return run


def cpu_ms(fn, items) -> float:
    """CPU ms per item of ``fn(items)`` (one pass over all items)."""

    c = time.process_time()
    fn(items)
    return round((time.process_time() - c) / len(items) * 1e3, 2)


def stages(files: list[str], liveness_name: str) -> dict:
    """CPU ms per image of each step, one photo at a time (old) and batched (new), same images."""

    sys.path.insert(0, str(REPO))
    from fasfinder.faces import FaceAnalyzer
    from fasfinder.engines import get_engine
    from fasfinder.imaging import load_image
    from fasfinder.liveness import load_liveness_model, predict_many

    an = FaceAnalyzer()
    imgs = [load_image(f).pixels for f in files]
    faces = [an.detect(im)[:1] for im in imgs]
    items = [(im, fc) for im, fc in zip(imgs, faces) if fc]
    lv = load_liveness_model(liveness_name)
    eng = get_engine("dlib-resnet-torch")
    lv.predict(*items[0])
    eng.embed_faces(*items[0], flip=True)
    old_live = cpu_ms(lambda its: [type(lv).predict(lv, *it) for it in its], items)  # predict: fused net, batch 1

    def unfused(its):  # the network as loaded (BN not folded), batch 1: the code before
        import torch

        net = getattr(lv, "net", None)
        if net is None:
            return [lv.predict(*it) for it in its]
        with torch.inference_mode():
            return [torch.softmax(net(net.preprocess(lv.crops(*it))), 1) for it in its]

    return {
        "images": len(items),
        "decode": cpu_ms(lambda fs: [load_image(f) for f in fs], files),
        "detect_landmarks_auto_upsample (before)": cpu_ms(lambda ims: [an.detect(im) for im in ims], imgs),
        "detect_landmarks_largest_rule (after)": cpu_ms(lambda ims: [an.detect(im, largest=True) for im in ims], imgs),
        "liveness_one_photo_unfused (before)": cpu_ms(unfused, items),
        "liveness_one_photo_fused": old_live,
        "liveness_batched (after)": cpu_ms(lambda its: predict_many(lv, its), items),
        "embed_flip_one_photo (before)": cpu_ms(lambda its: [eng.embed_faces(*it, flip=True) for it in its], items),
        "embed_flip_batched (after)": cpu_ms(lambda its: eng.embed_faces_many(its, flip=True), items),
        "liveness_model": liveness_name,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", default=[], help="NAME=DIR[:N] another code tree, run first")
    ap.add_argument("--enroll", type=int, default=1000)
    ap.add_argument("--projection", type=int, default=0, help="also enroll this many files (LFW, then CelebA)")
    ap.add_argument("--stage-images", type=int, default=64)
    ap.add_argument("--student", action="store_true", help="also this tree with the fas-student liveness model")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the enrollment processes")
    ap.add_argument("--out")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)  # stage timings: one thread, CPU time
    files = [str(p) for p in sorted(LFW.glob("*/*.jpg"))[: args.enroll]]
    uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
    report: dict = {"machine_load_at_start": {"uptime": uptime(), "cpus": os.cpu_count()},
                    "enroll_files": "first N LFW deep-funneled files, sorted by path"}
    sample = files[:: max(1, len(files) // args.stage_images)][: args.stage_images]
    report["stages_cpu_ms_per_image"] = stages(sample, "fas-nuaa-wide")
    runs = {}
    for spec in args.tree:
        name, _, rest = spec.partition("=")
        tree, _, n = rest.rpartition(":") if rest.rpartition(":")[2].isdigit() else (rest, "", "")
        runs[name] = enroll_run(Path(tree), files[: int(n) if n else args.enroll], "", args.threads)
        print(name, runs[name], file=sys.stderr)
    runs["this tree"] = enroll_run(REPO, files, "", args.threads)
    print("this tree", runs["this tree"], file=sys.stderr)
    if args.student:
        runs["this tree, fas-student"] = enroll_run(REPO, files, "fas-student", args.threads)
    report["enrollment"] = runs
    if args.projection:
        celeba = sorted(p for d in ("celeba_subset", "celeba_extra") for p in (DATA / d).rglob("*.jpg"))
        pool = [str(p) for p in sorted(LFW.glob("*/*.jpg"))] + [str(p) for p in celeba]
        if len(pool) < args.projection:
            raise SystemExit(f"only {len(pool)} images for a {args.projection}-image projection")
        run = enroll_run(REPO, pool[: args.projection], "", args.threads)
        run["files"] = "all LFW deep-funneled files sorted by path, then the CelebA folders' files"
        report["projection"] = run
        print("projection", run, file=sys.stderr)
    report["machine_load_at_end"] = uptime()
    json.dump(report, sys.stdout, indent=2)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
