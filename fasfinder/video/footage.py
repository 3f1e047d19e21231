"""Find one person in footage: which tracks of a scanned video are that person, and when.

Each track is compared once with the person's reference embeddings (a query photo's face, or an
enrolled person's faces): its similarity is the best cosine between the track's mean embedding and
a reference, and the track is the person when the engine's calibrated same-person probability of
that similarity reaches ``min_confidence``. The spans are the matched tracks' time ranges, merged
where they touch (gaps of at most ``merge_gap_s``). The series is, for every sampled frame, the
highest similarity of any face in it to the references (None: no face), for the plot over time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .results import FootageResult, Span
from .scan import VideoScan


def similarity_threshold(confidence: Callable[[np.ndarray], np.ndarray], min_confidence: float) -> float | None:
    """The lowest similarity whose calibrated confidence reaches ``min_confidence`` (None: no calibration)."""

    grid = np.linspace(-1.0, 1.0, 20001)
    conf = np.asarray(confidence(grid), dtype=np.float64)
    if np.all(np.isnan(conf)):
        return None
    ok = np.nonzero(conf >= min_confidence)[0]
    return float(grid[ok[0]]) if len(ok) else None


def find_in_scan(scan: VideoScan, references: np.ndarray, *, threshold: float, confidence=None,
                 merge_gap_s: float | None = None) -> FootageResult:
    refs = np.atleast_2d(np.asarray(references, dtype=np.float32))
    gap = merge_gap_s if merge_gap_s is not None else 1.5 / scan.rate
    best_at: dict[float, float] = {}
    matched = []
    for tr in scan.tracks:
        sims = (np.asarray(tr.embeddings) @ refs.T).max(axis=1)
        for t, s in zip(tr.times, sims):
            best_at[t] = max(best_at.get(t, -1.0), float(s))
        score = float((refs @ tr.mean_embedding).max())
        if score >= threshold:
            i = int(np.argmax(sims))
            matched.append((tr.start_s, tr.end_s, tr.times[i], float(sims[i]), score, tr.track))
    matched.sort()
    spans: list[Span] = []
    for start, end, best_t, best_sim, score, number in matched:
        conf = None if confidence is None else float(confidence(np.array([score]))[0])
        if spans and start - spans[-1].end_s <= gap:
            sp = spans[-1]
            sp.end_s = max(sp.end_s, end)
            sp.tracks.append(number)
            if best_sim > sp.similarity:
                sp.best_s, sp.similarity = best_t, best_sim
            if conf is not None and (sp.confidence is None or conf > sp.confidence):
                sp.confidence = conf
            continue
        spans.append(Span(start_s=start, end_s=end, best_s=best_t, similarity=best_sim, confidence=conf,
                          tracks=[number]))
    series = [(t, best_at.get(t)) for t in scan.sample_times]
    return FootageResult(query=scan.path, reference="", spans=spans, series=series, threshold=threshold,
                         video=scan.info.to_dict(), warnings=scan.warnings)
