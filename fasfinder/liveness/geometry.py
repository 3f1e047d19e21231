"""Where a liveness model looks: the wide square crop around the face box and the windows in it.

* :func:`face_crop` -- ``crop_scale`` times the detected face box, same centre, zero-padded where
  it leaves the image, resized to ``size`` x ``size``; :func:`crop_matrix` is the same mapping as
  a 2x3 affine (image -> crop coordinates), used to place landmarks and heatmaps;
* :func:`model_input` -- the exact uint8 crop a model card's ``input`` asks for (with the optional
  region mask of ``keep_regions``);
* :func:`window_box` / :func:`window_resample` -- the centred ``window`` fraction of a stored crop
  that a network looks at, cut out and resized on the tensor: the one resampling used in training
  (:mod:`fasfinder.training.fas_wide`) and at inference, so both see the same pixels;
  :func:`paste_window` puts a window's map back into the crop frame.

numpy / OpenCV only, except the two tensor functions (:func:`to_tensor`, :func:`window_resample`),
which import torch when called.
"""

from __future__ import annotations

import numpy as np

from ..faces import Face
from ..regions import keep_regions

#: Default input (the card overrides them).
DEFAULT_SIZE = 128
DEFAULT_CROP_SCALE = 2.7


def center_box(height: int, width: int, frac: float = 0.5) -> tuple[int, int, int, int]:
    """The fallback box when no face is found: a centred square, ``frac`` of the short side."""

    side = int(round(min(height, width) * frac))
    x0 = (width - side) // 2
    y0 = (height - side) // 2
    return (x0, y0, x0 + side, y0 + side)


def crop_geometry(box, scale: float) -> tuple[int, int, int]:
    """Integer square (x0, y0, side) in image coordinates: ``scale`` x the box, same centre."""

    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(4, int(round(scale * max(x1 - x0, y1 - y0))))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side


def crop_matrix(box, scale: float, size: int) -> np.ndarray:
    """2x3 affine mapping image coordinates to crop coordinates (what :func:`face_crop` does)."""

    cx0, cy0, side = crop_geometry(box, scale)
    k = size / side
    return np.array([[k, 0.0, -cx0 * k], [0.0, k, -cy0 * k]], dtype=np.float64)


def face_crop(rgb: np.ndarray, box, scale: float, size: int) -> np.ndarray:
    """``size`` x ``size`` x 3 uint8 crop: the square of ``scale`` x the box, zero-padded, area-resized."""

    import cv2

    h, w = rgb.shape[:2]
    cx0, cy0, side = crop_geometry(box, scale)
    canvas = np.zeros((side, side, 3), dtype=np.uint8)
    sx0, sy0 = max(0, cx0), max(0, cy0)
    sx1, sy1 = min(w, cx0 + side), min(h, cy0 + side)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - cy0 : sy1 - cy0, sx0 - cx0 : sx1 - cx0] = rgb[sy0:sy1, sx0:sx1, :3]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interp)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    return (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def model_input(rgb: np.ndarray, face: Face, config: dict) -> np.ndarray:
    """The exact uint8 crop the model with ``config`` (card ``input``) sees for ``face``."""

    scale = float(config.get("crop_scale", DEFAULT_CROP_SCALE))
    size = int(config.get("size", DEFAULT_SIZE))
    crop = face_crop(rgb, face.box, scale, size)
    keep = config.get("keep_regions")
    if keep:
        lm = transform_points(face.landmarks, crop_matrix(face.box, scale, size))
        crop = keep_regions(crop, lm, list(keep))
    return crop


def to_tensor(crops: np.ndarray):
    """uint8 N x H x W x 3 (or H x W x 3) -> float tensor N x 3 x H x W, roughly zero-mean."""

    import torch

    arr = np.asarray(crops)
    if arr.ndim == 3:
        arr = arr[None]
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    return (x / 255.0 - 0.5) / 0.25


def window_box(size: int, window: float, jitter=None) -> tuple[int, int, int]:
    """Integer square (x0, y0, side) of the centred ``window`` fraction of a ``size`` crop;
    ``jitter`` = (log-scale, dx, dy) moves and scales it (training augmentation only)."""

    side = window * size
    cx = cy = size / 2.0
    if jitter is not None:
        ds, dx, dy = jitter
        side *= float(np.exp(ds))
        cx += dx * side
        cy += dy * side
    side_i = max(4, int(round(side)))
    return int(round(cx - side_i / 2.0)), int(round(cy - side_i / 2.0)), side_i


def window_resample(x, boxes, net_size: int):
    """Cut each sample's square box (x0, y0, side) from the N x C x S x S tensor (zero outside) and
    resize it to ``net_size`` (bilinear, antialiased): the one resampling used in training and at
    inference, so both see the same pixels."""

    import torch
    import torch.nn.functional as F

    _, c, h, w = x.shape
    out = []
    for i, (x0, y0, side) in enumerate(boxes):
        pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
        xi = x[i : i + 1]
        if pad:
            xi = F.pad(xi, (pad, pad, pad, pad))
        xi = xi[:, :, y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
        if side != net_size:
            xi = F.interpolate(xi, size=(net_size, net_size), mode="bilinear", antialias=True, align_corners=False)
        out.append(xi)
    return torch.cat(out, 0) if out else x.new_zeros((0, c, net_size, net_size))


def paste_window(cam: np.ndarray, x0: int, y0: int, shape: tuple[int, int]) -> np.ndarray:
    """Place a window's map (side x side) at (x0, y0) of a zero map of ``shape`` (clipped)."""

    out = np.zeros(shape, np.float32)
    side = cam.shape[0]
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(shape[1], x0 + side), min(shape[0], y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0:sy1, sx0:sx1] = cam[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
    return out
