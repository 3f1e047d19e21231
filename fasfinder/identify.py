"""Person-level, open-set identification: photo hits -> persons, the open-set decision, the
identification confidence.

* **Fusion**: a person's score from the similarities of its photos (``max``, ``mean_top2``,
  ``softmax`` pooling); the product uses the one chosen by measurement on CelebA
  (``open_set.fusion`` in the engine's card, docs/results/identify.md).
* **Decision**: "in gallery" when the top person's score reaches the threshold chosen for the stated
  FPIR on CelebA. The FPIR of a fixed threshold grows with the gallery, so the card holds the
  threshold for a grid of gallery sizes (enrolled faces) and the product interpolates in log size.
* **Confidence**: the probability that *this candidate* is the person of the query, a logistic model
  over (person score, margin to the best other candidate, log gallery size, top candidate or not)
  fitted on CelebA training identities (``identification`` in the card).

numpy only; the fits live in :mod:`fasfinder.evaluation.identify_fit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .results import Decision, PersonMatch, PhotoHit

FUSIONS = ("max", "mean_top2", "softmax")
SOFTMAX_TAU = 0.02  # temperature of softmax pooling (cosine units)
DEFAULT_FPIR = 0.01


def fuse(similarities, method: str = "max") -> float:
    """One person's score from its photos' similarities to the query."""

    s = np.sort(np.asarray(similarities, dtype=np.float64))[::-1]
    if s.size == 0:
        raise ValueError("a person needs at least one photo")
    if method == "max":
        return float(s[0])
    if method == "mean_top2":
        return float(s[:2].mean())
    if method == "softmax":
        w = np.exp((s - s[0]) / SOFTMAX_TAU)
        return float((w * s).sum() / w.sum())
    raise ValueError(f"unknown fusion {method!r}; one of {', '.join(FUSIONS)}")


def fuse_matrix(sims: np.ndarray, person: np.ndarray, n_persons: int, method: str) -> np.ndarray:
    """Person scores for many queries at once: ``sims`` (queries x photos), ``person`` the person
    index (0..n_persons-1) of each photo column. Used by the evaluations (same rule as :func:`fuse`)."""

    if person.shape[0] == n_persons and np.array_equal(person, np.arange(n_persons)):
        return np.asarray(sims, dtype=np.float64)  # one photo per person: every fusion is the identity
    out = np.full((sims.shape[0], n_persons), -np.inf)
    order = np.argsort(person, kind="stable")
    bounds = np.searchsorted(person[order], np.arange(n_persons + 1))
    for p in range(n_persons):
        cols = order[bounds[p]:bounds[p + 1]]
        if cols.size == 0:
            continue
        block = np.sort(sims[:, cols], axis=1)[:, ::-1]
        if method == "max":
            out[:, p] = block[:, 0]
        elif method == "mean_top2":
            out[:, p] = block[:, :2].mean(axis=1)
        elif method == "softmax":
            w = np.exp((block - block[:, :1]) / SOFTMAX_TAU)
            out[:, p] = (w * block).sum(axis=1) / w.sum(axis=1)
        else:
            raise ValueError(f"unknown fusion {method!r}")
    return out


def confidence_features(scores: np.ndarray, gallery_faces: int) -> np.ndarray:
    """(person score, margin to the best *other* candidate, log10 gallery size, 1 for the top candidate
    else 0) for each candidate of one search, ``scores`` sorted best first. A single candidate has
    margin = its score + 1."""

    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return np.zeros((0, 4))
    top = np.arange(s.size) == 0
    best_other = np.where(top, s[1] if s.size > 1 else -1.0, s[0])
    return np.stack([s, s - best_other, np.full(s.size, math.log10(max(1, gallery_faces))), top.astype(float)], axis=1)


@dataclass
class IdentModel:
    """What the engine's card says about open-set search (``open_set`` and ``identification``)."""

    fusion: str = "max"
    fpir: float = DEFAULT_FPIR
    thresholds: list | None = None  # [[gallery_faces, threshold], ...] ascending
    weights: list | None = None  # logistic weights over confidence_features, then the intercept
    faces_range: tuple = (1, 10**9)  # gallery sizes the confidence model was fitted on (clamped to them)

    @classmethod
    def from_card(cls, card: dict) -> IdentModel:
        o = card.get("open_set") or {}
        c = card.get("identification") or {}
        return cls(fusion=o.get("fusion", "max"), fpir=float(o.get("fpir", DEFAULT_FPIR)),
                   thresholds=o.get("thresholds_by_gallery_faces"), weights=c.get("weights"),
                   faces_range=tuple(c.get("gallery_faces_range") or (1, 10**9)))

    def threshold(self, gallery_faces: int) -> float | None:
        """The card's threshold for this gallery size (log-linear between grid points, clamped)."""

        if not self.thresholds:
            return None
        n = np.log10([max(1, g) for g, _ in self.thresholds])
        t = [t for _, t in self.thresholds]
        return float(np.interp(math.log10(max(1, gallery_faces)), n, t))

    def confidence(self, scores: np.ndarray, gallery_faces: int) -> np.ndarray:
        if not self.weights or len(scores) == 0:
            return np.full(len(scores), np.nan)
        w = np.asarray(self.weights, dtype=np.float64)
        n = min(max(gallery_faces, self.faces_range[0]), self.faces_range[1])
        z = confidence_features(scores, n) @ w[:-1] + w[-1]
        return 1.0 / (1.0 + np.exp(-z))


def group_persons(hits, k: int, fusion: str = "max") -> list[tuple[float, list]]:
    """``hits`` (objects with ``person_id`` and ``similarity``, best first) -> the top ``k`` persons
    as ``(person score, that person's hits best first)``, best person first."""

    by: dict[int, list] = {}
    for h in hits:
        by.setdefault(h.person_id, []).append(h)
    persons = [(fuse([h.similarity for h in hs], fusion), sorted(hs, key=lambda h: -h.similarity)) for hs in by.values()]
    persons.sort(key=lambda p: -p[0])
    return persons[:k]


def person_matches(hits, k: int, model: IdentModel, gallery_faces: int,
                   threshold_override: float | None = None) -> tuple[list[PersonMatch], Decision]:
    """The person list and the open-set decision of one face."""

    persons = group_persons(hits, k, model.fusion)
    scores = np.array([p[0] for p in persons])
    conf = model.confidence(scores, gallery_faces)
    out = []
    for r, ((score, hs), c) in enumerate(zip(persons, conf)):
        best = hs[0]
        out.append(PersonMatch(
            rank=r + 1, person_id=best.person_id, label=best.label, case_id=best.case_id, similarity=score,
            confidence=None if np.isnan(c) else float(c), record_id=best.image_id, face_id=best.face_id,
            image=best.image_path,
            photos=[PhotoHit(record_id=h.image_id, face_id=h.face_id, image=h.image_path, similarity=h.similarity)
                    for h in hs]))
    t = threshold_override if threshold_override is not None else model.threshold(gallery_faces)
    decision = Decision(in_gallery=bool(t is not None and len(scores) and scores[0] >= t), threshold=t,
                        fpir=None if threshold_override is not None else model.fpir, gallery_faces=gallery_faces)
    return out, decision
