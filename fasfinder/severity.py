"""Severity curves for one query face (docs/BENCHMARKS.md section 4 perturbations, no Qt).

For a query face and its top gallery match: perturb the query image (inside the face region or
over the whole image) at each severity of :data:`fasfinder.perturb.SWEEPS`, re-embed the face with
the active engine and record the cosine similarity to the match's *stored* embedding (occlusion
averaged over :data:`fasfinder.perturb.OCCLUSION_SEEDS`). With ``target="liveness"`` the liveness
score of the FAS model is recorded instead. This module only perturbs and records: the service
passes the score function (it owns the engine, the gallery and the liveness model). Results are
cached per query; the computation takes a ``progress(done, total, message)`` callback and a cancel
token (anything with ``.check()``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from . import perturb
from .faces import Face
from .results import SeverityCurves

#: Severity of the unperturbed image for each sweep (the curves start there).
IDENTITY = {"occlusion": 0.0, "brightness": 1.0, "noise": 0.0}
#: Face region = face box grown by this factor around its centre (clipped to the image).
FACE_MARGIN = 1.3

_CACHE: OrderedDict[tuple, SeverityCurves] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 32


def face_region(face: Face, shape: tuple[int, int], margin: float = FACE_MARGIN) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) of the face box grown by ``margin``, clipped to the image."""

    h, w = shape[:2]
    x0, y0, x1, y1 = face.box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    hw, hh = (x1 - x0) * margin / 2.0, (y1 - y0) * margin / 2.0
    return (max(0, int(cy - hh)), max(0, int(cx - hw)), min(h, int(np.ceil(cy + hh))), min(w, int(np.ceil(cx + hw))))


def perturbed(rgb: np.ndarray, face: Face, kind: str, severity: float, seed: int, region: str) -> np.ndarray:
    if region == "image":
        return perturb.apply(rgb, kind, severity, seed)
    y0, x0, y1, x1 = face_region(face, rgb.shape)
    out = np.array(rgb, copy=True)
    out[y0:y1, x0:x1] = perturb.apply(rgb[y0:y1, x0:x1], kind, severity, seed)
    return out


def severity_curves(rgb: np.ndarray, face: Face, score: Callable[[np.ndarray], float], *, target: str,
                    region: str = "face", key: tuple | None = None, engine: str = "", face_id: int | None = None,
                    progress=None, cancel=None) -> SeverityCurves:
    """Curves of ``score(perturbed image)`` against perturbation severity for one face.

    ``score`` is the similarity of the face to its top match or the liveness score (the service
    builds it); ``key`` identifies the computation for the cache (query sha256, face, target, ...).
    """

    if region not in ("face", "image"):
        raise ValueError(f"unknown region {region!r}")
    if key is not None:
        with _CACHE_LOCK:
            if key in _CACHE:
                _CACHE.move_to_end(key)
                return _CACHE[key]
    jobs: list[tuple[str, float, int]] = []
    for kind, severities in perturb.SWEEPS.items():
        for s in severities:
            seeds = perturb.OCCLUSION_SEEDS if kind == "occlusion" else (0,)
            jobs.extend((kind, s, seed) for seed in seeds)
    total = len(jobs) + 1
    if progress:
        progress(0, total, "baseline")
    baseline = score(rgb)
    values: dict[tuple[str, float], list[float]] = {}
    for i, (kind, s, seed) in enumerate(jobs, start=1):
        if cancel is not None:
            cancel.check()
        values.setdefault((kind, s), []).append(score(perturbed(rgb, face, kind, s, seed, region)))
        if progress:
            progress(i + 1, total, f"{kind} {s:g}")
    curves = {}
    for kind, severities in perturb.SWEEPS.items():
        pts = [(IDENTITY[kind], baseline)] + [(float(s), float(np.mean(values[(kind, s)]))) for s in severities]
        curves[kind] = sorted(pts)
    result = SeverityCurves(target=target, region=region, baseline=baseline, curves=curves, engine=engine,
                            face_id=face_id)
    if key is not None:
        with _CACHE_LOCK:
            _CACHE[key] = result
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return result
