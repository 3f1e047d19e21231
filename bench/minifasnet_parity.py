"""Parity of our MiniFASNet pair (fasfinder.liveness.minifasnet) with the original pipeline's outputs.

    python bench/minifasnet_parity.py [--fit] [--json OUT]

On every image of ``reference.jsonl`` (400 NUAA images, train and test lists):

* reference box: our crop rule + networks on the RetinaFace box of the reference (image read with
  OpenCV, as the original): max abs softmax difference of each member, fused-label agreement;
* product boxes: the image read by fasfinder.imaging.load_image, the face found by dlib
  (FaceAnalyzer, largest face, centre box when none), the dlib box mapped to a RetinaFace-like box
  by ``DLIB_MAP``, then MiniFasNetPair.predict: fused-label agreement with the reference.

Also the IoU of the mapped dlib boxes with the reference boxes. ``--identity`` uses the dlib
box unchanged (for comparison). ``--fit`` first fits the dlib -> RetinaFace mapping by least squares on the reference images of
the NUAA TRAINING lists only (centre shifts and sizes proportional to the dlib box) and uses it
(print it; copy it into DLIB_MAP to make it the product's rule). The weights folder is
``FASFINDER_MINIFASNET_DIR`` or ../shared/models/minifasnet; NUAA is ../shared/data/nuaa.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fit_mapping(dlib_boxes, ret_boxes) -> dict:
    """Least-squares (through the origin) centre shifts and sizes in units of the dlib box."""

    d = np.asarray(dlib_boxes, np.float64)  # x0 y0 x1 y1
    r = np.asarray(ret_boxes, np.float64)   # x y w h
    dw, dh = d[:, 2] - d[:, 0], d[:, 3] - d[:, 1]
    dcx, dcy = (d[:, 0] + d[:, 2]) / 2, (d[:, 1] + d[:, 3]) / 2
    rcx, rcy = r[:, 0] + r[:, 2] / 2, r[:, 1] + r[:, 3] / 2

    def ls(y, x):
        return float((x * y).sum() / (x * x).sum())

    return {"cx": round(ls(rcx - dcx, dw), 4), "cy": round(ls(rcy - dcy, dh), 4),
            "w": round(ls(r[:, 2], dw), 4), "h": round(ls(r[:, 3], dh), 4)}


def box_iou(a, b) -> float:
    """IoU of two (x, y, w, h) boxes."""

    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nuaa", default=str(ROOT.parent / "shared" / "data" / "nuaa"))
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--identity", action="store_true", help="dlib box unchanged (no mapping)")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)

    import cv2
    import torch

    torch.set_num_threads(1)
    from fasfinder.evaluation.nuaa import detect_face, read_split
    from fasfinder.faces import FaceAnalyzer
    from fasfinder.imaging import load_image
    from fasfinder.liveness import minifasnet as mf

    pair = mf.MiniFasNetPair()
    refs = [json.loads(line) for line in (pair.directory / "reference.jsonl").read_text().splitlines() if line.strip()]
    db = Path(args.nuaa) / "db"
    train = {rel for rel, _ in read_split(args.nuaa, "train")}
    analyzer = FaceAnalyzer()
    maxdiff = np.zeros(len(mf.MEMBERS))
    agree_ref, rows = 0, []
    for r in refs:
        bgr = cv2.imread(str(db / r["path"]))
        p = pair.softmax_bgr(bgr, [r["box"]])[0]
        ref = np.array([r["models"][f] for f, _, _ in mf.MEMBERS])
        maxdiff = np.maximum(maxdiff, np.abs(p - ref).max(axis=1))
        agree_ref += int(pair.fuse(p[None])[0][0] == r["label"])
        rgb = load_image(db / r["path"]).pixels
        face, detected = detect_face(analyzer, rgb)
        rows.append((r, rgb, face, detected))
    if args.identity:
        mf.DLIB_MAP.update({"cx": 0.0, "cy": 0.0, "w": 1.0, "h": 1.0})
    mapping = dict(mf.DLIB_MAP)
    fit_on = [(f.box, r["box"]) for r, _, f, det in rows if det and r["path"] in train]
    if args.fit:
        mapping = fit_mapping([a for a, _ in fit_on], [b for _, b in fit_on])
        mf.DLIB_MAP.update(mapping)
    agree_dlib, disagree, ious = 0, [], []
    for r, rgb, face, detected in rows:
        ious.append(box_iou(mf.face_box(face), r["box"]))
        v = pair.predict(rgb, [face])[0]
        if (v.label == "real") == r["real"]:
            agree_dlib += 1
        else:
            disagree.append({"image": r["path"], "score": round(v.score, 4), "ref_score": r["score"], "ref_real": r["real"], "detected": detected})
    n = len(refs)
    out = {
        "images": n,
        "softmax_max_abs_diff": {f: float(f"{d:.3g}") for (f, _, _), d in zip(mf.MEMBERS, maxdiff)},
        "fused_label_agreement_reference_box": f"{agree_ref}/{n}",
        "dlib_map": mapping,
        "dlib_map_fitted_on_train_images": len(fit_on) if args.fit else None,
        "mapped_box_iou_vs_reference": {"mean": round(float(np.mean(ious)), 4), "min": round(float(np.min(ious)), 4)},
        "dlib_no_face": sum(1 for *_, det in rows if not det),
        "fused_label_agreement_dlib_box": f"{agree_dlib}/{n} ({100.0 * agree_dlib / n:.2f} %)",
        "disagreements_dlib_box": disagree,
    }
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
