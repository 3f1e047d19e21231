"""Enrollment throughput before and after the batched pipeline (issue 18 part 1), in one run.

    python bench/bench_throughput.py --before-tree /tmp/main_tree --enroll 1000 --out docs/results/bench_throughput.json

``--before-tree``: a checkout of the code before (e.g. ``git archive main fasfinder models | tar -x -C DIR``);
both enrollments run in fresh subprocesses with the same settings (dlib-resnet-torch, flip, liveness
on with the default model), on the same LFW files, one after the other. Also: the per-stage CPU
time per image of the old (one photo at a time) and new (batched) steps on the same images, and the
same for the ``fas-student`` liveness model. Wall times depend on the machine's load; CPU seconds per
image (all threads of the process) much less, so both are reported.
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
LFW = REPO.parent / "shared" / "data" / "lfw" / "images_deepfunneled"

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
ff = FasFinder(db, settings=Settings(gallery=str(db), engine="dlib-resnet-torch", liveness=True, flip=True,
                                     liveness_model=sys.argv[3] or None))
ff.warm_up()
t, c = time.perf_counter(), time.process_time()
res = ff.enroll(files)
wall, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"images": len(files), "enrolled": sum(r.error is None for r in res), "seconds": round(wall, 1),
                  "images_per_second": round(len(files) / wall, 3), "cpu_seconds_per_image": round(cpu / len(files), 4),
                  "liveness_model": ff.liveness_model().name}))
"""


def enroll_run(tree: Path, files_json: Path, liveness_model: str, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", ENROLL, str(tree), str(files_json), liveness_model, str(threads)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    ap.add_argument("--before-tree", help="checkout of the code before (fasfinder/ and models/)")
    ap.add_argument("--enroll", type=int, default=1000)
    ap.add_argument("--stage-images", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the enrollment processes")
    ap.add_argument("--out")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)  # stage timings: one thread, CPU time
    files = [str(p) for p in sorted(LFW.glob("*/*.jpg"))[: args.enroll]]
    tmp = Path(tempfile.mkdtemp(prefix="bench_throughput_"))
    files_json = tmp / "files.json"
    files_json.write_text(json.dumps(files))
    load = {"uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), "cpus": os.cpu_count()}
    report: dict = {"machine_load_at_start": load, "enroll_files": "first N LFW deep-funneled files, sorted by path"}
    sample = files[:: max(1, len(files) // args.stage_images)][: args.stage_images]
    report["stages_cpu_ms_per_image"] = {m: stages(sample, m) for m in ("fas-nuaa-wide", "fas-student")}
    runs = {}
    if args.before_tree:
        runs["before (main)"] = enroll_run(Path(args.before_tree), files_json, "", args.threads)
    runs["after"] = enroll_run(REPO, files_json, "", args.threads)
    runs["after, fas-student"] = enroll_run(REPO, files_json, "fas-student", args.threads)
    report["enrollment"] = runs
    report["machine_load_at_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    for v in runs.values():
        v["projected_images_per_second_2_free_cores"] = round(2 / v["cpu_seconds_per_image"], 2)
        v["projected_hours_100k_at_measured_rate"] = round(100_000 / v["images_per_second"] / 3600, 2)
    json.dump(report, sys.stdout, indent=2)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
