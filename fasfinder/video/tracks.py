"""Face tracks: the faces of sampled frames linked across time by box overlap and embedding similarity.

:class:`Tracker` takes each sampled frame's faces (boxes in original-frame pixels, unit embeddings,
quality) and links each to an open track: a face continues a track when its box overlaps the
track's last box (IoU >= ``min_iou``) and its embedding is close to the track's (cosine >=
``link_similarity``), or without overlap when the embedding alone is very close (>= ``rejoin_similarity``:
the same person after a jump or an occlusion). A scene cut (:func:`is_cut` on small grey copies of
consecutive samples) closes every track. Assignment is greedy by score, one face per
track per frame; a track not seen for ``max_gap_s`` is closed. Each track keeps every sighting's time,
box and embedding (for similarity over time) and the ``keep`` best-quality sightings with a crop of
the frame around the face (for liveness, thumbnails and enrollment).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..faces import Face
from ..results import Quality

#: The crop kept around a best face: the box grown by this factor on each side (liveness crops reach ~4x the box).
CROP_GROW = 2.0


#: A scene cut: the mean absolute difference of two sampled frames' 32 x 18 grey thumbnails above this.
CUT_DIFFERENCE = 20.0


def is_cut(prev: np.ndarray | None, thumb: np.ndarray) -> bool:
    return prev is not None and float(np.abs(prev - thumb).mean()) > CUT_DIFFERENCE


def grey_thumb(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def shift_face(face: Face, dx: int, dy: int) -> Face:
    """``face`` in the coordinates of a crop whose top-left corner is (dx, dy)."""

    off = np.array([dx, dy], dtype=np.float32)
    x0, y0, x1, y1 = face.box
    return Face(box=(x0 - dx, y0 - dy, x1 - dx, y1 - dy), landmarks=face.landmarks - off, shape5=face.shape5 - off,
                score=face.score, detector=face.detector)


def scale_face(face: Face, factor: float) -> Face:
    """``face`` with its box and landmarks multiplied by ``factor`` (working pixels -> original pixels)."""

    if factor == 1.0:
        return face
    box = tuple(int(round(v * factor)) for v in face.box)
    return Face(box=box, landmarks=face.landmarks * factor, shape5=face.shape5 * factor, score=face.score,
                detector=face.detector)


@dataclass
class Sighting:
    """One of a track's best faces: the crop of the (working-size) frame around it and the face in that crop."""

    t_s: float
    sample: int
    quality: Quality
    embedding: np.ndarray
    crop: np.ndarray  # RGB uint8
    face: Face  # in crop coordinates
    box: tuple[int, int, int, int]  # in original-frame pixels


@dataclass
class Track:
    track: int  # 1, 2, ... in order of first appearance
    times: list[float] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # original-frame pixels
    embeddings: list[np.ndarray] = field(default_factory=list)
    best: list[Sighting] = field(default_factory=list)  # best quality first
    _sum: np.ndarray | None = None

    @property
    def start_s(self) -> float:
        return self.times[0]

    @property
    def end_s(self) -> float:
        return self.times[-1]

    @property
    def faces(self) -> int:
        return len(self.times)

    @property
    def mean_embedding(self) -> np.ndarray:
        v = self._sum if self._sum is not None else np.zeros(1, np.float32)
        return (v / max(np.linalg.norm(v), 1e-12)).astype(np.float32)

    def best_embedding(self) -> np.ndarray:
        """The unit mean of the best sightings' embeddings: what the track is searched with."""

        v = np.mean([s.embedding for s in self.best], axis=0)
        return (v / max(np.linalg.norm(v), 1e-12)).astype(np.float32)

    def add(self, t: float, box, embedding: np.ndarray) -> None:
        self.times.append(float(t))
        self.boxes.append(tuple(int(v) for v in box))
        self.embeddings.append(embedding)
        self._sum = embedding.astype(np.float64) if self._sum is None else self._sum + embedding


@dataclass
class Detection:
    """One face of one sampled frame, as the tracker gets it."""

    face: Face  # working-frame coordinates
    box: tuple[int, int, int, int]  # original-frame pixels
    embedding: np.ndarray  # unit vector
    quality: Quality


class Tracker:
    def __init__(self, *, min_iou: float = 0.2, link_similarity: float = 0.86, rejoin_similarity: float = 0.93,
                 max_gap_s: float = 2.0, keep: int = 3):
        self.min_iou = min_iou
        self.link_similarity = link_similarity
        self.rejoin_similarity = rejoin_similarity
        self.max_gap_s = max_gap_s
        self.keep = keep
        self.tracks: list[Track] = []
        self._open: list[Track] = []

    def update(self, t: float, sample: int, rgb: np.ndarray, detections: list[Detection], cut: bool = False) -> list[int]:
        """Link one sampled frame's faces; the track number of each detection, in order (``cut``: a scene
        cut before this frame closes every open track)."""

        self._open = [] if cut else [tr for tr in self._open if t - tr.end_s <= self.max_gap_s]
        pairs = []
        for di, d in enumerate(detections):
            for ti, tr in enumerate(self._open):
                if tr.end_s >= t:  # already has a face in this frame
                    continue
                sim = float(np.dot(d.embedding, tr.mean_embedding))
                overlap = iou(d.box, tr.boxes[-1])
                if (overlap >= self.min_iou and sim >= self.link_similarity) or sim >= self.rejoin_similarity:
                    pairs.append((sim + overlap, di, ti))
        pairs.sort(reverse=True)
        chosen: dict[int, Track] = {}
        used: set[int] = set()
        for _, di, ti in pairs:
            if di in chosen or ti in used:
                continue
            chosen[di] = self._open[ti]
            used.add(ti)
        out = []
        for di, d in enumerate(detections):
            tr = chosen.get(di)
            if tr is None:
                tr = Track(track=len(self.tracks) + 1)
                self.tracks.append(tr)
                self._open.append(tr)
            tr.add(t, d.box, d.embedding)
            self._keep_best(tr, t, sample, rgb, d)
            out.append(tr.track)
        return out

    def _keep_best(self, tr: Track, t: float, sample: int, rgb: np.ndarray, d: Detection) -> None:
        def rank(q: Quality, face: Face) -> tuple[float, int]:
            return (round(q.score, 3), face.width * face.height)

        if len(tr.best) >= self.keep and rank(d.quality, d.face) <= rank(tr.best[-1].quality, tr.best[-1].face):
            return
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = d.face.box
        gw, gh = int((x1 - x0) * CROP_GROW), int((y1 - y0) * CROP_GROW)
        cx0, cy0, cx1, cy1 = max(0, x0 - gw), max(0, y0 - gh), min(w, x1 + gw), min(h, y1 + gh)
        crop = np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1])
        s = Sighting(t_s=t, sample=sample, quality=d.quality, embedding=d.embedding, crop=crop,
                     face=shift_face(d.face, cx0, cy0), box=d.box)
        tr.best.append(s)
        tr.best.sort(key=lambda b: rank(b.quality, b.face), reverse=True)
        del tr.best[self.keep:]
