"""Seeded perturbations of docs/BENCHMARKS.md section 4 (occlusion, brightness, noise).

All act on float images in [0, 1] (H x W x C) and return new arrays; severity 0 (or factor 1)
is the identity. ``uint8`` inputs are accepted and returned as ``uint8``.
"""

from __future__ import annotations

import math

import numpy as np

OCCLUSION_SEVERITIES = (0.1, 0.2, 0.3, 0.4)
BRIGHTNESS_FACTORS = (0.7, 0.85, 1.15, 1.3)
NOISE_SIGMAS = (0.05, 0.1, 0.15, 0.2)
OCCLUSION_SEEDS = (0, 1, 2)

#: Single-point conditions of the paper's Table 1 / ablation.
CONDITIONS = {
    "original": ("none", 0.0),
    "occlusion_0.30": ("occlusion", 0.30),
    "brightness_1.15": ("brightness", 1.15),
    "noise_0.10": ("noise", 0.10),
}
SWEEPS = {"occlusion": OCCLUSION_SEVERITIES, "brightness": BRIGHTNESS_FACTORS, "noise": NOISE_SIGMAS}


def _as_float(img: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0, True
    return arr.astype(np.float32, copy=True), False


def _back(arr: np.ndarray, was_uint8: bool) -> np.ndarray:
    if was_uint8:
        return np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
    return arr


def occlusion_rect(height: int, width: int, fraction: float, seed: int) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) of a rectangle covering ``fraction`` of the image at a seeded position.

    The rectangle has the image's aspect ratio (side factor sqrt(fraction)), rounded so that
    its area is as close to ``fraction`` as integer pixels allow.
    """

    if not 0.0 <= fraction <= 1.0:
        raise ValueError("occlusion fraction must be in [0, 1]")
    if fraction == 0:
        return (0, 0, 0, 0)
    target = fraction * height * width
    rh = max(1, min(height, round(height * math.sqrt(fraction))))
    rw = max(1, min(width, round(target / rh)))
    rng = np.random.default_rng(seed)
    y0 = int(rng.integers(0, height - rh + 1))
    x0 = int(rng.integers(0, width - rw + 1))
    return (y0, x0, y0 + rh, x0 + rw)


def occlude(img: np.ndarray, fraction: float, seed: int = 0, fill: float = 0.0) -> np.ndarray:
    arr, u8 = _as_float(img)
    y0, x0, y1, x1 = occlusion_rect(arr.shape[0], arr.shape[1], fraction, seed)
    arr[y0:y1, x0:x1] = fill
    return _back(arr, u8)


def brightness(img: np.ndarray, factor: float) -> np.ndarray:
    arr, u8 = _as_float(img)
    if factor == 1.0:
        return _back(arr, u8)
    return _back(np.clip(arr * factor, 0.0, 1.0), u8)


def noise(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    arr, u8 = _as_float(img)
    if sigma == 0:
        return _back(arr, u8)
    rng = np.random.default_rng(seed)
    return _back(np.clip(arr + rng.normal(0.0, sigma, arr.shape).astype(np.float32), 0.0, 1.0), u8)


def apply(img: np.ndarray, kind: str, severity: float, seed: int = 0) -> np.ndarray:
    """Apply one perturbation by name: ``none``, ``occlusion``, ``brightness`` or ``noise``."""

    if kind == "none":
        return np.array(img, copy=True)
    if kind == "occlusion":
        return occlude(img, severity, seed)
    if kind == "brightness":
        return brightness(img, severity)
    if kind == "noise":
        return noise(img, severity, seed)
    raise ValueError(f"unknown perturbation {kind!r}")
