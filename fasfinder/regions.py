"""The 10 facial regions of docs/BENCHMARKS.md section 5 and heatmap mass inside them.

One implementation, used by every explanation (recognition and liveness) and by the UI's
region dock. Landmark numbers are 1-based as in dlib's 68-point scheme; the region mask is the
filled polygon of the listed points, and importance = sum(mask * H) / sum(mask).
"""

from __future__ import annotations

import numpy as np

#: Region name -> 1-based dlib landmark numbers, in polygon order (docs/BENCHMARKS.md section 5).
REGIONS: dict[str, tuple[int, ...]] = {
    "Left Eyebrow": (18, 19, 20, 21, 22),
    "Right Eyebrow": (23, 24, 25, 26, 27),
    "Nose": (28, 32, 33, 34, 35, 36),
    "Lips": tuple(range(49, 61)),
    "Left Eye": tuple(range(37, 43)),
    "Right Eye": tuple(range(43, 49)),
    "Left Cheek": (42, 41, 32, 50, 49, 5),
    "Right Cheek": (47, 48, 36, 54, 55, 13),
    "Chin": (57, 58, 59, 6, 7, 8, 9, 10, 11, 12),
    "Philtrum": (33, 34, 35, 53, 52, 51),
}

REGION_NAMES: tuple[str, ...] = tuple(REGIONS)


def region_polygons(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Polygon vertices (k x 2, x/y) of every region for one face's 68 landmarks."""

    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 x 2 landmarks, got {lm.shape}")
    return {name: lm[[i - 1 for i in idx]] for name, idx in REGIONS.items()}


def region_masks(landmarks: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boolean masks (``shape`` = H x W) of the filled polygon of each region."""

    import cv2

    h, w = shape
    masks = {}
    for name, poly in region_polygons(landmarks).items():
        canvas = np.zeros((h, w), dtype=np.uint8)
        pts = np.round(poly).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(canvas, [pts], 1)
        masks[name] = canvas.astype(bool)
    return masks


def region_importance(heatmap: np.ndarray, landmarks: np.ndarray) -> dict[str, float]:
    """Mean heatmap value inside each region: sum(mask * H) / sum(mask).

    ``heatmap`` is H x W in [0, 1] in the same coordinates as ``landmarks``. A region whose
    polygon falls outside the image (or is degenerate) gets NaN rather than a made-up number.
    """

    hm = np.asarray(heatmap, dtype=np.float64)
    if hm.ndim != 2:
        raise ValueError("heatmap must be 2-D")
    out = {}
    for name, mask in region_masks(landmarks, hm.shape).items():
        area = mask.sum()
        out[name] = float((hm * mask).sum() / area) if area else float("nan")
    return out


def keep_regions(image: np.ndarray, landmarks: np.ndarray, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """A copy of ``image`` with everything outside the union of ``names`` regions set to 0."""

    masks = region_masks(landmarks, image.shape[:2])
    keep = np.zeros(image.shape[:2], dtype=bool)
    for name in names:
        keep |= masks[name]
    out = np.zeros_like(image)
    out[keep] = image[keep]
    return out
