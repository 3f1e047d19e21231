"""A recapture probe set: attacks beyond NUAA's prints, made here with OpenCV (an evaluation probe,
never training data for the shipped model).

Every attack re-photographs a genuine photo of a HELD-OUT CelebA identity (never trained on):

* ``screen``: the photo shown on a display: resampled onto an RGB sub-pixel grid (the pixel grid
  the camera sees), raised black level and a colour cast of a backlight, a glare spot, a dark bezel,
  then re-photographed under a perspective tilt (the camera's resampling of the grid gives moire);
* ``print-tilted``: a print with a white margin and paper grain, lower contrast and saturation,
  held at a strong perspective tilt with uneven lighting;
* ``print-closeup``: a print so close to the camera that its edges are out of frame (no paper edge,
  no hands: the hardest case for a model that looks at context).

Each is composited over a background (a NUAA test-list image, heavily blurred, as a room) and gets a
camera degradation (blur, noise, JPEG). The face box is the source's dlib box carried through the
same geometry. Deterministic given the seed.
"""

from __future__ import annotations

import numpy as np

TYPES = ("screen", "print-tilted", "print-closeup")


def _perspective(w: int, h: int, rng: np.random.Generator, tilt: float) -> np.ndarray:
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-tilt, tilt, (4, 2)) * np.float32([w, h])
    return (src + jitter).astype(np.float32)


def _place(bg: np.ndarray, sheet: np.ndarray, box, quad_rel: np.ndarray, rng: np.random.Generator, fill: float):
    """Warp ``sheet`` (with face ``box``) into ``bg`` so that the sheet spans about ``fill`` of its height."""

    import cv2

    H, W = bg.shape[:2]
    sh, sw = sheet.shape[:2]
    scale = fill * H / sh
    cx, cy = W / 2 + rng.uniform(-0.1, 0.1) * W, H / 2 + rng.uniform(-0.05, 0.05) * H
    dst = (quad_rel * scale + np.float32([cx - sw * scale / 2, cy - sh * scale / 2])).astype(np.float32)
    src = np.float32([[0, 0], [sw, 0], [sw, sh], [0, sh]])
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(sheet, m, (W, H), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.ones((sh, sw), np.float32), m, (W, H))[..., None]
    out = bg.astype(np.float32) * (1 - mask) + warped.astype(np.float32) * mask
    corners = np.float32([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]])
    pts = cv2.perspectiveTransform(corners[None], m)[0]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    side = max(x1 - x0, y1 - y0)
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    face_box = (int(mx - side / 2), int(my - side / 2), int(mx + side / 2), int(my + side / 2))
    return np.clip(out, 0, 255).astype(np.uint8), face_box


def _camera(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    x = img.astype(np.float32)
    if rng.random() < 0.6:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.2))
    x = x + rng.normal(0, rng.uniform(1, 5), x.shape)
    ok, enc = cv2.imencode(".jpg", np.clip(x, 0, 255).astype(np.uint8)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 95))])
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1].copy()


def screen_sheet(photo: np.ndarray, box, rng: np.random.Generator):
    """The photo on a display: sub-pixel grid, backlight, glare, bezel. Returns (sheet, face box)."""

    import cv2

    h, w = photo.shape[:2]
    px = int(rng.integers(3, 5))  # screen pixels are px x px camera-sheet pixels (3 sub-pixel stripes)
    low = cv2.resize(photo, (max(8, w * 2 // (3 * px) * 3 // 2), max(8, h * 2 // (3 * px) * 3 // 2)), interpolation=cv2.INTER_AREA)
    big = cv2.resize(low, (low.shape[1] * px, low.shape[0] * px), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    grid = np.zeros((px, px, 3), np.float32)
    for c in range(3):  # vertical R, G, B stripes with a dark gap row
        grid[: px - 1, c * px // 3: (c + 1) * px // 3, c] = 1.0
    tiles = np.tile(grid, (low.shape[0], low.shape[1], 1))
    lit = big * tiles * 2.2 + 18.0  # backlight black level
    lit = lit * np.float32([rng.uniform(0.9, 1.0), rng.uniform(0.95, 1.05), rng.uniform(1.0, 1.15)])
    gy, gx = np.mgrid[0: lit.shape[0], 0: lit.shape[1]].astype(np.float32)
    gcx, gcy = rng.uniform(0.2, 0.8) * lit.shape[1], rng.uniform(0.2, 0.8) * lit.shape[0]
    glare = np.exp(-(((gx - gcx) / (0.25 * lit.shape[1])) ** 2 + ((gy - gcy) / (0.2 * lit.shape[0])) ** 2))
    lit = lit + glare[..., None] * rng.uniform(40, 110)
    bez = int(0.06 * lit.shape[1])
    sheet = np.full((lit.shape[0] + 2 * bez, lit.shape[1] + 2 * bez, 3), rng.uniform(10, 35), np.float32)
    sheet[bez: bez + lit.shape[0], bez: bez + lit.shape[1]] = lit
    sx, sy = lit.shape[1] / w, lit.shape[0] / h
    fb = (box[0] * sx + bez, box[1] * sy + bez, box[2] * sx + bez, box[3] * sy + bez)
    return np.clip(sheet, 0, 255).astype(np.uint8), fb


def print_sheet(photo: np.ndarray, box, rng: np.random.Generator, margin: float = 0.08):
    """A print: lower contrast and saturation, paper grain, a white margin. Returns (sheet, face box)."""

    x = photo.astype(np.float32) / 255.0
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.6, 0.85)
    x = 0.08 + x * rng.uniform(0.75, 0.88)
    x = x + rng.normal(0, 0.015, x.shape[:2])[..., None]
    h, w = photo.shape[:2]
    m = int(margin * w)
    sheet = np.full((h + 2 * m, w + 2 * m, 3), rng.uniform(0.85, 0.95), np.float32)
    sheet[m: m + h, m: m + w] = x
    return (np.clip(sheet, 0, 1) * 255).astype(np.uint8), (box[0] + m, box[1] + m, box[2] + m, box[3] + m)


def make_attack(kind: str, photo: np.ndarray, box, background: np.ndarray, rng: np.random.Generator):
    """One probe attack of ``kind`` -> (RGB image, face box (x0, y0, x1, y1))."""

    import cv2

    bg = cv2.GaussianBlur(background, (0, 0), 9)
    if kind == "screen":
        sheet, fb = screen_sheet(photo, box, rng)
        quad = _perspective(sheet.shape[1], sheet.shape[0], rng, 0.08)
        img, face = _place(bg, sheet, fb, quad, rng, rng.uniform(0.6, 0.85))
    elif kind == "print-tilted":
        sheet, fb = print_sheet(photo, box, rng)
        quad = _perspective(sheet.shape[1], sheet.shape[0], rng, 0.15)
        img, face = _place(bg, sheet, fb, quad, rng, rng.uniform(0.55, 0.8))
        H, W = img.shape[:2]
        shade = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(1.0, 1.2), W, dtype=np.float32)[None, :, None]
        img = np.clip(img.astype(np.float32) * shade, 0, 255).astype(np.uint8)
    elif kind == "print-closeup":
        sheet, fb = print_sheet(photo, box, rng, margin=0.0)
        quad = _perspective(sheet.shape[1], sheet.shape[0], rng, 0.04)
        img, face = _place(bg, sheet, fb, quad, rng, rng.uniform(1.25, 1.5))  # sheet larger than the frame
    else:
        raise ValueError(f"unknown attack type {kind!r}")
    return _camera(img, rng), face


def build_probe(photos, backgrounds, per_type: int, seed: int = 0):
    """Yield (kind, RGB image, face box, source) for ``per_type`` attacks of every type.

    ``photos``: [(source name, RGB, dlib box)] of held-out genuine photos; ``backgrounds``: [RGB].
    """

    rng = np.random.default_rng(seed)
    for kind in TYPES:
        for i in range(per_type):
            name, photo, box = photos[(i * 7 + TYPES.index(kind)) % len(photos)]
            bg = backgrounds[int(rng.integers(len(backgrounds)))]
            img, face = make_attack(kind, photo, box, bg, rng)
            yield kind, img, face, name
