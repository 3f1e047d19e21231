"""Write a synthetic test video from LFW faces with its ground truth (fasfinder/evaluation/video_synth.py).

    python bench/make_test_video.py OUT.mp4 --minutes 10 --enrolled 12 --unknown 6 [--fps 25] [--seed 0]

Writes OUT.mp4, OUT.mp4.truth.json (who appears when, where) and OUT.mp4.gallery.json (the photos to
enroll: one per enrolled identity, never one shown in the video). LFW is used for evaluation only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fasfinder.evaluation.video_synth import pick_people, plan_scenes, write_video  # noqa: E402


def make(out: str, minutes: float, enrolled: int, unknown: int, fps: float, seed: int, lfw: str,
         size=(1280, 720)) -> dict:
    video, gallery = pick_people(lfw, enrolled, unknown, seed=seed)
    scenes = plan_scenes(video, set(gallery), minutes * 60.0, size=size, seed=seed)
    t0 = time.perf_counter()
    truth = write_video(out, scenes, fps=fps, size=size)
    Path(out + ".gallery.json").write_text(json.dumps(gallery, indent=1))
    return {"video": out, "seconds": round(time.perf_counter() - t0, 1), "appearances": len(truth["appearances"]),
            "duration_s": truth["duration_s"], "size_bytes": Path(out).stat().st_size}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--enrolled", type=int, default=12)
    ap.add_argument("--unknown", type=int, default=6)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lfw", default="../shared/data/lfw/images_deepfunneled")
    a = ap.parse_args()
    print(json.dumps(make(a.out, a.minutes, a.enrolled, a.unknown, a.fps, a.seed, a.lfw)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
