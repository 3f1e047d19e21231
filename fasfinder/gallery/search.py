"""Search: the top-k gallery faces of each query vector, every hit confirmed in SQLite."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import GalleryError
from .audit import AuditLog
from .crypt import OPERATIONAL_ERRORS
from .vectors import NORM_TOL, Vectors

log = logging.getLogger("fasfinder.gallery")


@dataclass
class SearchHit:
    face_id: int
    image_id: int
    person_id: int
    label: str
    case_id: str | None
    image_path: str
    similarity: float


def search(vectors: Vectors, audit: AuditLog | None, engine: str, queries: np.ndarray,
           k: int = 5, face_ids: np.ndarray | None = None) -> list[list[SearchHit]]:
    """Top-``k`` hits for each query vector (rows L2-normalised); an audit row when ``audit`` is given.

    Thread-safe and safe against other processes changing the gallery: the index is re-synced
    when SQLite's generation moved, and every hit is looked up in SQLite in the same locked
    section (a face deleted meanwhile is dropped, never returned).

    Similarities are never above 1: the indexes hold unit vectors only (vectors.py); a score above
    1 + NORM_TOL (a vector that is not unit length) drops the hit with a warning, and the rest are
    clipped to [-1, 1]. The audit row of a read-only gallery is not written, and one that cannot be
    written (disk full) is logged: the search still answers (``vectors.last_write_error`` says why).

    ``face_ids``: compare against these faces only (a search restricted to cases): an exact scan of
    their stored vectors instead of the index, so a small case is searched in full, never missed.
    """

    db = vectors.db
    vectors.last_write_error = None
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries[None]
    with db.lock:
        if not vectors.has_engine(engine):
            return [[] for _ in range(len(queries))]
        idx = vectors.synced(engine, queries.shape[1])
        if queries.shape[1] != idx.dim:
            raise GalleryError(f"engine {engine}: query size {queries.shape[1]} differs from the gallery's {idx.dim}")
        # Ask for a few more than k so hits dropped as deleted-meanwhile do not shorten the list.
        if face_ids is None:
            sims, ids = idx.search(queries, k + 4 if k > 0 else 0)
        else:
            sims, ids = _scan(vectors, engine, queries, face_ids, k + 4 if k > 0 else 0)
        wanted = sorted({int(i) for i in ids.ravel() if i >= 0})
        info = {}
        for start in range(0, len(wanted), 900):
            chunk = wanted[start:start + 900]
            for r in db.conn.execute(
                "SELECT f.id, f.image_id, i.person_id, p.label, p.case_id, i.path FROM faces f "
                "JOIN embeddings e ON e.face_id = f.id AND e.engine = ? "
                f"JOIN images i ON f.image_id = i.id JOIN persons p ON i.person_id = p.id WHERE f.id IN ({','.join('?' * len(chunk))})",
                (engine, *chunk),
            ):
                info[r[0]] = r
        out = []
        for row_s, row_i in zip(sims, ids):
            hits = []
            for s, i in zip(row_s, row_i):
                r = info.get(int(i))
                if r is None:  # never hand out an id SQLite does not hold
                    continue
                if not s <= 1.0 + NORM_TOL:  # (also NaN) the stored vector is not unit length
                    log.warning("%s: engine %s: face %d scored %.4g (> 1): dropped", db.path, engine, int(i), float(s))
                    continue
                hits.append(SearchHit(face_id=r[0], image_id=r[1], person_id=r[2], label=r[3], case_id=r[4],
                                      image_path=r[5], similarity=float(min(1.0, max(-1.0, float(s))))))
                if len(hits) == k:
                    break
            out.append(hits)
        if audit is not None and db.read_only:
            vectors.last_write_error = "read-only gallery: the search was not written to the audit log"
        elif audit is not None:
            try:
                with db.transaction():
                    audit.write("search", {"engine": engine, "queries": len(queries), "k": k,
                                           "hits": [[h.face_id for h in hs] for hs in out]})
            except (OSError, *OPERATIONAL_ERRORS, GalleryError) as exc:  # disk full, busy: answer anyway
                vectors.last_write_error = f"the search could not be written to the audit log ({exc})"
                log.warning("%s: %s", db.path, vectors.last_write_error)
    return out


def _scan(vectors: Vectors, engine: str, queries: np.ndarray, face_ids: np.ndarray, k: int):
    """(similarities, ids) of the best ``k`` of ``face_ids`` for each query, by exact dot products."""

    ids, vecs = vectors.stored_embeddings(engine, np.asarray(face_ids, dtype=np.int64))
    n = min(k, len(ids))
    if n == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    sims = queries @ vecs.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :n]
    return np.take_along_axis(sims, order, axis=1), ids[order]
