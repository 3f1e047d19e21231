"""Enroll the first N LFW files with one code tree (the repo, or a `git archive main fasfinder models` copy):
wall time, images/s and CPU seconds per image (all threads). Run it for both trees back to back.

    python bench/enroll_quick.py N TREE
"""
import sys
import tempfile
import time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import torch  # noqa: E402
torch.set_num_threads(2)
from fasfinder.service import FasFinder  # noqa: E402
from fasfinder.settings import Settings  # noqa: E402
LFW = Path("/work/shared/data/lfw/images_deepfunneled")
pool = sorted(LFW.glob("*/*.jpg"))[:int(sys.argv[1])]
db = Path(tempfile.mkdtemp()) / "e.db"
ff = FasFinder(db, settings=Settings(gallery=str(db), engine="dlib-resnet-torch", liveness=True, flip=True))
ff.warm_up(); ff.enroll_one(sorted(LFW.glob("*/*.jpg"))[-1])
t = time.perf_counter(); c = time.process_time()
res = ff.enroll(pool)
dt = time.perf_counter() - t; cpu = time.process_time() - c
print(sys.argv[2], "images", len(pool), "wall s", round(dt, 1), "img/s", round(len(pool) / dt, 2), "cpu s/img", round(cpu / len(pool), 3), "ok", sum(r.error is None for r in res))
