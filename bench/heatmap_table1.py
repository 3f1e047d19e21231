"""Closed-set table in the shape of the paper's Table 1 (BENCHMARKS.md section 4) + 4th-channel ablation.

    python bench/heatmap_table1.py --runs /tmp/fasfinder-heatmap-runs --models shufflenet-base shufflenet-heatmap \
        [--json docs/results/heatmap_table1.json]

Validation images = the last 2 images by file name of each ``celeba_subset`` identity (never
trained on). Each face's dlib 150 px chip is perturbed (Original / Noise 0.10 / Occlusion 0.30
(mean of seeds 0, 1, 2) / Brightness 1.15, :mod:`fasfinder.perturb`), then the model input is made
from the perturbed chip exactly as at query time (crop resized to the input size; heatmap = the
Grad-CAM++ of the perturbed chip). Prediction = the ArcFace head's argmax (flip TTA), from the
run's checkpoint (the head is not shipped in models/). Heatmap models are also run with the 4th
channel replaced (ablation): Zero, Random (uniform, seeded), Shuffle (the heatmap of another
validation image, fixed seeded derangement).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONDS = [("original", "none", 0.0, (0,)), ("noise_0.10", "noise", 0.10, (0,)),
         ("occlusion_0.30", "occlusion", 0.30, (0, 1, 2)), ("brightness_1.15", "brightness", 1.15, (0,))]


def val_chips(cache_path: Path, out: Path):
    import cv2

    from fasfinder.faces import DetectorSettings, FaceAnalyzer, face_chip
    from fasfinder.heatmap_models.data import load_cache

    meta = json.loads((cache_path / "meta.json").read_text())
    idx = [i for i, s in enumerate(meta["split"]) if s == "val"]
    labels = np.array([meta["labels"][i] for i in idx])
    if out.is_file():
        return np.load(out), labels
    a0 = FaceAnalyzer(DetectorSettings(upsample=0, fallback=False))
    a1 = FaceAnalyzer(DetectorSettings(upsample=1, fallback=False))
    chips = []
    for i in idx:  # the same detection settings as the training cache (data.prepare_shard)
        rgb = np.ascontiguousarray(cv2.imread(meta["path"][i])[:, :, ::-1])
        faces = a0.detect(rgb) or a1.detect(rgb)
        chips.append(face_chip(rgb, faces[0]))
    chips = np.stack(chips)
    np.save(out, chips)
    return chips, labels


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", default="/tmp/fasfinder-heatmap-runs")
    p.add_argument("--models", nargs="+", default=["shufflenet-base", "shufflenet-heatmap"])
    p.add_argument("--cache", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from fasfinder import perturb
    from fasfinder.heatmap_models.arcface import ArcFace
    from fasfinder.heatmap_models.backbones import build_net
    from fasfinder.heatmap_models.data import default_cache_dir
    from fasfinder.heatmap_models.heatmap import chip_to_input, default_cam
    from fasfinder.heatmap_models.train import macro_f1

    cache_root = Path(args.cache) if args.cache else default_cache_dir()
    cache_path = cache_root / "train-112"
    chips, labels = val_chips(cache_path, cache_root / "val-chips150.npy")
    cam = default_cam()
    inputs = {}  # (condition, seed) -> (crops uint8 (n,s,s,3), heat float (n,s,s))
    results = {"images": int(len(labels)), "identities": int(len(np.unique(labels))), "models": {}}
    rng = np.random.default_rng(0)
    derange = rng.permutation(len(labels))
    while np.any(derange == np.arange(len(labels))):
        derange = rng.permutation(len(labels))
    for name in args.models:
        ck = torch.load(Path(args.runs) / name / "last.pt", weights_only=False)
        cfg = ck["config"]
        size = cfg["size"]
        net = build_net(cfg["backbone"], cfg["variant"])
        net.load_state_dict(ck["net"])
        net.eval()
        head = ArcFace(128, ck["head"]["weight"].shape[0])
        head.load_state_dict(ck["head"])
        rows = {}
        modes = ["normal"] + (["zero", "random", "shuffle"] if cfg["variant"] == "heatmap" else [])
        for mode in modes:
            for cname, kind, sev, seeds in CONDS:
                accs, f1s = [], []
                for seed in seeds:
                    key = (cname, seed, size)
                    if key not in inputs:
                        pert = np.stack([perturb.apply(c, kind, sev, seed=seed * 100000 + i) if kind == "noise"
                                         else perturb.apply(c, kind, sev, seed=seed) for i, c in enumerate(chips)])
                        maps, _ = cam(pert)
                        inputs[key] = (np.stack([chip_to_input(c, size) for c in pert]),
                                       np.stack([chip_to_input(m, size) for m in maps]))
                    crops, heat = inputs[key]
                    if mode == "zero":
                        heat = np.zeros_like(heat)
                    elif mode == "random":
                        heat = np.random.default_rng(seed + 7).random(heat.shape).astype(np.float32)
                    elif mode == "shuffle":
                        heat = heat[derange]
                    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
                    if cfg["variant"] == "heatmap":
                        x = torch.cat([x, torch.from_numpy(np.ascontiguousarray(heat, dtype=np.float32)).unsqueeze(1)], 1)
                    with torch.inference_mode():
                        e = torch.cat([net(x[s : s + 128]) + net(torch.flip(x[s : s + 128], dims=[3])) for s in range(0, len(x), 128)])
                        pred = head.cosine(e).argmax(1).numpy()
                    accs.append(float((pred == labels).mean()))
                    f1s.append(macro_f1(labels, pred))
                rows[f"{mode}/{cname}"] = {"accuracy": round(float(np.mean(accs)), 4), "macro_f1": round(float(np.mean(f1s)), 4)}
                print(name, mode, cname, rows[f"{mode}/{cname}"], flush=True)
        results["models"][name] = {"epochs": ck["state"]["epoch"], "rows": rows}
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
        with open(Path(args.json).with_suffix(".csv"), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["model", "heatmap", "condition", "accuracy", "macro_f1"])
            for m, r in results["models"].items():
                for k, v in r["rows"].items():
                    mode, cond = k.split("/")
                    w.writerow([m, mode, cond, v["accuracy"], v["macro_f1"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
