"""Liveness cost per face beside the recognition embedding cost, measured in the same run.

    python bench/bench_liveness.py [--runs 30] [--image PATH] [--threads 1] [--json OUT]

Times (median of ``--runs``): liveness ``predict`` for one face (crop + CNN), its Grad-CAM++
``explain``, and ``get_engine("dlib-resnet").embed_faces`` for the same face. Detection is done
once beforehand and not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed(fn, runs: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--image", default="", help="image to use (default: skimage.data.astronaut())")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from fasfinder.engines import get_engine
    from fasfinder.faces import FaceAnalyzer
    from fasfinder.liveness import default_liveness_model

    if args.image:
        from fasfinder.imaging import load_image

        rgb = load_image(args.image).pixels
    else:
        from skimage import data

        rgb = data.astronaut()
    faces = FaceAnalyzer().detect(rgb)[:1]
    if not faces:
        print("no face found", file=sys.stderr)
        return 1
    model = default_liveness_model()
    engine = get_engine("dlib-resnet")
    res = {}
    for name, fn in (
        ("liveness_predict_ms", lambda: model.predict(rgb, faces)),
        ("embed_dlib_resnet_ms", lambda: engine.embed_faces(rgb, faces)),
        ("liveness_explain_ms", lambda: model.explain(rgb, faces[0])),
    ):
        t = timed(fn, args.runs)
        res[name] = {"median": round(statistics.median(t), 2), "min": round(min(t), 2), "runs": len(t)}
    res["liveness_over_embed"] = round(res["liveness_predict_ms"]["median"] / res["embed_dlib_resnet_ms"]["median"], 3)
    res["setup"] = {
        "image": args.image or "skimage.data.astronaut()",
        "image_shape": list(rgb.shape),
        "face_box": list(faces[0].box),
        "model": model.name,
        "input": model.input,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    print(json.dumps(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
