"""Gallery store: persons/cases, images, faces, embeddings, query history, audit log.

SQLite (WAL) is the source of truth. Each enrolled image is written in one transaction with its
faces and embeddings, so a crash leaves either the whole record or nothing. The FAISS index of
each engine is derived state: updated after the commit, saved beside the database, and checked
against SQLite when the gallery opens (missing ids added from stored embeddings, stale ids
removed), so it can never return a face SQLite does not hold.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import GalleryError, NotFoundInGallery
from ..faces import Face
from .crops import CROP_MARGIN, CROP_SIDE, decode_crop, face_crop  # noqa: F401 (re-exported)
from .index import EXACT_MAX, VectorIndex, clean_stale_temp_files, pick_nlist
from .schema import AUTOINCREMENT_TABLES, SCHEMA, SCHEMA_VERSION
from .stamp import current_user, now_iso  # noqa: F401 (re-exported)


@dataclass
class SearchHit:
    face_id: int
    image_id: int
    person_id: int
    label: str
    case_id: str | None
    image_path: str
    similarity: float


@dataclass
class GalleryRecord:
    """One person (case) with their images."""

    person_id: int
    label: str
    case_id: str | None
    metadata: dict = field(default_factory=dict)
    images: list[dict] = field(default_factory=list)


class Gallery:
    """A gallery file (SQLite) plus its per-engine FAISS indexes (``<db>.<engine>.faiss``)."""

    def __init__(self, path: str | os.PathLike, *, user: str | None = None, exact_max: int | None = None,
                 checkpoint_seconds: float = 120.0, audit_searches: bool = True):
        """Open (creating with owner-only permissions) the gallery at ``path``.

        ``exact_max``: exact (Flat) search up to this many faces per engine, approximate (IVF)
        above; None: the gallery's stored setting (meta ``index.exact_max``) or ``EXACT_MAX``.
        ``checkpoint_seconds``: during long imports the changed index is saved at most this often
        (it is always repairable from SQLite; the checkpoint only shortens the repair).
        ``audit_searches``: write an audit row for every :meth:`search`.
        """

        self.path = Path(path)
        self.user = user or current_user()
        self._lock = threading.RLock()
        self._indexes: dict[str, VectorIndex] = {}
        self._dims: dict[str, int] = {}
        self.checkpoint_seconds = checkpoint_seconds
        self.audit_searches = audit_searches
        self._last_save = time.monotonic()
        self.last_repair: dict = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # Owner-only permissions from the first byte (SQLite gives -wal/-shm the same mode).
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            self.conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA busy_timeout=30000")
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self._migrate()
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.executescript(SCHEMA)
            self.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.path}: not a FASFinder gallery or damaged ({exc})") from exc
        self._secure_files()
        if exact_max is not None:
            self.exact_max = int(exact_max)
        else:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'index.exact_max'").fetchone()
            self.exact_max = int(row[0]) if row else EXACT_MAX

    def _secure_files(self) -> None:
        for side in (self.path, Path(str(self.path) + "-wal"), Path(str(self.path) + "-shm")):
            try:
                if side.exists() and (side.stat().st_mode & 0o077):
                    os.chmod(side, 0o600)
            except OSError:
                pass

    def _migrate(self) -> None:
        """Version 1 -> 2: rebuild persons/images/faces with AUTOINCREMENT ids (foreign keys off)."""

        rows = {r[0]: r[1] for r in self.conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")}
        todo = [t for t in AUTOINCREMENT_TABLES if t in rows and "AUTOINCREMENT" not in rows[t].upper()]
        if not todo:
            return
        import re

        self.conn.execute("PRAGMA foreign_keys=OFF")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for t in todo:
                m = re.search(rf"CREATE TABLE IF NOT EXISTS {t} \((.*?)\n\);", SCHEMA, re.S)
                self.conn.execute(f"CREATE TABLE _new_{t} ({m.group(1)})")
                cols = ", ".join(r[1] for r in self.conn.execute(f"PRAGMA table_info({t})"))
                self.conn.execute(f"INSERT INTO _new_{t} ({cols}) SELECT {cols} FROM {t}")
                self.conn.execute(f"DROP TABLE {t}")
                self.conn.execute(f"ALTER TABLE _new_{t} RENAME TO {t}")
            bad = self.conn.execute("PRAGMA foreign_key_check").fetchall()
            if bad:
                raise sqlite3.DatabaseError(f"foreign key check failed after migration: {len(bad)} rows")
            self.conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    # -- housekeeping --------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if getattr(self, "conn", None) is None:
                return
            self.flush()
            self.conn.close()
            self.conn = None

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def flush(self) -> None:
        """Bring every open index up to date (switching Flat <-> IVF by size) and save changed ones."""

        with self._lock:
            for engine, idx in list(self._indexes.items()):
                self._sync(engine, idx)
                idx = self._maybe_rebuild(engine, idx)
                if idx.dirty:
                    idx.save()
            self._last_save = time.monotonic()
            self._prune_change_log()
            self._secure_files()

    def _checkpoint(self) -> None:
        if time.monotonic() - self._last_save >= self.checkpoint_seconds:
            for idx in self._indexes.values():
                if idx.dirty:
                    idx.save()
            self._last_save = time.monotonic()

    def index_path(self, engine: str) -> Path:
        return self.path.with_name(f"{self.path.name}.{engine}.faiss")

    def _tx(self):
        return _Transaction(self.conn)

    def set_exact_max(self, n: int) -> None:
        """Store the Flat/IVF switch-over size in the gallery (applies at the next flush)."""

        with self._lock, self._tx():
            self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('index.exact_max', ?)", (str(int(n)),))
            self._audit("settings.index", {"exact_max": int(n)})
            self.exact_max = int(n)

    # -- audit ---------------------------------------------------------------------------
    def _audit(self, action: str, details: dict) -> None:
        self.conn.execute(
            "INSERT INTO audit(at, user, action, details) VALUES (?, ?, ?, ?)",
            (now_iso(), self.user, action, json.dumps(details, sort_keys=True)),
        )

    def audit(self, action: str, details: dict | None = None) -> None:
        with self._lock, self._tx():
            self._audit(action, details or {})

    def audit_log(self, limit: int | None = None) -> list[dict]:
        sql = "SELECT id, at, user, action, details FROM audit ORDER BY id DESC"
        with self._lock:
            rows = self.conn.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        return [dict(r, details=json.loads(r["details"])) for r in rows]

    # -- persons -------------------------------------------------------------------------
    def _person_id(self, label: str, case_id: str | None, metadata: dict | None) -> int:
        row = self.conn.execute("SELECT id FROM persons WHERE label = ?", (label,)).fetchone()
        if row:
            return int(row["id"])
        ts = now_iso()
        cur = self.conn.execute(
            "INSERT INTO persons(label, case_id, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (label, case_id, json.dumps(metadata or {}, sort_keys=True), ts, ts),
        )
        self._audit("person.create", {"person_id": cur.lastrowid, "label": label, "case_id": case_id})
        return int(cur.lastrowid)

    def persons(self) -> list[GalleryRecord]:
        with self._lock:
            people = self.conn.execute("SELECT * FROM persons ORDER BY label").fetchall()
            images = self.conn.execute(
                "SELECT i.id, i.person_id, i.path, i.sha256, i.width, i.height, i.liveness, i.created_at, "
                "(SELECT COUNT(*) FROM faces f WHERE f.image_id = i.id) AS faces FROM images i ORDER BY i.id"
            ).fetchall()
        by_person: dict[int, list[dict]] = {}
        for im in images:
            d = dict(im)
            d["liveness"] = json.loads(d["liveness"]) if d["liveness"] else None
            by_person.setdefault(im["person_id"], []).append(d)
        return [
            GalleryRecord(
                person_id=p["id"], label=p["label"], case_id=p["case_id"],
                metadata=json.loads(p["metadata"]), images=by_person.get(p["id"], []),
            )
            for p in people
        ]

    def person(self, person_id: int) -> GalleryRecord:
        for rec in self.persons():
            if rec.person_id == person_id:
                return rec
        raise NotFoundInGallery(f"no person with id {person_id}")

    def update_person(self, person_id: int, *, label: str | None = None, case_id: str | None = None,
                      metadata: dict | None = None) -> None:
        with self._lock, self._tx():
            row = self.conn.execute("SELECT * FROM persons WHERE id = ?", (person_id,)).fetchone()
            if not row:
                raise NotFoundInGallery(f"no person with id {person_id}")
            new_label = label if label is not None else row["label"]
            if not new_label.strip():
                raise GalleryError("a person's label cannot be empty")
            clash = self.conn.execute("SELECT id FROM persons WHERE label = ? AND id != ?", (new_label, person_id)).fetchone()
            if clash:
                raise GalleryError(f"another person already has the label {new_label!r}")
            self.conn.execute(
                "UPDATE persons SET label = ?, case_id = ?, metadata = ?, updated_at = ? WHERE id = ?",
                (
                    new_label,
                    case_id if case_id is not None else row["case_id"],
                    json.dumps(metadata if metadata is not None else json.loads(row["metadata"]), sort_keys=True),
                    now_iso(),
                    person_id,
                ),
            )
            self._audit("person.update", {"person_id": person_id, "label": new_label, "case_id": case_id,
                                          "metadata": metadata, "old_label": row["label"], "old_case_id": row["case_id"]})

    def _delete(self, what: str, where: str, table: str, key: int) -> int:
        with self._lock:
            engines = self._engines_in_db() | set(self._indexes)
            for engine in engines:  # open (and sync) first, so the removal below is the only change
                self._index(engine)
            with self._tx():
                face_ids = [r[0] for r in self.conn.execute(
                    f"SELECT f.id FROM faces f JOIN images i ON f.image_id = i.id WHERE {where}", (key,))]
                gen_before = self._db_gen()
                cur = self.conn.execute(f"DELETE FROM {table} WHERE id = ?", (key,))
                if cur.rowcount == 0:
                    raise NotFoundInGallery(f"no {what} with id {key}")
                self._audit(f"{what}.delete", {f"{what}_id": key, "faces": len(face_ids), "face_ids": face_ids})
                gen_after = self._db_gen()
            for engine in engines:
                idx = self._index(engine)
                idx.remove(face_ids)
                idx.gen = gen_after if idx.gen == gen_before else -1
            # Saved at the next checkpoint/flush (a crash before that is repaired on open): keeps a
            # delete fast at 1e6 faces, where a save writes ~500 MB.
            self._checkpoint()
            return len(face_ids)

    def delete_person(self, person_id: int) -> int:
        return self._delete("person", "i.person_id = ?", "persons", person_id)

    def delete_image(self, image_id: int) -> int:
        return self._delete("image", "i.id = ?", "images", image_id)

    def delete_face(self, face_id: int) -> int:
        return self._delete("face", "f.id = ?", "faces", face_id)

    # -- images --------------------------------------------------------------------------
    def has_image(self, sha256: str) -> int | None:
        with self._lock:
            row = self.conn.execute("SELECT id FROM images WHERE sha256 = ?", (sha256,)).fetchone()
        return int(row["id"]) if row else None

    def add_image(
        self,
        *,
        label: str,
        path: str,
        sha256: str,
        width: int,
        height: int,
        rgb: np.ndarray,
        faces: list[Face],
        embeddings: dict[str, np.ndarray],
        case_id: str | None = None,
        metadata: dict | None = None,
        provenance: dict | None = None,
        liveness: list[dict] | None = None,
    ) -> int:
        """Store one image with its faces and embeddings in one transaction; return its id.

        ``embeddings[engine]`` has one row per face. Raises GalleryError (code ``duplicate``) when
        the same content is already enrolled. Any failure leaves the gallery unchanged.
        """

        if not label or not label.strip():
            raise GalleryError("a label is required to enroll an image")
        crops = [face_crop(rgb, f) for f in faces]
        vec_by_engine = {}
        for engine, vecs in embeddings.items():
            vecs = np.asarray(vecs, dtype=np.float32)
            if vecs.ndim != 2 or len(vecs) != len(faces):
                raise GalleryError(f"engine {engine}: {len(vecs)} embeddings for {len(faces)} faces")
            if not np.all(np.isfinite(vecs)):
                raise GalleryError(f"engine {engine}: embeddings hold NaN or infinite values")
            vec_by_engine[engine] = vecs
        with self._lock:
            # Open (and sync) each index *before* the commit, so the new faces are added exactly once.
            for engine, vecs in vec_by_engine.items():
                self._check_dim(engine, vecs.shape[1])
                self._index(engine, vecs.shape[1])
            with self._tx():
                if self.conn.execute("SELECT 1 FROM images WHERE sha256 = ?", (sha256,)).fetchone():
                    raise GalleryError(f"{path}: this image (same content) is already enrolled", code="duplicate")
                gen_before = self._db_gen()
                person_id = self._person_id(label, case_id, metadata)
                cur = self.conn.execute(
                    "INSERT INTO images(person_id, path, sha256, width, height, provenance, liveness, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (person_id, path, sha256, width, height, json.dumps(provenance or {}, sort_keys=True),
                     json.dumps(liveness) if liveness is not None else None, now_iso()),
                )
                image_id = int(cur.lastrowid)
                face_ids = []
                for face, (crop, crop_box) in zip(faces, crops):
                    fc = self.conn.execute(
                        "INSERT INTO faces(image_id, box, landmarks, detector, score, crop, crop_box) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (image_id, json.dumps([int(v) for v in face.box]),
                         np.asarray(face.landmarks, np.float32).tobytes(),
                         face.detector, float(face.score), crop, json.dumps(crop_box)),
                    )
                    face_ids.append(int(fc.lastrowid))
                for engine, vecs in vec_by_engine.items():
                    self.conn.executemany(
                        "INSERT INTO embeddings(face_id, engine, vector) VALUES (?, ?, ?)",
                        [(fid, engine, v.tobytes()) for fid, v in zip(face_ids, vecs)],
                    )
                self._audit("image.enroll", {"image_id": image_id, "person_id": person_id, "label": label,
                                             "path": path, "sha256": sha256, "faces": len(faces)})
                gen_after = self._db_gen()
            # Committed: now update the derived indexes (a crash here is repaired on the next open).
            self._apply_added(vec_by_engine, face_ids, gen_before, gen_after)
            self._checkpoint()
            return image_id

    def _apply_added(self, vec_by_engine: dict, face_ids: list[int], gen_before: int, gen_after: int) -> None:
        ids = np.array(face_ids, dtype=np.int64)
        for engine, vecs in vec_by_engine.items():
            idx = self._index(engine)
            if len(ids):
                idx.add(ids, vecs)
            # The index reflects the new generation only if it reflected the one before our commit
            # (otherwise another process changed the gallery: the next search re-syncs).
            idx.gen = gen_after if idx.gen == gen_before else -1

    def image_row(self, image_id: int) -> dict:
        with self._lock:
            row = self.conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        if not row:
            raise NotFoundInGallery(f"no image with id {image_id}")
        return dict(row)

    def face_row(self, face_id: int) -> dict:
        with self._lock:
            row = self.conn.execute(
                "SELECT f.*, i.path, i.person_id, p.label, p.case_id FROM faces f JOIN images i ON f.image_id = i.id "
                "JOIN persons p ON i.person_id = p.id WHERE f.id = ?", (face_id,)
            ).fetchone()
        if not row:
            raise NotFoundInGallery(f"no face with id {face_id}")
        d = dict(row)
        d["box"] = json.loads(d["box"])
        d["crop_box"] = json.loads(d["crop_box"])
        d["landmarks"] = np.frombuffer(d["landmarks"], np.float32).reshape(-1, 2).copy()
        return d

    def face_crop_and_landmarks(self, face_id: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """The stored crop of a face and its 68 landmarks in crop coordinates."""

        row = self.face_row(face_id)
        crop = decode_crop(row["crop"])
        bx0, by0, bx1, by1 = row["crop_box"]
        scale = crop.shape[1] / (bx1 - bx0)
        lm = (row["landmarks"] - np.array([bx0, by0], np.float32)) * scale
        return crop, lm.astype(np.float32), row

    def counts(self) -> dict:
        with self._lock:
            c = self.conn.execute(
                "SELECT (SELECT COUNT(*) FROM persons) AS persons, (SELECT COUNT(*) FROM images) AS images, "
                "(SELECT COUNT(*) FROM faces) AS faces"
            ).fetchone()
        return dict(c)

    # -- embeddings & index --------------------------------------------------------------
    def _db_gen(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'embeddings_gen'").fetchone()
        return int(row[0]) if row else 0

    def _engines_in_db(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT DISTINCT engine FROM embeddings")}

    def _check_dim(self, engine: str, dim: int) -> None:
        known = self._dims.get(engine)
        if known is None:
            row = self.conn.execute("SELECT vector FROM embeddings WHERE engine = ? LIMIT 1", (engine,)).fetchone()
            known = len(row[0]) // 4 if row else None
        if known is not None and known != dim:
            raise GalleryError(f"engine {engine}: embedding size {dim} differs from the gallery's {known}")
        self._dims[engine] = dim

    def stored_embeddings(self, engine: str, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(face ids, vectors) stored for ``engine`` (all, or those of ``ids``), ordered by face id."""

        with self._lock:
            if ids is None:
                rows = self.conn.execute(
                    "SELECT face_id, vector FROM embeddings WHERE engine = ? ORDER BY face_id", (engine,)).fetchall()
            else:
                rows = []
                wanted = [int(i) for i in np.sort(np.asarray(ids, dtype=np.int64))]
                for start in range(0, len(wanted), 900):
                    chunk = wanted[start:start + 900]
                    rows.extend(self.conn.execute(
                        f"SELECT face_id, vector FROM embeddings WHERE engine = ? AND face_id IN ({','.join('?' * len(chunk))}) "
                        "ORDER BY face_id", (engine, *chunk)).fetchall())
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, self._dims.get(engine, 0)), np.float32)
        out_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        return out_ids, vecs

    def _stored_ids(self, engine: str) -> np.ndarray:
        cur = self.conn.execute("SELECT face_id FROM embeddings WHERE engine = ?", (engine,))
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def _index(self, engine: str, dim: int | None = None) -> VectorIndex:
        idx = self._indexes.get(engine)
        if idx is None:
            if dim and engine not in self._dims:
                self._check_dim(engine, dim)
            idx = self._open_index(engine, dim)
            self._indexes[engine] = idx
        return idx

    def _wanted_kind(self, n: int) -> str:
        return "ivf" if n > self.exact_max else "flat"

    def _build_index(self, engine: str, dim: int) -> VectorIndex:
        """A fresh index from every stored embedding (one read snapshot)."""

        own_tx = not self.conn.in_transaction
        if own_tx:
            self.conn.execute("BEGIN")
        try:
            gen = self._db_gen()
            ids, vecs = self.stored_embeddings(engine)
        finally:
            if own_tx:
                self.conn.execute("COMMIT")
        idx = VectorIndex.build(dim, ids, vecs, kind=self._wanted_kind(len(ids)), path=self.index_path(engine))
        idx.gen = gen
        idx.dirty = True
        return idx

    def _open_index(self, engine: str, dim: int | None = None) -> VectorIndex:
        path = self.index_path(engine)
        clean_stale_temp_files(path)
        dim = self._dims.get(engine) or dim
        if not dim:
            row = self.conn.execute("SELECT vector FROM embeddings WHERE engine = ? LIMIT 1", (engine,)).fetchone()
            if row:
                dim = len(row[0]) // 4
            else:
                # Nothing stored yet for this engine: an empty index of the engine's size.
                from ..engines import get_engine

                dim = get_engine(engine).dim
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
        self._secure_files()
        return idx

    def _sync(self, engine: str, idx: VectorIndex, report: bool = False) -> VectorIndex:
        """Make ``idx`` hold exactly the face ids (and vectors) SQLite holds for ``engine``.

        Cheap when in step (one SELECT of the generation counter). Otherwise, in one WAL read
        snapshot: when the change log covers every generation after the index's, the faces it names
        are removed from the index and re-added from their stored vectors if they still exist;
        when it does not (log pruned, unknown generation), stale ids are removed and missing ones
        added by comparing the full id sets; duplicate ids force a rebuild.
        """

        gen = self._db_gen()
        if idx.gen == gen and idx.gen >= 0:
            return idx
        own_tx = not self.conn.in_transaction
        if own_tx:
            self.conn.execute("BEGIN")  # one read snapshot (WAL): ids, vectors, log and gen agree
        stale = missing = np.zeros(0, np.int64)
        rebuild = replayed = False
        try:
            gen = self._db_gen()
            lo = self.conn.execute("SELECT MIN(gen) FROM embedding_changes").fetchone()[0]
            if idx.gen >= 0 and gen > idx.gen and lo is not None and lo <= idx.gen + 1:
                touched = np.fromiter((r[0] for r in self.conn.execute(
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
        finally:
            if own_tx:
                self.conn.execute("COMMIT")
        idx.gen = gen
        if rebuild or replayed or len(stale) or len(missing):
            idx.dirty = True
            if report:
                self.last_repair = {"engine": engine, "action": "rebuilt" if rebuild else "repaired",
                                    "method": "change log" if replayed else "id comparison",
                                    "stale": int(len(stale)), "missing": int(len(missing))}
        if self._indexes.get(engine) is not None and self._indexes[engine] is not idx:
            self._indexes[engine] = idx
        return idx

    def _prune_change_log(self, keep: int = 200_000) -> None:
        """Drop change-log rows older than every saved index and than the last ``keep`` changes."""

        saved = [i.gen for i in self._indexes.values() if not i.dirty and i.gen >= 0]
        if not saved:
            return
        limit = min(min(saved), self._db_gen() - keep)
        if limit > 0 and self.conn.execute("SELECT 1 FROM embedding_changes WHERE gen <= ? LIMIT 1", (limit,)).fetchone():
            with self._tx():
                self.conn.execute("DELETE FROM embedding_changes WHERE gen <= ?", (limit,))

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

    def index_info(self, engine: str) -> dict:
        with self._lock:
            idx = self._index(engine)
            return {"engine": engine, "kind": idx.kind, "faces": idx.ntotal, "nlist": idx.nlist, "nprobe": idx.nprobe,
                    "gen": idx.gen, "exact_max": self.exact_max, "path": str(idx.path)}

    def verify_index(self, engine: str) -> dict:
        """Check (and repair) ``engine``'s index against SQLite; report what was done."""

        with self._lock:
            self._indexes.pop(engine, None)
            idx = self._index(engine)
            report = dict(self.last_repair)
            report["index_faces"] = idx.ntotal
            stored = self._stored_ids(engine)
            report["sqlite_faces"] = int(len(stored))
            have = idx.ids()
            report["consistent"] = len(have) == len(np.unique(have)) and np.array_equal(np.sort(have), np.sort(stored))
            report["kind"] = idx.kind
            return report

    def search(self, engine: str, vectors: np.ndarray, k: int = 5, *, audit: bool | None = None) -> list[list[SearchHit]]:
        """Top-``k`` hits for each query vector (rows L2-normalised).

        Thread-safe and safe against other processes changing the gallery: the index is re-synced
        when SQLite's generation moved, and every hit is looked up in SQLite in the same locked
        section (a face deleted meanwhile is dropped, never returned).
        """

        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None]
        with self._lock:
            if engine not in self._indexes and not self._has_engine(engine):
                return [[] for _ in range(len(vectors))]
            idx = self._sync(engine, self._index(engine, vectors.shape[1]))
            if vectors.shape[1] != idx.dim:
                raise GalleryError(f"engine {engine}: query size {vectors.shape[1]} differs from the gallery's {idx.dim}")
            # Ask for a few more than k so hits dropped as deleted-meanwhile do not shorten the list.
            sims, ids = idx.search(vectors, k + 4 if k > 0 else 0)
            wanted = sorted({int(i) for i in ids.ravel() if i >= 0})
            info = {}
            for start in range(0, len(wanted), 900):
                chunk = wanted[start:start + 900]
                for r in self.conn.execute(
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
                    hits.append(SearchHit(face_id=r[0], image_id=r[1], person_id=r[2], label=r[3], case_id=r[4],
                                          image_path=r[5], similarity=float(s)))
                    if len(hits) == k:
                        break
                out.append(hits)
            if self.audit_searches if audit is None else audit:
                with self._tx():
                    self._audit("search", {"engine": engine, "queries": len(vectors), "k": k,
                                           "hits": [[h.face_id for h in hs] for hs in out]})
        return out

    def _has_engine(self, engine: str) -> bool:
        if engine in self._dims:
            return True
        return self.conn.execute("SELECT 1 FROM embeddings WHERE engine = ? LIMIT 1", (engine,)).fetchone() is not None

    # -- query history -------------------------------------------------------------------
    def record_query(self, *, query_path: str, query_sha256: str | None, engine: str, results: dict) -> int:
        with self._lock, self._tx():
            cur = self.conn.execute(
                "INSERT INTO queries(created_at, user, query_path, query_sha256, engine, results) VALUES (?, ?, ?, ?, ?, ?)",
                (now_iso(), self.user, query_path, query_sha256, engine, json.dumps(results, sort_keys=True)),
            )
            self._audit("query.record", {"query_id": cur.lastrowid, "query": query_path, "query_sha256": query_sha256,
                                         "engine": engine, "faces": len(results.get("faces", []))})
            return int(cur.lastrowid)

    def history(self, limit: int = 100) -> list[dict]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT id, created_at, user, query_path, query_sha256, engine, results FROM queries ORDER BY id DESC LIMIT ?",
                (int(limit),),
            ).fetchall()
        return [dict(r, results=json.loads(r["results"])) for r in rows]

    # -- export / import -------------------------------------------------------------------
    def export(self, out_path: str | os.PathLike, *, labels: list[str] | None = None,
               case_ids: list[str] | None = None) -> dict:
        """Write the gallery (or the persons with these labels / case ids) to one file; see transfer.py."""

        from .transfer import export_gallery

        return export_gallery(self, out_path, labels=labels, case_ids=case_ids)

    def import_file(self, in_path: str | os.PathLike) -> dict:
        """Verify and import an export file in one transaction (all or nothing); see transfer.py."""

        from .transfer import import_gallery

        return import_gallery(self, in_path)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on any exception)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        for attempt in range(3):  # each attempt already waits up to the 30 s busy timeout
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return self
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or attempt == 2:
                    raise GalleryError(f"gallery is busy: {exc}") from exc
                time.sleep(0.1)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
        return False
