"""Severity curves for one query face (BENCHMARKS.md section 4 perturbations, no Qt).

For a query face and its top gallery match: perturb the query image (inside the face region or
over the whole image) at each severity of :data:`fasfinder.perturb.SWEEPS`, re-embed the face with
the active engine and record the cosine similarity to the match's *stored* embedding (occlusion
averaged over :data:`fasfinder.perturb.OCCLUSION_SEEDS`). With ``target="liveness"`` the liveness
score of the FAS model is recorded instead. Results are cached per query; the computation takes a
``progress(done, total, message)`` callback and a cancel token (anything with ``.check()``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from . import perturb
from .errors import ModelError, NotFoundInGallery
from .faces import Face

#: Severity of the unperturbed image for each sweep (the curves start there).
IDENTITY = {"occlusion": 0.0, "brightness": 1.0, "noise": 0.0}
#: Face region = face box grown by this factor around its centre (clipped to the image).
FACE_MARGIN = 1.3

_CACHE: "OrderedDict[tuple, SeverityCurves]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 32


@dataclass
class SeverityCurves:
    target: str  # "similarity" (to the top match) or "liveness"
    region: str  # "face" or "image"
    baseline: float  # value on the unperturbed image
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # kind -> [(severity, value)]
    engine: str = ""
    face_id: int | None = None

    def to_dict(self) -> dict:
        return {"target": self.target, "region": self.region, "baseline": round(self.baseline, 4),
                "engine": self.engine, "face_id": self.face_id,
                "curves": {k: [[s, round(v, 4)] for s, v in pts] for k, pts in self.curves.items()}}


def stored_embedding(service, face_id: int, engine: str | None = None) -> np.ndarray:
    """The gallery's stored embedding of ``face_id`` for ``engine`` (L2-normalised row)."""

    engine = engine or service.settings.engine
    try:
        ids, vecs = service.gallery.stored_embeddings(engine, np.array([int(face_id)], dtype=np.int64))
    except TypeError:  # older Gallery without the ``ids`` filter
        ids, vecs = service.gallery.stored_embeddings(engine)
    hit = np.flatnonzero(ids == int(face_id))
    if not len(hit):
        raise NotFoundInGallery(f"face {face_id} has no stored embedding for engine {engine}")
    v = np.asarray(vecs[hit[0]], dtype=np.float64)
    return v / max(np.linalg.norm(v), 1e-12)


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


def _key(rgb, face, face_id, target, region, engine, flip):
    # A cheap content fingerprint of the query (the full sha256 lives on the QueryResult).
    sample = np.ascontiguousarray(rgb[:: max(1, rgb.shape[0] // 64), :: max(1, rgb.shape[1] // 64)])
    return (rgb.shape, hash(sample.tobytes()), tuple(face.box), face_id, target, region, engine, flip)


def severity_curves(service, rgb: np.ndarray, face: Face, face_id: int | None = None, *, target: str = "similarity",
                    region: str = "face", progress=None, cancel=None) -> SeverityCurves:
    """Curves of the top match's similarity (or the liveness score) against perturbation severity."""

    if target not in ("similarity", "liveness"):
        raise ValueError(f"unknown severity target {target!r}")
    if region not in ("face", "image"):
        raise ValueError(f"unknown region {region!r}")
    engine_name = service.settings.engine
    key = _key(rgb, face, face_id, target, region, engine_name, service.settings.flip)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]

    if target == "similarity":
        if face_id is None:
            raise NotFoundInGallery("no gallery match to compare against")
        ref = stored_embedding(service, face_id, engine_name)
        engine = service.engine

        def score(img: np.ndarray) -> float:
            e = np.asarray(engine.embed_faces(img, [face], flip=service.settings.flip)[0], dtype=np.float64)
            return float(e @ ref / max(np.linalg.norm(e), 1e-12))
    else:
        model = service.liveness_model()
        if model is None:
            raise ModelError(f"no liveness model: {service.liveness_unavailable}")

        def score(img: np.ndarray) -> float:
            return float(model.predict(img, [face])[0].score)

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
    result = SeverityCurves(target=target, region=region, baseline=baseline, curves=curves, engine=engine_name,
                            face_id=face_id)
    with _CACHE_LOCK:
        _CACHE[key] = result
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result
