"""Per-face cost of the lightweight recognizers (heatmap included) vs dlib-resnet and dlib-resnet-torch.

    python bench/bench_heatmap_models.py [--runs 15] [--threads 1] [--engines ...] [--json OUT]

All engines embed the same face (skimage's astronaut, detected once) with the flip view, as the LFW
protocol does (``embed_views(mirror=True)``, batch = 1 face + its mirror), in the same process,
interleaved round-robin so that load changes on a shared machine hit every engine alike; the median
of RUNS runs per engine and the ratio to dlib-resnet and dlib-resnet-torch are reported. The
components of a heatmap model (the Grad-CAM++ heatmap of the dlib port vs the small network) and
the small networks' forward cost at 96 / 112 / 160 / 224 px (random weights; cost does not depend
on them) are measured too, to say what input size would buy speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--engines", nargs="*", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from skimage import data

    from fasfinder.engines import engine_names, get_engine
    from fasfinder.engines.backbones import build_net
    from fasfinder.engines.heatmap_input import default_cam
    from fasfinder.faces import FaceAnalyzer, face_chip

    rgb = data.astronaut()
    face = FaceAnalyzer().detect(rgb)[0]
    names = args.engines or [n for n in engine_names() if n in ("dlib-resnet", "dlib-resnet-torch", "cam-vector")
                             or n.endswith(("-base", "-heatmap", "-scratch")) or "-heatmap-" in n or "-base-" in n]
    engines = {n: get_engine(n) for n in names}
    for e in engines.values():  # warm up (model loading, first-call allocations)
        e.embed_views(rgb, [face], mirror=True)
        e.embed_views(rgb, [face], mirror=True)
    times = {n: [] for n in names}
    chip = face_chip(rgb, face)
    cam = default_cam()
    comp = {"face_chip": [], "heatmap_gradcampp_dlib_port": []}
    for _ in range(args.runs):
        for n, e in engines.items():
            cam.clear_memo()  # every engine pays for its own heatmap (FastCam remembers recent chips)
            t = time.perf_counter()
            e.embed_views(rgb, [face], mirror=True)
            times[n].append(time.perf_counter() - t)
        t = time.perf_counter()
        face_chip(rgb, face)
        comp["face_chip"].append(time.perf_counter() - t)
        cam.clear_memo()
        t = time.perf_counter()
        cam([chip])
        comp["heatmap_gradcampp_dlib_port"].append(time.perf_counter() - t)
    med = {n: 1000 * statistics.median(v) for n, v in times.items()}
    out = {
        "torch_threads": args.threads,
        "runs": args.runs,
        "what": "ms per face, embed_views(mirror=True) on one detected face (plain + mirror view), median",
        "ms_per_face": {n: round(v, 2) for n, v in med.items()},
        "ratio_vs_dlib-resnet": {n: round(v / med["dlib-resnet"], 3) for n, v in med.items()} if "dlib-resnet" in med else None,
        "ratio_vs_dlib-resnet-torch": {n: round(v / med["dlib-resnet-torch"], 3) for n, v in med.items()} if "dlib-resnet-torch" in med else None,
        "components_ms": {k: round(1000 * statistics.median(v), 2) for k, v in comp.items()},
    }
    # forward cost of the small networks by input size (2 views, eval mode)
    sizes = {}
    for bb in ("shufflenet", "mobilenet", "efficientnet"):
        net = build_net(bb, "heatmap").eval()
        for s in (96, 112, 160, 224):
            x = torch.rand(2, 4, s, s)
            with torch.inference_mode():
                net(x)
                ts = []
                for _ in range(max(3, args.runs // 3)):
                    t = time.perf_counter()
                    net(x)
                    ts.append(time.perf_counter() - t)
            sizes[f"{bb}@{s}"] = round(1000 * statistics.median(ts) / 2 * 2, 2)
    out["net_forward_ms_per_face_2views"] = sizes
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
