"""Video benchmark: a synthetic 720p test video searched at 2 sampled frames/s, scored against its ground truth.

    python bench/bench_video.py --minutes 10 --out /tmp/video-bench [--rate 2] [--enrolled 12 --unknown 6]

Makes the video with bench/make_test_video.py (LFW faces, evaluation only) unless it exists, enrolls the
gallery photos (one per enrolled identity, never one shown in the video) into a fresh gallery, runs
``FasFinder.search_video`` once (wall time, stage times) and ``find_in_footage`` for the enrolled
person seen longest, and prints one JSON object: processing speed (video seconds per wall second),
per-track identification accuracy and the share of ground-truth appearances found.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=2.0)
    ap.add_argument("--enrolled", type=int, default=12)
    ap.add_argument("--unknown", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/video-bench")
    ap.add_argument("--lfw", default="../shared/data/lfw/images_deepfunneled")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FASFINDER_CONFIG_DIR", str(out / "config"))
    os.environ.setdefault("FASFINDER_DATA_DIR", str(out / "data"))

    from make_test_video import make

    from fasfinder.evaluation.video_synth import load_truth, score_tracks
    from fasfinder.service import FasFinder
    from fasfinder.settings import Settings

    video = str(out / f"test_{a.minutes:g}min_seed{a.seed}.mp4")
    made = None
    if not Path(video + ".truth.json").exists():
        made = make(video, a.minutes, a.enrolled, a.unknown, 25.0, a.seed, a.lfw)
    gallery_photos = json.loads(Path(video + ".gallery.json").read_text())
    db = out / f"gallery_seed{a.seed}.db"
    for p in out.glob(db.name + "*"):
        p.unlink()
    ff = FasFinder(db, settings=Settings(gallery=str(db)))
    t0 = time.perf_counter()
    for label, files in gallery_photos.items():
        for r in ff.enroll(files, label=label):
            if r.error:
                print(f"enroll {r.path}: {r.error}", file=sys.stderr)
    enroll_s = time.perf_counter() - t0
    ff.warm_up()
    t0 = time.perf_counter()
    res = ff.search_video(video, rate=a.rate)
    wall = time.perf_counter() - t0
    if res.error:
        print(json.dumps({"error": res.error}))
        return 1
    truth = load_truth(video + ".truth.json")
    d = res.to_dict()
    score = score_tracks(d["tracks"], truth)
    # footage: the enrolled identity on screen the longest, by its enrolled person
    on = {}
    for x in truth:
        if x.enrolled:
            on[x.identity] = on.get(x.identity, 0.0) + x.end_s - x.start_s
    who = max(on, key=on.get)
    pid = next(p.person_id for p in ff.persons() if p.label == who)
    t1 = time.perf_counter()
    foot = ff.find_in_footage([video], person_id=pid, rate=a.rate)[0]
    foot_s = time.perf_counter() - t1
    covered = sum(max(0.0, min(s.end_s, x.end_s) - max(s.start_s, x.start_s))
                  for s in foot.spans for x in truth if x.identity == who)
    claimed = sum(s.end_s - s.start_s for s in foot.spans)
    dur = res.video["duration_s"]
    report = {
        "video": video, "synthetic": True, "made": made, "duration_s": dur, "size": [res.video["width"], res.video["height"]],
        "fps": res.video["fps"], "rate": a.rate, "sampled": res.sampled, "gallery_persons": len(gallery_photos),
        "enroll_s": round(enroll_s, 1), "search_video_wall_s": round(wall, 1), "speed_x_realtime": round(dur / wall, 2),
        "stage_s": {k: round(v / 1e3, 1) for k, v in res.timings_ms.items()},
        "score": score,
        "footage": {"person": who, "truth_s": round(on[who], 1), "spans": len(foot.spans),
                    "span_s": round(claimed, 1), "true_s_in_spans": round(covered, 1),
                    "recall_time": round(covered / on[who], 3) if on[who] else None,
                    "precision_time": round(covered / claimed, 3) if claimed else None,
                    "wall_s_cached_scan": round(foot_s, 2)},
        "load_avg_1min": os.getloadavg()[0], "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    Path(out / f"result_{a.minutes:g}min_seed{a.seed}.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    ff.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
