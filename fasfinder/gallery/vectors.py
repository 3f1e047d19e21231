"""Upkeep of the per-engine FAISS indexes: derived state, kept in step with SQLite.

Each engine's index (``<db>.<engine>.faiss``, see index.py) is opened on first use and checked
against the stored embeddings: missing ids are added from SQLite, stale ids removed, a damaged or
missing file rebuilt, so it can never return a face SQLite does not hold. After a commit the
writers (records.py) apply their change to the open indexes directly; a change made by another
connection is seen through the embeddings generation (``meta.embeddings_gen``) and replayed from
the change log. Flat (exact) search up to ``exact_max`` faces, IVF above.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import GalleryError, NotFoundInGallery
from .db import GalleryDB
from .index import VectorIndex, clean_stale_temp_files, pick_nlist


class Vectors:
    """The stored embeddings of a gallery and the FAISS index of each engine."""

    def __init__(self, db: GalleryDB, *, exact_max: int, checkpoint_seconds: float = 120.0):
        self.db = db
        self.exact_max = int(exact_max)
        self.checkpoint_seconds = checkpoint_seconds
        self.last_repair: dict = {}
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
                    idx.save()
            self._last_save = time.monotonic()
            self._prune_change_log()

    def checkpoint(self) -> None:
        """Save changed indexes when the last save is ``checkpoint_seconds`` old."""

        if time.monotonic() - self._last_save >= self.checkpoint_seconds:
            for idx in self._indexes.values():
                if idx.dirty:
                    idx.save()
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
        idx = VectorIndex.build(dim, ids, vecs, kind=self._wanted_kind(len(ids)), path=self.index_path(engine))
        idx.gen = gen
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
        idx = VectorIndex.load(dim, path)
        if idx is None:
            idx = self._build_index(engine, dim)
            self.last_repair = {"engine": engine, "action": "rebuilt", "faces": idx.ntotal,
                                "reason": "index file damaged or outdated" if path.exists() else "index file missing"}
        else:
            self.last_repair = {"engine": engine, "action": "loaded"}
            self._sync(engine, idx, report=True)
        idx = self._maybe_rebuild(engine, idx)
        if idx.dirty:
            idx.save()
            self._last_save = time.monotonic()
        self.db.secure_files()
        return idx

    def _sync(self, engine: str, idx: VectorIndex, report: bool = False) -> VectorIndex:
        """Make ``idx`` hold exactly the face ids (and vectors) SQLite holds for ``engine``.

        Cheap when in step (one SELECT of the generation counter). Otherwise, in one WAL read
        snapshot: when the change log covers every generation after the index's, the faces it names
        are removed from the index and re-added from their stored vectors if they still exist;
        when it does not (log pruned, unknown generation), stale ids are removed and missing ones
        added by comparing the full id sets; duplicate ids force a rebuild.
        """

        gen = self.db.gen()
        if idx.gen == gen and idx.gen >= 0:
            return idx
        stale = missing = np.zeros(0, np.int64)
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
                    ids, vecs = self.stored_embeddings(engine, touched)
                    idx.add(ids, vecs)
                    missing = ids
                replayed = True
            else:
                want = self._stored_ids(engine)
                have = idx.ids()
                uniq = np.unique(have)
                rebuild = len(uniq) != len(have)
                stale = np.setdiff1d(uniq, want, assume_unique=True)
                missing = np.setdiff1d(want, uniq, assume_unique=True)
                if rebuild:
                    ids, vecs = self.stored_embeddings(engine)
                    idx.reset()
                    if idx.kind == "ivf" and len(ids) < idx.nlist * 4:
                        idx = VectorIndex(idx.dim, idx.path, kind="flat")
                    idx.add(ids, vecs)
                else:
                    if len(stale):
                        idx.remove(stale)
                    if len(missing):
                        ids, vecs = self.stored_embeddings(engine, missing)
                        idx.add(ids, vecs)
        idx.gen = gen
        if rebuild or replayed or len(stale) or len(missing):
            idx.dirty = True
            if report:
                self.last_repair = {"engine": engine, "action": "rebuilt" if rebuild else "repaired",
                                    "method": "change log" if replayed else "id comparison",
                                    "stale": len(stale), "missing": len(missing)}
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
            stored = self._stored_ids(engine)
            report["sqlite_faces"] = len(stored)
            have = idx.ids()
            report["consistent"] = len(have) == len(np.unique(have)) and np.array_equal(np.sort(have), np.sort(stored))
            report["kind"] = idx.kind
            return report
