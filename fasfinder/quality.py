"""Per-face quality: size, blur, pose and exposure from the pixels and the 68 landmarks.

Each measure maps to a sub-score in [0, 1] by a linear ramp between a "bad" and a "good" value; the
quality score is their product, and a flag is raised when a sub-score is under 0.5. The ramps were
set from the measures of 350 CelebA fit-identity faces (celeba_extra; percentiles in
docs/results/identify.md), and docs/results/identify.md reports how FNIR changes across quality bins
on LFW:

* size: the shorter side of the face box, 30 px (bad) .. 80 px (good): ``small`` (a design choice:
  the detector finds faces from about 40 px);
* blur: variance of the Laplacian of the grey face box resized to 112 px, 40 (CelebA 2nd
  percentile) .. 118 (10th): ``blurry``;
* yaw: |nose tip position between the face-contour ends - 0.5| x 2, 0.72 (95th) .. 0.38 (75th): ``turned``;
* roll: angle of the line between the eye centres, 27 (99th) .. 9 (75th) degrees: ``tilted``;
* exposure: mean grey level of the face box, 45 .. 70 (``dark``; CelebA 1st percentile 67) and
  230 .. 190 (``bright``; CelebA 99th percentile 180).
"""

from __future__ import annotations

import math

import numpy as np

from .faces import Face
from .results import Quality

RAMPS = {  # measure: (bad, good)
    "size": (30.0, 80.0),
    "sharpness": (40.0, 118.0),
    "yaw": (0.72, 0.38),
    "roll": (27.0, 9.0),
    "dark": (45.0, 70.0),
    "bright": (230.0, 190.0),
}
FLAGS = {"size": "small", "sharpness": "blurry", "yaw": "turned", "roll": "tilted", "dark": "dark", "bright": "bright"}


def _ramp(x: float, bad: float, good: float) -> float:
    return float(np.clip((x - bad) / (good - bad), 0.0, 1.0))


def measures(rgb: np.ndarray, face: Face) -> dict:
    import cv2

    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in face.box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    crop = rgb[y0:y1, x0:x1]
    if crop.size == 0:
        crop = rgb
    grey = cv2.cvtColor(np.ascontiguousarray(crop[..., :3]), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (112, 112), interpolation=cv2.INTER_AREA)
    lm = np.asarray(face.landmarks, dtype=np.float64)
    span = lm[16, 0] - lm[0, 0]
    yaw = abs((lm[30, 0] - lm[0, 0]) / span - 0.5) * 2 if abs(span) > 1e-6 else 1.0
    left, right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    roll = abs(math.degrees(math.atan2(right[1] - left[1], right[0] - left[0])))
    roll = min(roll, 180.0 - roll)
    mean = float(grey.mean())
    return {"size": float(min(face.width, face.height)), "sharpness": float(cv2.Laplacian(small, cv2.CV_64F).var()),
            "yaw": float(min(1.0, yaw)), "roll": float(roll), "dark": mean, "bright": mean}


def face_quality(rgb: np.ndarray, face: Face) -> Quality:
    m = measures(rgb, face)
    subs = {k: _ramp(m[k], *RAMPS[k]) for k in RAMPS}
    flags = [FLAGS[k] for k in RAMPS if subs[k] < 0.5]
    shown = {"size_px": m["size"], "sharpness": m["sharpness"], "yaw": m["yaw"], "roll_deg": m["roll"],
             "brightness": m["dark"]}
    return Quality(score=float(np.prod(list(subs.values()))), flags=flags, measures=shown)
