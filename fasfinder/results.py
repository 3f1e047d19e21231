"""Plain result objects returned by the service (no Qt, no torch): what the CLI prints and the UI draws.

Results refer to images by sha256 and to faces by their index in the query (and gallery faces by
``face_id``); the decoded query image travels once, from the service to the front end, in
:attr:`QueryResult.pixels` for display, and never back: explanation and severity operations take
``(query sha256, face index)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .faces import Face


def _r(x: float | None, nd: int = 4):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return None
    return round(float(x), nd)


@dataclass
class Match:
    rank: int
    label: str
    record_id: int  # the gallery image id
    face_id: int
    person_id: int
    case_id: str | None
    image: str
    similarity: float
    confidence: float | None

    def to_dict(self) -> dict:
        return {
            "rank": self.rank, "label": self.label, "record_id": self.record_id, "face_id": self.face_id,
            "case_id": self.case_id, "image": self.image,
            "similarity": _r(self.similarity), "confidence": _r(self.confidence),
        }


@dataclass
class PhotoHit:
    record_id: int
    face_id: int
    image: str
    similarity: float

    def to_dict(self) -> dict:
        return {"record_id": self.record_id, "face_id": self.face_id, "image": self.image,
                "similarity": _r(self.similarity)}


@dataclass
class PersonMatch:
    """One candidate person of a search: its best photo first (``record_id``/``face_id``/``image``)."""

    rank: int
    person_id: int
    label: str
    case_id: str | None
    similarity: float  # the person score (fusion of its photos' similarities)
    confidence: float | None  # identification probability (docs/BENCHMARKS.md section 3b)
    record_id: int
    face_id: int
    image: str
    photos: list[PhotoHit] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"rank": self.rank, "person_id": self.person_id, "label": self.label, "case_id": self.case_id,
                "record_id": self.record_id, "face_id": self.face_id, "image": self.image,
                "similarity": _r(self.similarity), "confidence": _r(self.confidence),
                "photos": [p.to_dict() for p in self.photos]}


@dataclass
class Decision:
    """Open-set decision of one face: is the top person's score at or above the threshold?"""

    in_gallery: bool
    threshold: float | None  # None: the engine's card has no open-set threshold
    fpir: float | None  # the FPIR the threshold was chosen for (None: a threshold set by hand)
    gallery_faces: int = 0

    def to_dict(self) -> dict:
        return {"in_gallery": self.in_gallery, "threshold": _r(self.threshold), "fpir": self.fpir,
                "gallery_faces": self.gallery_faces}


@dataclass
class Quality:
    score: float  # 0..1, 1 = a large, sharp, frontal, well-exposed face
    flags: list[str] = field(default_factory=list)  # "small", "blurry", "turned", "tilted", "dark", "bright"
    measures: dict = field(default_factory=dict)  # the raw measures behind the flags

    def to_dict(self) -> dict:
        return {"score": _r(self.score, 3), "flags": list(self.flags),
                "measures": {k: _r(v, 3) for k, v in self.measures.items()}}


@dataclass
class FaceResult:
    index: int
    face: Face
    liveness: object | None = None  # fasfinder.liveness.Liveness when a FAS model is installed
    matches: list[Match] = field(default_factory=list)  # the photo list (``--by photo``)
    embedding: np.ndarray | None = None
    persons: list[PersonMatch] | None = None  # the person list (default), None when searched by photo
    decision: Decision | None = None
    quality: Quality | None = None
    #: candidates rejected for this face of this photo before (a recorded decision): left out of
    #: ``matches``/``persons`` and listed here, best first (label, person_id, face_id, similarity)
    rejected: list[dict] = field(default_factory=list)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.face.box

    @property
    def landmarks(self) -> np.ndarray:
        return self.face.landmarks

    def to_dict(self, with_matches: bool = True) -> dict:
        d = {
            "box": [int(v) for v in self.box],
            "detector": self.face.detector,
            "liveness": self.liveness.to_dict() if self.liveness is not None else None,
        }
        if self.quality is not None:
            d["quality"] = self.quality.to_dict()
        if with_matches:
            shown = self.persons if self.persons is not None else self.matches
            d["matches"] = [m.to_dict() for m in shown]
            d["decision"] = self.decision.to_dict() if self.decision is not None else None
            d["rejected"] = [dict(r) for r in self.rejected]
        return d


@dataclass
class QueryResult:
    query: str
    error: dict | None = None
    faces: list[FaceResult] = field(default_factory=list)
    engine: str | None = None
    sha256: str | None = None
    size: tuple[int, int] | None = None  # (width, height)
    query_id: int | None = None
    timings_ms: dict = field(default_factory=dict)
    pixels: np.ndarray | None = None  # the decoded query image (for the UI), never serialised

    def to_dict(self, with_matches: bool = True) -> dict:
        d = {"query": self.query, "error": self.error, "faces": [f.to_dict(with_matches) for f in self.faces]}
        if with_matches:
            d["engine"] = self.engine
            d["query_id"] = self.query_id
        d["timings_ms"] = {k: round(v, 2) for k, v in self.timings_ms.items()}
        return d


@dataclass
class EnrollResult:
    path: str
    label: str | None
    record_id: int | None
    faces: int
    error: dict | None = None
    liveness: list | None = None
    review: str | None = None  # why a person should look at this enrollment (e.g. liveness uncertain)

    def to_dict(self) -> dict:
        return {"path": self.path, "label": self.label, "record_id": self.record_id, "faces": self.faces,
                "error": self.error, "liveness": self.liveness, "review": self.review}


@dataclass
class Heatmap:
    """One explanation map: Grad-CAM++ of the recognition or the liveness model for one face."""

    heatmap: np.ndarray  # H x W float32 in [0, 1] in the coordinates of the image it explains
    regions: dict[str, float]  # importance of the 10 landmark regions (sums to 1 over the face)
    method: str  # what produced it, for people ("recognition model, Grad-CAM++ on level2")
    layer: str = ""  # the network layer the map was taken at
    score: float = float("nan")  # the explained target (self projection / cosine / liveness score)


@dataclass
class MatchExplanation:
    """Per-match maps: what in the query face made it match the gallery face, and the reverse.

    ``gallery`` is in the coordinates of the gallery face crop (``FasFinder.face_crops``)."""

    face_id: int
    query: Heatmap
    gallery: Heatmap


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


@dataclass
class EngineInfo:
    name: str
    description: str  # one line for people
    default: bool = False
    details: dict | None = None  # the loaded engine's card summary (name, dim, files, ...), when asked for
    error: dict | None = None  # why the engine could not be loaded, when asked for details

    def to_dict(self) -> dict:
        d = {"name": self.name, **(self.details or {})}
        d.update(description=self.description, error=self.error)
        return d


@dataclass
class ServiceInfo:
    engine: str
    gallery: str
    counts: dict  # {"persons", "images", "faces", ...}
    liveness_unavailable: str | None  # why there is no liveness check, or None


def overlay(rgb: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 RGB image: ``rgb`` blended with the jet-coloured ``heatmap`` (H x W in [0, 1])."""

    import cv2

    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    rgb = rgb[..., :3].astype(np.float32)
    hm = np.asarray(heatmap, dtype=np.float32)
    if hm.shape != rgb.shape[:2]:
        hm = cv2.resize(hm, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.uint8(np.clip(hm, 0, 1) * 255), cv2.COLORMAP_JET)[:, :, ::-1].astype(np.float32)
    out = (1.0 - alpha) * rgb + alpha * colour
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
