"""Upkeep of the per-engine FAISS indexes: derived state, kept in step with SQLite.

Each engine's index (``<db>.<engine>.faiss``, see index.py) is opened on first use and checked
against the stored embeddings: missing ids are added from SQLite, stale ids removed, a damaged or
missing file rebuilt, so it can never return a face SQLite does not hold. After a commit the
writers (records.py) apply their change to the open indexes directly; a change made by another
connection is seen through the embeddings generation (``meta.embeddings_gen``) and replayed from
the change log. Flat (exact) search up to ``exact_max`` faces, IVF above.

An index file is tied to its gallery: it carries the gallery's random identity (meta
``gallery_id``) and the generation it reflects. One whose identity differs (another gallery's
index, an older file without one) or whose generation is ahead of the gallery's is rebuilt from
SQLite with a warning (``last_repair`` says why); a repair that cannot replay the change log
compares content -- ids *and* vectors -- not ids only. Every vector that reaches an index is
checked (:func:`check_embeddings`: size, finite, unit length): a stored one that is not is left
out of the index and reported (``last_repair["bad_vectors"]``), so no search can score above 1.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ..errors import GalleryError, NotFoundInGallery
from .db import GalleryDB
from .index import VectorIndex, clean_stale_temp_files, pick_nlist


log = logging.getLogger("fasfinder.gallery")

#: Largest accepted deviation of an embedding's L2 norm from 1 (engines write L2-normalised float32).
NORM_TOL = 1e-3
#: Largest accepted embedding size (the engines use 128 .. a few thousand).
MAX_DIM = 65536
#: An index vector differing from its stored one by more than this is not the stored one.
CONTENT_TOL = 1e-5


def unit_rows(vecs: np.ndarray) -> np.ndarray:
    """Mask of the rows that are finite and of L2 norm within NORM_TOL of 1."""

    vecs = np.asarray(vecs, dtype=np.float32)
    if vecs.ndim != 2:
        return np.zeros(len(vecs), bool)
    with np.errstate(all="ignore"):
        finite = np.all(np.isfinite(vecs), axis=1)
        norms = np.linalg.norm(np.where(np.isfinite(vecs), vecs, 0).astype(np.float64), axis=1)
    return finite & (np.abs(norms - 1.0) <= NORM_TOL)


def check_embeddings(engine: str, vecs, dim: int | None = None, *, code: str = "bad_argument",
                     where: str = "") -> np.ndarray:
    """``vecs`` as a (n, d) float32 array, or GalleryError (``code``): wrong size, NaN/inf, norm not 1.

    Nothing is re-normalised: a vector that is not unit length did not come from an engine.
    """

    pre = f"{where}: " if where else ""
    vecs = np.asarray(vecs, dtype=np.float32)
    if vecs.ndim != 2 or not 0 < vecs.shape[1] <= MAX_DIM:
        raise GalleryError(f"{pre}engine {engine}: embeddings of shape {vecs.shape}", code=code)
    if dim is not None and vecs.shape[1] != int(dim):
        raise GalleryError(f"{pre}engine {engine}: embedding size {vecs.shape[1]} differs from {dim}", code=code)
    if not np.all(np.isfinite(vecs)):
        raise GalleryError(f"{pre}engine {engine}: embeddings hold NaN or infinite values", code=code)
    bad = ~unit_rows(vecs)
    if bad.any():
        norm = float(np.linalg.norm(vecs[np.argmax(bad)]))
        raise GalleryError(f"{pre}engine {engine}: an embedding has L2 norm {norm:.6g}, not 1 (within {NORM_TOL})",
                           code=code)
    return vecs


class Vectors:
    """The stored embeddings of a gallery and the FAISS index of each engine."""

    def __init__(self, db: GalleryDB, *, exact_max: int, checkpoint_seconds: float = 120.0):
        self.db = db
        self.exact_max = int(exact_max)
        self.checkpoint_seconds = checkpoint_seconds
        self.last_repair: dict = {}
        self.last_save_error: str | None = None
        self.last_write_error: str | None = None  # an audit row a search could not write (read-only, disk full)
        self.bad_vectors: dict[str, list[int]] = {}  # engine -> stored face ids left out (norm not 1)
        self._indexes: dict[str, VectorIndex] = {}
        self._dims: dict[str, int] = {}
        self._last_save = time.monotonic()

    # -- stored embeddings -----------------------------------------------------------------
    def index_path(self, engine: str) -> Path:
        path = self.db.path
        return path.with_name(f"{path.name}.{engine}.faiss")

    def engines_in_db(self) -> set[str]:
        return {r[0] for r in self.db.conn.execute("SELECT DISTINCT engine FROM embeddings")}

    def has_engine(self, engine: str) -> bool:
        """Whether the gallery holds (or has opened an index for) embeddings of ``engine``."""

        if engine in self._indexes or engine in self._dims:
            return True
        return self.db.conn.execute("SELECT 1 FROM embeddings WHERE engine = ? LIMIT 1", (engine,)).fetchone() is not None

    def check_dim(self, engine: str, dim: int) -> None:
        """Raise GalleryError when ``dim`` differs from the size of ``engine``'s stored embeddings."""

        known = self._dims.get(engine)
        if known is None:
            row = self.db.conn.execute("SELECT vector FROM embeddings WHERE engine = ? LIMIT 1", (engine,)).fetchone()
            known = len(row[0]) // 4 if row else None
        if known is not None and known != dim:
            raise GalleryError(f"engine {engine}: embedding size {dim} differs from the gallery's {known}")
        self._dims[engine] = dim

    def prepare(self, engine: str, dim: int) -> VectorIndex:
        """Check the size and open (and sync) ``engine``'s index before rows are committed for it."""

        with self.db.lock:
            self.check_dim(engine, dim)
            return self.index(engine, dim)

    def stored_embeddings(self, engine: str, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(face ids, vectors) stored for ``engine`` (all, or those of ``ids``), ordered by face id."""

        conn = self.db.conn
        with self.db.lock:
            if ids is None:
                rows = conn.execute(
                    "SELECT face_id, vector FROM embeddings WHERE engine = ? ORDER BY face_id", (engine,)).fetchall()
            else:
                rows = []
                wanted = [int(i) for i in np.sort(np.asarray(ids, dtype=np.int64))]
                for start in range(0, len(wanted), 900):
                    chunk = wanted[start:start + 900]
                    rows.extend(conn.execute(
                        f"SELECT face_id, vector FROM embeddings WHERE engine = ? AND face_id IN ({','.join('?' * len(chunk))}) "
                        "ORDER BY face_id", (engine, *chunk)).fetchall())
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, self._dims.get(engine, 0)), np.float32)
        out_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        return out_ids, vecs

    def _stored_ids(self, engine: str) -> np.ndarray:
        cur = self.db.conn.execute("SELECT face_id FROM embeddings WHERE engine = ?", (engine,))
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    # -- open indexes ----------------------------------------------------------------------
    def index(self, engine: str, dim: int | None = None) -> VectorIndex:
        """``engine``'s index, opened (loaded and checked, or rebuilt) on first use."""

        idx = self._indexes.get(engine)
        if idx is None:
            if dim and engine not in self._dims:
                self.check_dim(engine, dim)
            idx = self._open_index(engine, dim)
            self._indexes[engine] = idx
        return idx

    def open_all(self) -> set[str]:
        """Open (and sync) the index of every engine the gallery holds; return their names."""

        engines = self.engines_in_db() | set(self._indexes)
        for engine in engines:
            self.index(engine)
        return engines

    def synced(self, engine: str, dim: int | None = None) -> VectorIndex:
        """``engine``'s index brought up to date with SQLite (cheap when nothing changed)."""

        return self._sync(engine, self.index(engine, dim))

    def applied_add(self, vec_by_engine: dict[str, np.ndarray], face_ids: list[int], gen_before: int,
                    gen_after: int) -> None:
        """Add faces just committed (generation ``gen_before`` -> ``gen_after``) to the open indexes."""

        ids = np.array(face_ids, dtype=np.int64)
        for engine, vecs in vec_by_engine.items():
            idx = self.index(engine, int(np.asarray(vecs).shape[-1]))
            if len(ids):
                idx.add(ids, vecs)
            # The index reflects the new generation only if it reflected the one before our commit
            # (otherwise another process changed the gallery: the next search re-syncs).
            idx.gen = gen_after if idx.gen == gen_before else -1

    def applied_remove(self, engines, face_ids: list[int], gen_before: int, gen_after: int) -> None:
        """Remove faces just deleted (generation ``gen_before`` -> ``gen_after``) from the indexes."""

        for engine in engines:
            idx = self.index(engine)
            idx.remove(face_ids)
            idx.gen = gen_after if idx.gen == gen_before else -1

    # -- saving ----------------------------------------------------------------------------
    def flush(self) -> None:
        """Bring every open index up to date (switching Flat <-> IVF by size) and save changed ones."""

        with self.db.lock:
            for engine, idx in list(self._indexes.items()):
                self._sync(engine, idx)
                idx = self._maybe_rebuild(engine, idx)
                if idx.dirty:
                    self._save(idx)
            self._last_save = time.monotonic()
            if not self.db.read_only:
                self._prune_change_log()

    def checkpoint(self) -> None:
        """Save changed indexes when the last save is ``checkpoint_seconds`` old."""

        if time.monotonic() - self._last_save >= self.checkpoint_seconds:
            for idx in self._indexes.values():
                if idx.dirty:
                    self._save(idx)
            self._last_save = time.monotonic()

    def _prune_change_log(self, keep: int = 200_000) -> None:
        """Drop change-log rows older than every saved index and than the last ``keep`` changes."""

        saved = [i.gen for i in self._indexes.values() if not i.dirty and i.gen >= 0]
        if not saved:
            return
        conn = self.db.conn
        limit = min(min(saved), self.db.gen() - keep)
        if limit > 0 and conn.execute("SELECT 1 FROM embedding_changes WHERE gen <= ? LIMIT 1", (limit,)).fetchone():
            with self.db.transaction():
                conn.execute("DELETE FROM embedding_changes WHERE gen <= ?", (limit,))

    # -- building and repair ---------------------------------------------------------------
    def _wanted_kind(self, n: int) -> str:
        return "ivf" if n > self.exact_max else "flat"

    def _build_index(self, engine: str, dim: int) -> VectorIndex:
        """A fresh index from every stored embedding (one read snapshot)."""

        with self.db.snapshot():
            gen = self.db.gen()
            ids, vecs = self.stored_embeddings(engine)
        ids, vecs = self._good(engine, ids, vecs)
        idx = VectorIndex.build(dim, ids, vecs, kind=self._wanted_kind(len(ids)), path=self.index_path(engine))
        idx.gen = gen
        idx.gallery_id = self.db.gallery_id
        idx.dirty = True
        return idx

    def _open_index(self, engine: str, dim: int | None = None) -> VectorIndex:
        path = self.index_path(engine)
        clean_stale_temp_files(path)
        dim = self._dims.get(engine) or dim
        if not dim:
            row = self.db.conn.execute("SELECT vector FROM embeddings WHERE engine = ? LIMIT 1", (engine,)).fetchone()
            if row:
                dim = len(row[0]) // 4
            else:  # storage knows no models: the caller says the size of a new engine's vectors
                raise NotFoundInGallery(f"the gallery holds no embeddings of engine {engine} (and no vector size "
                                        "was given to open an empty index)")
        self._dims[engine] = dim
        idx = VectorIndex.load(dim, path, self.db.file_cipher)
        reason = None
        if idx is None:
            reason = "index file damaged or outdated" if path.exists() else "index file missing"
        elif not idx.gallery_id:
            reason = "index file carries no gallery identity (older format)"
        elif idx.gallery_id != self.db.gallery_id:
            reason = (f"index file belongs to another gallery (its gallery id {idx.gallery_id[:12]}..., "
                      f"this gallery's {self.db.gallery_id[:12]}...)")
        elif idx.gen > self.db.gen():
            reason = f"index file is ahead of the gallery (generation {idx.gen} > {self.db.gen()})"
        if reason is not None:
            if idx is not None or path.exists():
                log.warning("%s: engine %s: %s; rebuilt from the gallery's stored embeddings", self.db.path, engine,
                            reason)
            idx = self._build_index(engine, dim)
            self.last_repair = {"engine": engine, "action": "rebuilt", "faces": idx.ntotal, "reason": reason,
                                "warning": path.exists()}
        else:
            self.last_repair = {"engine": engine, "action": "loaded"}
            if idx.gen == self.db.gen() and idx.ntotal != self._stored_count(engine):
                idx.gen = -1  # same generation, other content: compare it with SQLite below
            self._sync(engine, idx, report=True)
        if self.bad_vectors.get(engine):
            self.last_repair["bad_vectors"] = len(self.bad_vectors[engine])
        idx = self._maybe_rebuild(engine, idx)
        if idx.dirty:
            self._save(idx)
        self.db.secure_files()
        return idx

    def _stored_count(self, engine: str) -> int:
        return int(self.db.conn.execute("SELECT COUNT(*) FROM embeddings WHERE engine = ?", (engine,)).fetchone()[0])

    def _good(self, engine: str, ids: np.ndarray, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows fit for an index (finite, unit length); the others are left out, logged and reported."""

        ok = unit_rows(vecs) if len(ids) else np.zeros(0, bool)
        if len(ids) and not ok.all():
            bad = [int(i) for i in np.asarray(ids)[~ok]]
            known = self.bad_vectors.setdefault(engine, [])
            new = sorted(set(bad) - set(known))
            if new:
                log.warning("%s: engine %s: %d stored embedding(s) are not unit length (face ids %s%s): left out of "
                            "the index", self.db.path, engine, len(new), new[:10], "..." if len(new) > 10 else "")
                known.extend(new)
            return np.asarray(ids)[ok], np.asarray(vecs)[ok]
        return ids, vecs

    def _save(self, idx: VectorIndex) -> None:
        """Save one index (stamped with this gallery's identity); a read-only gallery saves nothing, and a
        failed save (disk full, ...) is logged, not fatal: the index stays in memory and is repairable."""

        if self.db.read_only:
            return
        idx.gallery_id = self.db.gallery_id
        try:
            idx.save(self.db.file_cipher)
            self.last_save_error = None
        except OSError as exc:
            self.last_save_error = f"{idx.path}: {exc}"
            log.warning("could not save the index %s (%s); it is rebuilt or repaired at the next open", idx.path, exc)
        self._last_save = time.monotonic()

    def _sync(self, engine: str, idx: VectorIndex, report: bool = False) -> VectorIndex:
        """Make ``idx`` hold exactly the faces -- ids and vectors -- SQLite holds for ``engine``.

        Cheap when in step (one SELECT of the generation counter). Otherwise, in one WAL read
        snapshot: when the change log covers every generation after the index's, the faces it names
        are removed from the index and re-added from their stored vectors if they still exist;
        when it does not (log pruned, unknown generation), the index's content is compared with the
        stored embeddings (ids and vectors): on any difference -- a stale, missing or changed
        vector, a duplicate id -- the index is refilled from SQLite. Vectors that are not unit
        length are never added (:meth:`_good`).
        """

        gen = self.db.gen()
        if idx.gen == gen and idx.gen >= 0:
            return idx
        stale = missing = changed = 0
        rebuild = replayed = False
        with self.db.snapshot() as conn:  # one read snapshot (WAL): ids, vectors, log and gen agree
            gen = self.db.gen()
            lo = conn.execute("SELECT MIN(gen) FROM embedding_changes").fetchone()[0]
            if idx.gen >= 0 and gen > idx.gen and lo is not None and lo <= idx.gen + 1:
                touched = np.fromiter((r[0] for r in conn.execute(
                    "SELECT DISTINCT face_id FROM embedding_changes WHERE gen > ? AND engine = ?", (idx.gen, engine))),
                    dtype=np.int64)
                if len(touched):
                    idx.remove(touched)
                    ids, vecs = self._good(engine, *self.stored_embeddings(engine, touched))
                    idx.add(ids, vecs)
                    missing = len(ids)
                replayed = True
            else:
                want_ids, want_vecs = self._good(engine, *self.stored_embeddings(engine))
                have_ids, have_vecs = idx.contents()
                uniq = np.unique(have_ids)
                dups = len(uniq) != len(have_ids)
                stale = len(np.setdiff1d(uniq, want_ids, assume_unique=True))
                missing = len(np.setdiff1d(want_ids, uniq, assume_unique=True))
                if not dups:
                    common, hi, wi = np.intersect1d(have_ids, want_ids, assume_unique=True, return_indices=True)
                    if len(common):
                        diff = np.abs(have_vecs[hi].astype(np.float32) - want_vecs.reshape(-1, idx.dim)[wi]).max(axis=1)
                        changed = int(np.count_nonzero(~(diff <= CONTENT_TOL)))
                rebuild = dups or bool(stale or missing or changed)
                if rebuild:
                    idx.reset()
                    if idx.kind == "ivf" and len(want_ids) < idx.nlist * 4:
                        idx = VectorIndex(idx.dim, idx.path, kind="flat")
                    idx.add(want_ids, want_vecs)
        idx.gen = gen
        if rebuild or replayed and missing:
            idx.dirty = True
        if report and (rebuild or replayed):
            self.last_repair = {"engine": engine, "action": "repaired",
                                "method": "change log" if replayed else "content comparison",
                                "stale": stale, "missing": missing, "changed": changed}
            if changed:
                self.last_repair["warning"] = True
                log.warning("%s: engine %s: %d index vector(s) differed from the stored embeddings; index refilled",
                            self.db.path, engine, changed)
        if self._indexes.get(engine) is not None and self._indexes[engine] is not idx:
            self._indexes[engine] = idx
        return idx

    def _maybe_rebuild(self, engine: str, idx: VectorIndex) -> VectorIndex:
        """Switch Flat <-> IVF when the size crosses ``exact_max``; retrain IVF when it grew 4x."""

        n = idx.ntotal
        want = self._wanted_kind(n)
        retrain = idx.kind == "ivf" and (n > 4 * max(idx.trained_on, 1) or idx.nlist < pick_nlist(n) // 4)
        if want == idx.kind and not retrain:
            return idx
        if want == "ivf" and n < pick_nlist(n) * 4:
            return idx
        new = self._build_index(engine, idx.dim)
        self._sync(engine, new)
        if engine in self._indexes:
            self._indexes[engine] = new
        self.last_repair = {"engine": engine, "action": "rebuilt", "kind": new.kind, "faces": new.ntotal}
        return new

    # -- reports ---------------------------------------------------------------------------
    def index_info(self, engine: str) -> dict:
        with self.db.lock:
            idx = self.index(engine)
            return {"engine": engine, "kind": idx.kind, "faces": idx.ntotal, "nlist": idx.nlist, "nprobe": idx.nprobe,
                    "gen": idx.gen, "exact_max": self.exact_max, "path": str(idx.path)}

    def verify_index(self, engine: str) -> dict:
        """Check (and repair) ``engine``'s index against SQLite; report what was done."""

        with self.db.lock:
            self._indexes.pop(engine, None)
            idx = self.index(engine)
            report = dict(self.last_repair)
            report["index_faces"] = idx.ntotal
            stored_ids, stored_vecs = self._good(engine, *self.stored_embeddings(engine))
            report["sqlite_faces"] = len(self._stored_ids(engine))
            report["bad_vectors"] = len(self.bad_vectors.get(engine, []))
            have_ids, have_vecs = idx.contents()
            same_ids = len(have_ids) == len(np.unique(have_ids)) and np.array_equal(have_ids, stored_ids)
            report["consistent"] = bool(same_ids and (not len(have_ids) or float(np.abs(
                have_vecs - stored_vecs.reshape(-1, idx.dim)).max()) <= CONTENT_TOL))
            report["kind"] = idx.kind
            return report
