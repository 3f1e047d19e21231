"""Training-side diagnostic: liveness verdicts on CelebA CALIBRATION photos re-published in a tight,
LFW-like frame (also from a low-resolution source), or with the photometry of flat, dark, pale, tinted
and black-and-white photos (never reads LFW).

The frame follows LFW's documented format, not its images: a square window of 2.2 x a
Viola-Jones-sized box (taken as 1.25 x the dlib box, so 2.75 dlib box widths), resized to 250x250,
optionally turned (as deep funneling does) and saved as JPEG; the face is then found again by the
product's dlib detector. Where the window leaves the photo (CelebA photos are tighter than the
news photos LFW was cut from) the border is mirrored, replicated or black; the border rows separate
the frame itself from that fill (a mirrored fill is a simulation artefact: a photo does not continue
as its own mirror image). Each condition sees every third detected calibration photo (at most 360);
the turn angles come from one seeded generator.

    python bench/liveness_calib_frames.py --celeba-faces DIR/celeba_faces.json --model fas-distilled
        [--model fas-distilled-frame] [--family frames|photometry|sources] [--json OUT]

The calibration identities (``celeba_split == "calib"``) are never trained on; they choose the band.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (name, turn in degrees (None: the photo as it is), border, JPEG quality)
#: "mirror" fills the window's outside with a mirror image of the photo, "replicate" repeats its edge pixels,
#: "black" leaves it black (as celeba_extra's own crops and deep-funnelled warps do).
CONDITIONS = [("as is", None, None, None), ("250px q85", 0, "mirror", 85), ("250px q85 replicate", 0, "replicate", 85),
              ("250px q85 black", 0, "black", 85), ("250px q85 turned 8", 8, "mirror", 85),
              ("250px q85 turned 8 black", 8, "black", 85), ("250px q60", 0, "mirror", 60), ("250px q60 black", 0, "black", 60),
              ("250px q70 turned 12 black", 12, "black", 70)]

#: Low-resolution sources: the photo first shrunk so its dlib box is ``face_px`` wide and saved as JPEG 70
#: (a small news photo), then framed as above, which enlarges it to LFW's 250 px: (name, face_px, turn,
#: border, quality).
SOURCES = [("source 70px, 250px q85 replicate", 70, 0, "replicate", 85),
           ("source 45px, 250px q85 replicate", 45, 0, "replicate", 85),
           ("source 30px, 250px q85 replicate", 30, 0, "replicate", 85),
           ("source 45px, 250px q85 turned 8 black", 45, 8, "black", 85)]


def _scaled(rgb, gains=(1.0, 1.0, 1.0), contrast=1.0, saturation=1.0):
    x = rgb.astype(np.float32)
    x = 128.0 + contrast * (x - 128.0)
    grey = x.mean(axis=2, keepdims=True)
    x = (grey + saturation * (x - grey)) * np.asarray(gains, np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


#: Photometry of ordinary photos (the photo's own face box): what a flat, dark, pale, tinted or
#: black-and-white genuine photo looks like to the model.
PHOTOMETRY = [("flat (contrast x0.6 about mid-grey)", lambda rgb: _scaled(rgb, contrast=0.6)),
              ("dark (exposure x0.6)", lambda rgb: _scaled(rgb, gains=(0.6, 0.6, 0.6))),
              ("pale (saturation x0.4)", lambda rgb: _scaled(rgb, saturation=0.4)),
              ("cool cast (R x0.88, B x1.12)", lambda rgb: _scaled(rgb, gains=(0.88, 1.0, 1.12))),
              ("black and white", lambda rgb: _scaled(rgb, saturation=0.0))]


def lfw_like(rgb, box, rng, turn, border, quality, window=2.2, vj=1.25, side=250):
    import cv2

    from fasfinder.training.fas_distill_data import jpeg_roundtrip

    x0, y0, x1, y1 = box
    w = (x1 - x0) * vj
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.05 * w
    angle = rng.uniform(-turn, turn) if turn else 0.0
    m = cv2.getRotationMatrix2D((cx, cy), angle, side / (window * w))
    m[0, 2] += side / 2 - cx
    m[1, 2] += side / 2 - cy
    mode = {"black": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE, "mirror": cv2.BORDER_REFLECT}[border]
    out = cv2.warpAffine(rgb, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=(0, 0, 0))
    return jpeg_roundtrip(out, quality)


def calibration_photos(celeba_faces: str) -> tuple[dict, list[str]]:
    """(faces of celeba_faces.json, every third detected CelebA calibration photo, at most 360)."""

    from fasfinder.training.fas_distill_data import celeba_split

    faces = json.loads(Path(celeba_faces).read_text())
    return faces, sorted(f for f, v in faces.items() if celeba_split(v["id"]) == "calib" and v["detected"])[::3][:360]


def photo_and_face(data: Path, rel: str, fc: dict, analyzer, rng, turn, border, quality, source_px=None):
    """The calibration photo and its face: as it is with its own box (``turn`` None), else
    re-published by :func:`lfw_like` (from a ``source_px``-wide face when given) and the largest face
    found again (``[]`` when none)."""

    from fasfinder.faces import Face
    from fasfinder.imaging import load_image

    rgb = load_image(data / rel).pixels
    if turn is None:
        return rgb, [Face(box=tuple(fc["box"]), landmarks=np.asarray(fc["landmarks"], np.float32),
                          shape5=np.zeros((5, 2), np.float32))]
    box = fc["box"]
    if source_px:
        from fasfinder.training.fas_distill_data import photo

        rgb, box = photo(rgb, box, {"face_px": source_px, "jpeg": 70, "up": False, "grey": False, "sharpen": 0.0})
    rgb = lfw_like(rgb, box, rng, turn, border, quality)
    return rgb, sorted(analyzer.detect(rgb), key=lambda f: f.box[2] - f.box[0])[-1:]


def conditions(families) -> list[tuple]:
    """(name, the frame arguments of :func:`photo_and_face` (turn, border, quality, source_px), recolour
    or None) of every condition of ``families``, in the order frames, photometry, sources."""

    return ([(c, (t, b, q, None), None) for c, t, b, q in CONDITIONS] if "frames" in families else []) + \
        ([(c, (None, None, None, None), fn) for c, fn in PHOTOMETRY] if "photometry" in families else []) + \
        ([(c, (t, b, q, px), None) for c, px, t, b, q in SOURCES] if "sources" in families else [])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--celeba-faces", required=True, help="celeba_faces.json of fas_distill_data")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--family", action="append", choices=["frames", "photometry", "sources"], default=[],
                    help="condition families (repeatable; default frames and photometry)")
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)
    a.family = a.family or ["frames", "photometry"]

    import torch
    from bench_output import emit

    from fasfinder.faces import FaceAnalyzer
    from fasfinder.liveness import load_liveness_model

    torch.set_num_threads(1)
    faces, files = calibration_photos(a.celeba_faces)
    analyzer, t0, out = FaceAnalyzer(), time.time(), {"photos": len(files), "models": {}}
    for name in a.model or ["fas-distilled"]:
        model, rng, rows = load_liveness_model(name), np.random.default_rng(0), {}
        for cond, frame, recolour in conditions(a.family):
            counts = {"real": 0, "uncertain": 0, "spoof": 0, "no_face": 0}
            for rel in files:
                rgb, found = photo_and_face(Path(a.data), rel, faces[rel], analyzer, rng, *frame)
                rgb = recolour(rgb) if recolour else rgb
                if not found:
                    counts["no_face"] += 1
                    continue
                counts[model.predict(rgb, found)[0].label] += 1
            rows[cond] = counts
            print(name, cond, counts, file=sys.stderr, flush=True)
        out["models"][name] = rows
    return emit(out, t0, a.json)


if __name__ == "__main__":
    raise SystemExit(main())
