"""Plain result objects returned by the service (no Qt, no torch): what the CLI prints and the UI draws."""

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
class FaceResult:
    index: int
    face: Face
    liveness: object | None = None  # fasfinder.liveness.Liveness when a FAS model is installed
    matches: list[Match] = field(default_factory=list)
    embedding: np.ndarray | None = None

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
        if with_matches:
            d["matches"] = [m.to_dict() for m in self.matches]
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

    def to_dict(self) -> dict:
        return {"path": self.path, "label": self.label, "record_id": self.record_id, "faces": self.faces,
                "error": self.error, "liveness": self.liveness}
