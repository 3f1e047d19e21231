"""Efficient-FAS table (the seed's Table 4) for the wide-crop models, and the default model's row.

    python bench/fas_table4.py --nuaa ../shared/data/nuaa [--json OUT] [--models a,b,c]

For each model card (default: the full-face pair and its top-4 / bottom-6 region-only retrains,
same recipe and seed): protocol 5 on the NUAA test subset (faces from the training script's
detection cache, i.e. the same dlib HOG detections ``eval fas`` makes), the training seconds per
epoch stored in the card (GPU, runs trained concurrently: noisy), and the mean size on disk of the
model's input images (PNG and JPEG q90 of the masked 144 px crops).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_MODELS = "fas-nuaa-wide-pair,fas-nuaa-wide-top4,fas-nuaa-wide-bottom6"


def main(argv=None) -> int:
    import cv2

    from fasfinder.evaluation.fas import evaluate_fas
    from fasfinder.evaluation.nuaa import face_cache, read_split
    from fasfinder.faces import Face
    from fasfinder.imaging import load_image
    from fasfinder.liveness import LivenessModel, model_input

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nuaa", required=True)
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    faces = face_cache(args.nuaa, "test")
    items = read_split(args.nuaa, "test")
    rows = []
    for name in args.models.split(","):
        model = LivenessModel.from_card(name)
        res = evaluate_fas(args.nuaa, model=model, faces=faces)
        png, jpg = [], []
        for rel, _ in items:
            f = faces[rel]
            face = Face(box=tuple(f["box"]), landmarks=np.asarray(f["landmarks"], np.float32), shape5=np.zeros((5, 2), np.float32))
            crop = model_input(load_image(Path(args.nuaa) / "db" / rel).pixels, face, model.input)
            png.append(len(cv2.imencode(".png", crop[:, :, ::-1])[1]))
            jpg.append(len(cv2.imencode(".jpg", crop[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]))
        row = {"model": name, "keep_regions": model.input.get("keep_regions"),
               **{k: res[k] for k in ("apcer", "bpcer", "acer", "auc", "precision", "recall", "f1", "errors")},
               "area_importance": res.get("area_importance"),
               "seconds_per_epoch_card": model.card.get("seconds_per_epoch"),
               "mean_png_bytes": int(np.mean(png)), "mean_jpeg90_bytes": int(np.mean(jpg))}
        rows.append(row)
        print(f"{name:24s} ACER {row['acer']:.4f} APCER {row['apcer']:.3f} BPCER {row['bpcer']:.3f} AUC {row['auc']:.4f} "
              f"F1 {row['f1']:.3f} s/epoch {row['seconds_per_epoch_card']} PNG {row['mean_png_bytes']} JPEG {row['mean_jpeg90_bytes']}",
              file=sys.stderr)
    out = json.dumps(rows, indent=1)
    if args.json:
        Path(args.json).write_text(out + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
