"""Synthetic padding: the flat black fill an alignment or rotation tool leaves where its output
window leaves the source photo (a face aligner's warp, ``cv2.warpAffine``'s default border, a rotated
screenshot, CelebA's aligned crops). Those pixels were never captured by a camera, yet a straight, tilted black edge next to
a face is exactly what a printed photo's border looks like to a liveness model. The two-crop models
(:mod:`.croppair`) therefore place their crops inside the captured part of the image.

* :func:`padding_mask` -- the fill, or ``None`` when the image has none: regions connected to the
  image border whose pixels are all near black (every channel <= ``FILL_MAX``), whose median is black
  (<= ``FILL_MEDIAN``: sensor noise and a real dark scene are not), large enough (``MIN_AREA`` of the
  image), without holes, and bounded, apart from the image border, by at most ``MAX_LINES`` straight
  lines (within ``EDGE_TOLERANCE`` px) each at least ``MIN_LINE`` of the short side long, meeting at
  right angles (``CORNER_COS``: the edges of the warped source rectangle): a warp's fill is a wedge,
  a strip, an L or U of strips; dark hair, a dark scene, a dark background around a person or a
  print is not; widened by ``RING`` pixels for JPEG ringing;
* :func:`captured_bounds` -- the inclusive rectangle, containing the face box, without fill: the image
  rectangle shrunk side by side (always the side with the most fill on its edge line) until no side
  can move or none touches fill; :func:`captured_areas` does both for an image's faces, on every
  f-th pixel (at most ``WORK_SIDE`` px long).

numpy / OpenCV only. Measured on training data and probes: ``bench/liveness_padding.py``.
"""

from __future__ import annotations

import numpy as np

FILL_MAX = 24
FILL_MEDIAN = 4
MIN_AREA = 0.002
EDGE_TOLERANCE = 2.0
MAX_LINES = 3
CORNER_COS = 0.2  # consecutive lines meet at 90 +- 11.5 degrees
MIN_LINE = 0.08
RING = 2
WORK_SIDE = 400


def _is_wedge(component: np.ndarray, offset, image_hw) -> bool:
    """Bounded by the image border and a few long straight lines, without holes: the outline of
    the source rectangle's edges after a warp (a wedge, a strip, an L or U of strips).
    ``component``: its bounding box of the image (boolean), at ``offset`` (x, y)."""

    import cv2

    h, w = image_hw
    contours, _ = cv2.findContours(component.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE,
                                   offset=tuple(int(v) for v in offset))
    if len(contours) != 1:  # several outlines or a hole (fill around something): not a warp's fill
        return False
    poly = cv2.approxPolyDP(contours[0], EDGE_TOLERANCE, True)[:, 0, :].astype(np.float64)
    edges = []  # (vector, on the image border)
    for p, q in zip(poly, np.roll(poly, -1, axis=0)):
        on_border = any(abs(p[i] - v) <= 1 and abs(q[i] - v) <= 1 for i, v in ((0, 0), (0, w - 1), (1, 0), (1, h - 1)))
        edges.append((q - p, on_border))
    inner = [v for v, border in edges if not border]
    if not 0 < len(inner) <= MAX_LINES or min(np.hypot(*v) for v in inner) < MIN_LINE * min(h, w):
        return False
    for (u, ub), (v, vb) in zip(edges, edges[1:] + edges[:1]):  # two source edges meet at the source's corner
        if not (ub or vb):
            cos = abs(float(u @ v)) / (np.hypot(*u) * np.hypot(*v))
            if cos > CORNER_COS:
                return False
    return True


def _fill(peak: np.ndarray) -> np.ndarray | None:
    """The fill mask of a brightest-channel image (see :func:`padding_mask`), at its resolution."""

    import cv2

    dark = peak <= FILL_MAX
    if not (dark[0].any() or dark[-1].any() or dark[:, 0].any() or dark[:, -1].any()):
        return None
    h, w = dark.shape
    _, labels, stats, _ = cv2.connectedComponentsWithStats(dark.astype(np.uint8), connectivity=4)
    sx, sy, sw, sh, area = stats.T
    touching = (sx == 0) | (sy == 0) | (sx + sw == w) | (sy + sh == h)
    touching[0] = False  # label 0: the pixels that are not dark
    fill = np.zeros((h, w), bool)
    for k in np.flatnonzero(touching & (area >= MIN_AREA * h * w)):
        x, y, cw, ch = (int(v) for v in stats[k, :4])
        comp = labels[y : y + ch, x : x + cw] == k
        if float(np.median(peak[y : y + ch, x : x + cw][comp])) <= FILL_MEDIAN and _is_wedge(comp, (x, y), (h, w)):
            fill[y : y + ch, x : x + cw] |= comp
    if not fill.any():
        return None
    if RING:
        fill = cv2.dilate(fill.astype(np.uint8), np.ones((2 * RING + 1, 2 * RING + 1), np.uint8)) > 0
    return fill


def _working(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """The brightest channel of every ``f``-th pixel (``f`` = the smallest step that makes the
    long side at most ``WORK_SIDE``), and ``f``: flat fill stays exactly as dark when subsampled."""

    rgb = np.asarray(rgb)
    f = max(1, -(-max(rgb.shape[:2]) // WORK_SIDE))
    sub = rgb[::f, ::f]
    if sub.ndim == 2:
        return sub, f
    return np.maximum(np.maximum(sub[..., 0], sub[..., 1]), sub[..., 2]), f


def padding_mask(rgb: np.ndarray) -> np.ndarray | None:
    """Boolean H x W mask of synthetic black fill connected to the image border, or ``None``
    (found on the image subsampled to at most ``WORK_SIDE`` px, scaled back)."""

    import cv2

    peak, f = _working(rgb)
    fill = _fill(peak)
    if fill is None or f == 1:
        return fill
    h, w = np.asarray(rgb).shape[:2]
    return cv2.resize(fill.astype(np.uint8), (peak.shape[1] * f, peak.shape[0] * f), interpolation=cv2.INTER_NEAREST)[:h, :w] > 0


def captured_areas(rgb: np.ndarray, boxes) -> list[tuple[int, int, int, int]]:
    """Per face box (x0, y0, x1, y1), the inclusive captured rectangle its crops stay in: the whole
    image when it has no fill; else :func:`captured_bounds`, worked out on the subsampled image and
    scaled back inward (never into the face box)."""

    h, w = np.asarray(rgb).shape[:2]
    boxes = list(boxes)
    fill, f = None, 1
    if boxes:
        peak, f = _working(rgb)
        fill = _fill(peak)
    if fill is None:
        return [(0, 0, w - 1, h - 1) for _ in boxes]
    sh, sw = fill.shape
    out = []
    for box in boxes:
        fx0, fy0, fx1, fy1 = (float(v) for v in box)
        x0, y0, x1, y1 = captured_bounds(fill, (fx0 / f, fy0 / f, fx1 / f, fy1 / f), fill.shape)
        # subsampled pixel i is full pixel f * i; a side that did not move stays at the image's edge
        x1 = w - 1 if x1 == sw - 1 else x1 * f
        y1 = h - 1 if y1 == sh - 1 else y1 * f
        out.append((max(0, min(x0 * f, int(fx0))), max(0, min(y0 * f, int(fy0))),
                    min(w - 1, max(x1, int(fx1) - 1)), min(h - 1, max(y1, int(fy1) - 1))))
    return out


def captured_bounds(mask: np.ndarray | None, box_xyxy, image_hw) -> tuple[int, int, int, int]:
    """Inclusive (x0, y0, x1, y1) inside which the crops are placed: the whole image without
    ``mask``; else the image rectangle shrunk off the fill, never into the face box."""

    h, w = int(image_hw[0]), int(image_hw[1])
    if mask is None:
        return 0, 0, w - 1, h - 1
    m = mask.astype(np.int32)
    rows = np.zeros((h, w + 1), np.int32)  # rows[y, x] = fill in row y before x
    np.cumsum(m, axis=1, out=rows[:, 1:])
    cols = np.zeros((h + 1, w), np.int32)  # cols[y, x] = fill in column x above y
    np.cumsum(m, axis=0, out=cols[1:])
    fx0, fy0, fx1, fy1 = (int(v) for v in box_xyxy)
    fx0, fy0 = max(0, min(fx0, w - 1)), max(0, min(fy0, h - 1))
    fx1, fy1 = max(fx0, min(fx1 - 1, w - 1)), max(fy0, min(fy1 - 1, h - 1))  # the face box, inclusive
    x0, y0, x1, y1 = 0, 0, w - 1, h - 1

    def run(side: str) -> np.ndarray:
        """Fill on the side's edge line at each position it may still move to (nearest first)."""

        if side == "left":
            return cols[y1 + 1, x0:fx0] - cols[y0, x0:fx0]
        if side == "right":
            return (cols[y1 + 1, fx1 + 1 : x1 + 1] - cols[y0, fx1 + 1 : x1 + 1])[::-1]
        if side == "top":
            return rows[y0:fy0, x1 + 1] - rows[y0:fy0, x0]
        return (rows[fy1 + 1 : y1 + 1, x1 + 1] - rows[fy1 + 1 : y1 + 1, x0])[::-1]

    while True:
        # greedy: the side with the most fill on its edge line moves in; it keeps moving (in one step)
        # while it still has at least as much as any other side has now (their counts only fall)
        runs = {side: run(side) for side in ("left", "right", "top", "bottom")}
        now = {side: int(r[0]) if len(r) else 0 for side, r in runs.items()}
        side = max(now, key=now.get)
        if now[side] <= 0:
            return x0, y0, x1, y1
        others = max(1, max(v for k, v in now.items() if k != side))
        below = np.flatnonzero(runs[side] < others)
        step = int(below[0]) if len(below) else len(runs[side])
        step = max(step, 1)
        if side == "left":
            x0 += step
        elif side == "right":
            x1 -= step
        elif side == "top":
            y0 += step
        else:
            y1 -= step
