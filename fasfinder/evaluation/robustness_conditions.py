"""Protocol 4 conditions (docs/BENCHMARKS.md section 4): which perturbed versions of the data are
evaluated, and how one is applied to the aligned 150 px chips.

Where the perturbation acts: on dlib's aligned chip (RGB in [0, 1], :mod:`fasfinder.perturb`,
re-quantised to uint8 as a real image would be), *before* the model input is made from it.
Occlusion: the same seeded position for every image of one run (seeds 0, 1, 2 = the 3 positions;
error bars = std over them); noise: one seed per image derived from its file name, so a rerun is
bit-identical.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .. import perturb

NOISE_SEED = 0        # base seed of the per-image noise seeds


@dataclass(frozen=True)
class Variant:
    """One perturbed version of the data: kind, severity and (occlusion) position seed."""

    kind: str
    severity: float
    seed: int = 0

    @property
    def key(self) -> str:
        return "original" if self.kind == "none" else f"{self.kind}_{self.severity:g}_s{self.seed}"

    @property
    def condition(self) -> str:
        """The condition name without the seed (what tables aggregate over)."""

        return "original" if self.kind == "none" else f"{self.kind}_{self.severity:.2f}"


ORIGINAL = Variant("none", 0.0)


def _seeds(kind: str) -> tuple[int, ...]:
    return perturb.OCCLUSION_SEEDS if kind == "occlusion" else (0,)


def single_point_variants() -> list[Variant]:
    """Original, Occlusion 0.30 (3 positions), Brightness 1.15, Noise 0.10."""

    return [Variant(kind, sev, s) if kind != "none" else ORIGINAL
            for kind, sev in perturb.CONDITIONS.values() for s in _seeds(kind)]


def sweep_variants() -> list[Variant]:
    return [Variant(kind, sev, s) for kind, sevs in perturb.SWEEPS.items() for sev in sevs for s in _seeds(kind)]


def all_variants(sweeps: bool) -> list[Variant]:
    out = single_point_variants() + (sweep_variants() if sweeps else [])
    return list(dict.fromkeys(out))


def image_seed(key: str, seed: int = NOISE_SEED) -> int:
    """A stable per-image seed from its name (noise differs between images, not between runs)."""

    return (zlib.crc32(key.encode("utf-8")) + 1_000_003 * seed) % (2**32)


def perturb_chips(chips: np.ndarray, v: Variant, keys: list[str]) -> np.ndarray:
    """Apply ``v`` to uint8 chips (n, H, W, 3): the perturbation acts on [0, 1] floats and the result
    is re-quantised to uint8 (:func:`fasfinder.perturb.apply` does both)."""

    if v.kind == "none":
        return chips
    out = np.empty_like(chips)
    for i, chip in enumerate(chips):
        seed = v.seed if v.kind == "occlusion" else image_seed(keys[i], v.seed)
        out[i] = perturb.apply(chip, v.kind, v.severity, seed=seed)
    return out
