"""Result objects of the video operations (what ``search clip.mp4 --json`` prints and the timeline draws).

A :class:`VideoResult` is one video: its tracks (:class:`VideoTrack`, each searched once: the same
person list and open-set decision as a photo's face) or its error. A :class:`FootageResult` is one
video searched for one person: the time spans where that person appears and the similarity over time.
Thumbnails (small RGB arrays) travel once, service -> front end, and are never serialised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..results import Decision, PersonMatch, Quality


def _r(x, nd: int = 3):
    return None if x is None else round(float(x), nd)


@dataclass
class VideoTrack:
    track: int
    start_s: float
    end_s: float
    best_s: float  # time of the best-quality face
    box: tuple[int, int, int, int]  # of the best face, in its frame (original pixels)
    faces: int  # sampled frames the face was seen in
    liveness: object | None = None  # fasfinder.liveness verdict of the best face
    quality: Quality | None = None  # of the best face
    persons: list[PersonMatch] = field(default_factory=list)
    decision: Decision | None = None
    best_times: list[float] = field(default_factory=list)  # the kept best faces, best first
    thumbnails: list[np.ndarray] = field(default_factory=list)  # their face crops (RGB), best first
    times: list[float] = field(default_factory=list)  # every sighting

    def to_dict(self) -> dict:
        return {"track": self.track, "start_s": _r(self.start_s), "end_s": _r(self.end_s), "best_s": _r(self.best_s),
                "box": [int(v) for v in self.box], "faces": self.faces,
                "liveness": self.liveness.to_dict() if self.liveness is not None else None,
                "quality": self.quality.to_dict() if self.quality is not None else None,
                "matches": [p.to_dict() for p in self.persons],
                "decision": self.decision.to_dict() if self.decision is not None else None,
                "best_frames_s": [_r(t) for t in self.best_times]}


@dataclass
class VideoResult:
    query: str
    error: dict | None = None
    tracks: list[VideoTrack] = field(default_factory=list)
    engine: str | None = None
    rate: float | None = None
    video: dict | None = None  # VideoInfo.to_dict(): width, height, fps, frames, duration_s, codec, size_bytes
    sampled: int = 0  # frames sampled and searched for faces
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"query": self.query, "error": self.error, "tracks": [t.to_dict() for t in self.tracks],
                "engine": self.engine, "rate": self.rate, "video": self.video, "sampled": self.sampled,
                "warnings": list(self.warnings), "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()}}


@dataclass
class Span:
    start_s: float
    end_s: float
    best_s: float  # the time of the highest similarity inside
    similarity: float  # that similarity
    confidence: float | None  # the engine's calibrated same-person probability of the best track
    tracks: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"start_s": _r(self.start_s), "end_s": _r(self.end_s), "best_s": _r(self.best_s),
                "similarity": _r(self.similarity, 4), "confidence": _r(self.confidence, 4), "tracks": list(self.tracks)}


@dataclass
class FootageResult:
    query: str  # the video
    reference: str  # "photo PATH" or "person ID (LABEL)"
    error: dict | None = None
    spans: list[Span] = field(default_factory=list)
    series: list[tuple[float, float | None]] = field(default_factory=list)  # (t, best similarity of a face then)
    threshold: float | None = None  # the similarity a track needs (engine calibration at min_confidence)
    video: dict | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"query": self.query, "reference": self.reference, "error": self.error,
                "spans": [s.to_dict() for s in self.spans], "threshold": _r(self.threshold, 4),
                "series": [[_r(t), _r(s, 4)] for t, s in self.series], "video": self.video,
                "warnings": list(self.warnings)}
