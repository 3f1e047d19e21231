"""Zero / Random / Shuffle ablation of the Heatmap models' 4th (Grad-CAM++) input channel (protocol 4).

Normal / Zero (all 0) / Random (uniform [0, 1], seeded) / Shuffle (the heatmap of another
validation image, a fixed seeded derangement of the whole batch).
"""

from __future__ import annotations

import numpy as np

from ..errors import BadArgument

ABLATION_MODES = ("normal", "zero", "random", "shuffle")
RANDOM_SEED = 20240   # the Random ablation's generator seed
SHUFFLE_SEED = 4242   # the Shuffle ablation's derangement seed


def derangement(n: int, seed: int = SHUFFLE_SEED) -> np.ndarray:
    """A seeded permutation without fixed points (Sattolo's algorithm: one n-cycle)."""

    if n < 2:
        raise BadArgument("the Shuffle ablation needs at least 2 images")
    rng = np.random.default_rng(seed)
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def ablate(heat: np.ndarray, mode: str, seed: int = RANDOM_SEED) -> np.ndarray:
    """The 4th channel under an ablation mode (heat: (n, h, w) float in [0, 1])."""

    if mode == "normal":
        return heat
    if mode == "zero":
        return np.zeros_like(heat, dtype=np.float32)
    if mode == "random":
        return np.random.default_rng(seed).random(heat.shape, dtype=np.float32)
    if mode == "shuffle":
        return np.ascontiguousarray(heat[derangement(len(heat))])
    raise BadArgument(f"unknown ablation mode {mode!r} (one of {', '.join(ABLATION_MODES)})")
