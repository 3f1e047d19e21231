"""Synthetic gallery inputs shared by the gallery, hardening and signing tests (no models needed)."""

from __future__ import annotations

import numpy as np

from fasfinder.faces import Face

#: A 64x64 noise picture: any image the gallery can crop and store.
RGB = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)


def fake_face() -> Face:
    """A face box in the middle of :data:`RGB` with flat landmarks (the gallery only stores them)."""

    lm = np.full((68, 2), 32.0, np.float32)
    return Face(box=(16, 16, 48, 48), landmarks=lm, shape5=lm[:5].copy(), score=1.0, detector="test")


def unit_vectors(rng: np.random.Generator, n: int = 1, *, dim: int) -> np.ndarray:
    """``n`` random L2-normalised float32 vectors of size ``dim``."""

    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
