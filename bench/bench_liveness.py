"""Liveness cost per face beside the recognition embedding cost, measured in the same run.

    python bench/bench_liveness.py [--runs 30] [--image PATH] [--threads 1] [--model NAME ...] [--json OUT]

Times (median of ``--runs``): liveness ``predict`` for one face (crop + network), its Grad-CAM++
``explain`` (for each ``--model``; default: the shipped default model), and
``get_engine("dlib-resnet").embed_faces`` for the same face, and the synthetic-padding check the two-crop
models run once per image (``fasfinder.liveness.padding.captured_areas``), all in one run. Detection is done
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
    ap.add_argument("--model", action="append", default=[], help="liveness model card name, or minifasnet (the reference pair; repeatable; default: the default model)")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from fasfinder.engines import get_engine
    from fasfinder.faces import FaceAnalyzer
    from fasfinder.liveness import default_liveness_model, load_liveness_model

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
    models = [load_liveness_model(n) for n in args.model] if args.model else [default_liveness_model()]
    engine = get_engine("dlib-resnet")
    default_engine = get_engine("dlib-resnet-torch")
    res = {}
    fns = [("embed_dlib_resnet_ms", lambda: engine.embed_faces(rgb, faces)),
           ("embed_default_engine_ms[dlib-resnet-torch]", lambda: default_engine.embed_faces(rgb, faces))]
    from fasfinder.liveness.padding import captured_areas

    fns.append(("padding_check_ms (per image, inside predict of the two-crop models)", lambda: captured_areas(rgb, [faces[0].box])))
    for m in models:
        fns += [(f"liveness_predict_ms[{m.name}]", lambda m=m: m.predict(rgb, faces)),
                (f"liveness_explain_ms[{m.name}]", lambda m=m: m.explain(rgb, faces[0]))]
    for name, fn in fns:
        t = timed(fn, args.runs)
        res[name] = {"median": round(statistics.median(t), 2), "min": round(min(t), 2), "runs": len(t)}
    for m in models:
        res[f"liveness_over_embed[{m.name}]"] = round(res[f"liveness_predict_ms[{m.name}]"]["median"] / res["embed_dlib_resnet_ms"]["median"], 3)
    res["setup"] = {
        "image": args.image or "skimage.data.astronaut()",
        "image_shape": list(rgb.shape),
        "face_box": list(faces[0].box),
        "models": {m.name: m.input for m in models},
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
