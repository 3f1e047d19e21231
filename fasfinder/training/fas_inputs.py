"""Model inputs of the NUAA-only FAS trainers (:mod:`fasfinder.training.fas`): the crops the
liveness model sees (plus context for random shifts), cached as ``.npy`` beside the face cache,
the training augmentation, and the size on disk of those inputs (recorded in the card).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..evaluation.nuaa import DEFAULT_CACHE


def make_inputs(nuaa_dir, items, faces: dict, input_cfg: dict, pad: int = 0) -> np.ndarray:
    """uint8 N x (S + 2 pad)^2 x 3 crops: the model input plus ``pad`` pixels of context on each
    side (for random-shift augmentation); region masking (``keep_regions``) applied if set."""

    from ..faces import Face
    from ..imaging import load_image
    from ..liveness import model_input

    size = int(input_cfg["size"])
    big = dict(input_cfg)
    big["size"] = size + 2 * pad
    big["crop_scale"] = float(input_cfg["crop_scale"]) * (size + 2 * pad) / size
    out = np.zeros((len(items), size + 2 * pad, size + 2 * pad, 3), dtype=np.uint8)
    for i, (rel, _) in enumerate(items):
        rgb = load_image(Path(nuaa_dir) / "db" / rel).pixels
        f = faces[rel]
        face = Face(box=tuple(f["box"]), landmarks=np.asarray(f["landmarks"], np.float32), shape5=np.zeros((5, 2), np.float32))
        out[i] = model_input(rgb, face, big)
    return out


def crops_cached(nuaa_dir, split, items, faces, input_cfg, pad, cache_dir: Path = DEFAULT_CACHE) -> np.ndarray:
    key = json.dumps({"split": split, "n": len(items), "input": input_cfg, "pad": pad, "nuaa": str(Path(nuaa_dir).resolve())}, sort_keys=True)
    path = Path(cache_dir) / f"crops_{hashlib.sha1(key.encode()).hexdigest()[:12]}.npy"
    if path.is_file():
        return np.load(path)
    arr = make_inputs(nuaa_dir, items, faces, input_cfg, pad)
    np.save(path, arr)
    return arr


def augment(batch: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random shift (crop of ``size`` from the padded crop), horizontal flip, brightness/contrast."""

    n, big = batch.shape[0], batch.shape[1]
    out = np.empty((n, size, size, 3), dtype=np.float32)
    for i in range(n):
        dy, dx = rng.integers(0, big - size + 1, size=2)
        img = batch[i, dy : dy + size, dx : dx + size].astype(np.float32)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = img * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20)
        out[i] = np.clip(img, 0, 255)
    return out


def center(batch: np.ndarray, size: int) -> np.ndarray:
    p = (batch.shape[1] - size) // 2
    return batch[:, p : p + size, p : p + size]


def size_on_disk(crops: np.ndarray, size: int) -> dict:
    """Mean PNG and JPEG (q=90) bytes of the model inputs (centre crops)."""

    import cv2

    c = center(crops, size)
    png = [len(cv2.imencode(".png", im[:, :, ::-1])[1]) for im in c]
    jpg = [len(cv2.imencode(".jpg", im[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]) for im in c]
    return {"mean_png_bytes": int(np.mean(png)), "mean_jpeg90_bytes": int(np.mean(jpg))}
