"""Gallery store: persons/cases, images, faces, embeddings, query history, audit log.

SQLite (WAL) is the source of truth. Each enrolled image is written in one transaction with its
faces and embeddings, so a crash leaves either the whole record or nothing. The FAISS index of
each engine is derived state: updated after the commit, saved beside the database, and checked
against SQLite when the gallery opens (missing ids added from stored embeddings, stale ids
removed), so it can never return a face SQLite does not hold.

:class:`Gallery` is the facade the service, the CLI and the tests use. It composes one object per
concept, each in its own module:

* ``db.py`` -- the connection, schema and migration, transactions, meta values (:class:`GalleryDB`);
* ``audit.py`` -- the append-only audit log (:class:`AuditLog`);
* ``records.py`` -- persons, images and faces (:class:`Records`, :class:`GalleryRecord`);
* ``crops.py`` -- the stored face crops; ``history.py`` -- recorded queries (:class:`QueryHistory`);
* ``vectors.py`` -- upkeep, verification and repair of the FAISS indexes (:class:`Vectors`);
* ``search.py`` -- search (:class:`SearchHit`); ``transfer.py`` -- export / import files.

The dependencies run one way: store -> (transfer, search, records, history) -> (vectors, audit)
-> db -> schema, with stamp.py (time, user) and crops.py as leaves. transfer.py works through the
public methods below (:meth:`Gallery.snapshot`, :meth:`Gallery.transaction`,
:meth:`Gallery.prepare_engines`, :meth:`Gallery.audit`, :meth:`Gallery.flush`); it never imports
this module.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Self

import numpy as np

from ..faces import Face
from . import transfer
from .audit import AuditLog
from .crops import CROP_MARGIN, CROP_SIDE, decode_crop, face_crop, landmarks_in_crop
from .db import GalleryDB
from .decisions import Decisions
from .history import QueryHistory
from .index import EXACT_MAX
from .records import GalleryRecord, Records
from .cases import case_list, case_query_ids, cases, check_case_ids, face_ids_in_cases
from .search import SearchHit, search
from .stamp import current_user, now_iso
from .trash import Trash
from .vectors import Vectors

__all__ = ["CROP_MARGIN", "CROP_SIDE", "Gallery", "GalleryRecord", "SearchHit", "current_user", "decode_crop",
           "face_crop", "now_iso"]


class Gallery:
    """A gallery file (SQLite) plus its per-engine FAISS indexes (``<db>.<engine>.faiss``)."""

    def __init__(self, path: str | os.PathLike, *, user: str | None = None, exact_max: int | None = None,
                 checkpoint_seconds: float = 120.0, audit_searches: bool = True, history_days: int | None = None,
                 key: str | None = None, trash_days: float | None = 30):
        """Open (creating with owner-only permissions) the gallery at ``path``.

        ``exact_max``: exact (Flat) search up to this many faces per engine, approximate (IVF)
        above; None: the gallery's stored setting (meta ``index.exact_max``) or ``EXACT_MAX``.
        ``checkpoint_seconds``: during long imports the changed index is saved at most this often
        (it is always repairable from SQLite; the checkpoint only shortens the repair).
        ``audit_searches``: write an audit row for every :meth:`search`.
        ``history_days``: recorded queries older than this many days are deleted (audited) now and
        at every :meth:`record_query`; None keeps them all.
        ``trash_days``: deleted persons / photos stay restorable this many days, then are purged
        (audited) at open; None keeps them until purged by hand.
        ``key``: the passphrase of an encrypted gallery (a new file is created encrypted; see crypt.py).
        A gallery opened with a wrong key, or an encrypted one without a key, raises GalleryError
        (code ``wrong_key`` / ``gallery_locked``); a plain one opened with a key, ``not_encrypted``.
        """

        self.path = Path(path)
        user = user or current_user()
        self._db = GalleryDB(self.path, key=key)
        if exact_max is None:
            stored = self._db.meta("index.exact_max")
            exact_max = int(stored) if stored is not None else EXACT_MAX
        self.audit_searches = audit_searches
        self._audit_log = AuditLog(self._db, user)
        self._vectors = Vectors(self._db, exact_max=int(exact_max), checkpoint_seconds=checkpoint_seconds)
        self._trash = Trash(self._db, self._audit_log, retention_days=trash_days)
        self._records = Records(self._db, self._audit_log, self._vectors, self._trash)
        self._history = QueryHistory(self._db, self._audit_log, retention_days=history_days)
        self._decisions = Decisions(self._db, self._audit_log)
        if self._db.dropped_triggers:
            self._audit_log.record("audit.foreign_triggers_dropped", {"triggers": self._db.dropped_triggers})
        self._history.prune()
        self._trash.purge()

    # -- state shared with the components ----------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection | None:
        """The SQLite connection (None once closed)."""

        return self._db.conn

    @property
    def encrypted(self) -> bool:
        """Opened with a key: the database (SQLCipher) and the index files (AES-GCM) are encrypted."""

        return self._db.key is not None

    @property
    def user(self) -> str:
        """The name written on audit rows and recorded queries."""

        return self._audit_log.user

    @user.setter
    def user(self, value: str) -> None:
        self._audit_log.user = value

    @property
    def exact_max(self) -> int:
        """Exact (Flat) search up to this many faces per engine, IVF above (applies at the next flush)."""

        return self._vectors.exact_max

    @exact_max.setter
    def exact_max(self, value: int) -> None:
        self._vectors.exact_max = int(value)

    @property
    def checkpoint_seconds(self) -> float:
        return self._vectors.checkpoint_seconds

    @checkpoint_seconds.setter
    def checkpoint_seconds(self, value: float) -> None:
        self._vectors.checkpoint_seconds = value

    @property
    def last_repair(self) -> dict:
        """What the last index open / check did (``loaded``, ``repaired`` or ``rebuilt``, and how)."""

        return self._vectors.last_repair

    @last_repair.setter
    def last_repair(self, value: dict) -> None:
        self._vectors.last_repair = value

    @property
    def read_only(self) -> bool:
        """Opened read-only (file or folder not writable): search works; no index save, audit or history row."""

        return self._db.read_only

    @property
    def last_write_error(self) -> str | None:
        """Why the last search's audit row or recorded query was not written (read-only, disk full), or None."""

        return self._vectors.last_write_error

    # -- housekeeping --------------------------------------------------------------------
    def close(self) -> None:
        with self._db.lock:
            if self._db.closed:
                return
            self.flush()
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def flush(self) -> None:
        """Bring every open index up to date (switching Flat <-> IVF by size) and save changed ones."""

        with self._db.lock:
            self._vectors.flush()
            self._db.secure_files()

    def index_path(self, engine: str) -> Path:
        return self._vectors.index_path(engine)

    def set_exact_max(self, n: int) -> None:
        """Store the Flat/IVF switch-over size in the gallery (applies at the next flush)."""

        with self._db.transaction():
            self._db.set_meta("index.exact_max", str(int(n)))
            self._audit_log.write("settings.index", {"exact_max": int(n)})
            self.exact_max = int(n)

    # -- transactions (for transfer.py and other multi-statement work) ---------------------------
    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """``with gallery.transaction() as conn:`` -- one write transaction, all or nothing.

        Holds the gallery's lock; ``BEGIN IMMEDIATE`` ... ``COMMIT``, ``ROLLBACK`` on any exception.
        :meth:`audit` inside it writes its row in the same transaction. Rows written here reach the
        indexes at the next :meth:`flush` or search (call :meth:`prepare_engines` first).
        """

        return self._db.transaction()

    def snapshot(self) -> AbstractContextManager[sqlite3.Connection]:
        """``with gallery.snapshot() as conn:`` -- reads that see one consistent state (no writes)."""

        return self._db.snapshot()

    def prepare_engines(self, dims: dict[str, int]) -> None:
        """Before writing embeddings directly: check each engine's vector size against the gallery's
        (GalleryError when it differs) and open its index, so the new rows are added at the next flush."""

        with self._db.lock:
            for engine, dim in dims.items():
                self._vectors.check_dim(engine, int(dim))
            for engine, dim in dims.items():
                self._vectors.index(engine, int(dim))

    # -- audit ---------------------------------------------------------------------------
    def audit(self, action: str, details: dict | None = None) -> None:
        """Append one audit row (inside :meth:`transaction`: part of that transaction)."""

        self._audit_log.record(action, details)

    def audit_log(self, limit: int | None = None) -> list[dict]:
        return self._audit_log.entries(limit)

    def verify_audit(self) -> dict:
        """Check the audit log's hash chain and its recorded head and row count; see audit.py."""

        return self._audit_log.verify()

    # -- persons, images, faces ----------------------------------------------------------
    def persons(self) -> list[GalleryRecord]:
        return self._records.persons()

    def person(self, person_id: int) -> GalleryRecord:
        return self._records.person(person_id)

    def update_person(self, person_id: int, *, label: str | None = None, case_id: str | None = None,
                      metadata: dict | None = None) -> None:
        self._records.update_person(person_id, label=label, case_id=case_id, metadata=metadata)

    def delete_person(self, person_id: int) -> int:
        return self._records.delete_person(person_id)

    def delete_image(self, image_id: int) -> int:
        return self._records.delete_image(image_id)

    def delete_face(self, face_id: int) -> int:
        return self._records.delete_face(face_id)

    # -- soft delete, merge, new persons, person search ------------------------------------------
    def trash(self) -> list[dict]:
        """What was deleted (or merged away) and can still be restored, newest first (trash.py)."""

        return self._trash.entries()

    def restore(self, trash_id: int) -> dict:
        """Undo one delete or merge from the trash (same ids, faces back in the indexes; audited)."""

        return self._records.restore(trash_id)

    def purge_trash(self, trash_id: int | None = None) -> int:
        """Delete for good one trash entry, or (None) those past the retention period; audited."""

        return self._trash.purge(trash_id)

    def merge_persons(self, source_id: int, target_id: int) -> dict:
        """Move every photo of ``source_id`` to ``target_id``; the source person goes (undoable)."""

        return self._records.merge(source_id, target_id)

    def add_person(self, label: str, case_id: str | None = None, metadata: dict | None = None) -> int:
        return self._records.add_person(label, case_id, metadata)

    def find_persons(self, text: str) -> list[int]:
        """Person ids matching every word of ``text`` (full-text search of label, case id, metadata)."""

        return self._records.find_persons(text)

    def has_image(self, sha256: str) -> int | None:
        return self._records.has_image(sha256)

    def add_image(self, *, label: str, path: str, sha256: str, width: int, height: int, rgb: np.ndarray,
                  faces: list[Face], embeddings: dict[str, np.ndarray], case_id: str | None = None,
                  metadata: dict | None = None, provenance: dict | None = None,
                  liveness: list[dict] | None = None) -> int:
        """Store one image with its faces and embeddings in one transaction; return its id.

        ``embeddings[engine]`` has one row per face. Raises GalleryError (code ``duplicate``) when
        the same content is already enrolled. Any failure leaves the gallery unchanged.
        """

        return self._records.add_image(label=label, path=path, sha256=sha256, width=width, height=height, rgb=rgb,
                                       faces=faces, embeddings=embeddings, case_id=case_id, metadata=metadata,
                                       provenance=provenance, liveness=liveness)

    def image_row(self, image_id: int) -> dict:
        return self._records.image_row(image_id)

    def face_row(self, face_id: int) -> dict:
        return self._records.face_row(face_id)

    def face_crop_and_landmarks(self, face_id: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """The stored crop of a face and its 68 landmarks in crop coordinates."""

        row = self._records.face_row(face_id)
        crop = decode_crop(row["crop"])
        return crop, landmarks_in_crop(row["landmarks"], row["crop_box"], crop.shape[1]), row

    def counts(self) -> dict:
        return self._records.counts()

    # -- embeddings, indexes, search -----------------------------------------------------
    def stored_embeddings(self, engine: str, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(face ids, vectors) stored for ``engine`` (all, or those of ``ids``), ordered by face id."""

        return self._vectors.stored_embeddings(engine, ids)

    def index_info(self, engine: str) -> dict:
        return self._vectors.index_info(engine)

    def verify_index(self, engine: str) -> dict:
        """Check (and repair) ``engine``'s index against SQLite; report what was done."""

        return self._vectors.verify_index(engine)

    def search(self, engine: str, vectors: np.ndarray, k: int = 5, *, audit: bool | None = None,
               case_ids: list[str] | None = None) -> list[list[SearchHit]]:
        """Top-``k`` hits for each query vector (rows L2-normalised).

        Thread-safe and safe against other processes changing the gallery: the index is re-synced
        when SQLite's generation moved, and every hit is looked up in SQLite in the same locked
        section (a face deleted meanwhile is dropped, never returned). ``audit``: write an audit
        row (None: the gallery's ``audit_searches``). ``case_ids``: only the faces of persons in these
        cases (an exact scan of their vectors, cases.py).
        """

        write_audit = self.audit_searches if audit is None else audit
        face_ids = None
        if case_ids:
            face_ids = face_ids_in_cases(self._db, engine, check_case_ids(case_ids))
        return search(self._vectors, self._audit_log if write_audit else None, engine, vectors, k, face_ids)

    def cases(self) -> list[dict]:
        """Every case id with its persons and photo / face counts (cases.py)."""

        return cases(self._db)

    def case_list(self) -> list[dict]:
        """The case list: per case id its persons, photos, recorded queries and last activity (cases.py)."""

        return case_list(self._db)

    def case_query_ids(self, case_id: str) -> list[int]:
        """The recorded queries of one case, oldest first (cases.py)."""

        return case_query_ids(self._db, case_id)

    def image_face_ids(self, image_id: int) -> list[int]:
        """The face ids of one gallery photo (NotFoundInGallery when the photo is gone)."""

        self._records.image_row(int(image_id))
        with self._db.lock:
            return [int(r[0]) for r in self._db.conn.execute("SELECT id FROM faces WHERE image_id = ? ORDER BY id",
                                                             (int(image_id),))]

    def rejected_for_photo(self, query_sha256: str | None) -> dict[int, set[int]]:
        """Face index -> persons rejected for that face of this photo in its recorded queries (decisions.py)."""

        return self._decisions.rejected_for_photo(query_sha256)

    # -- query history -------------------------------------------------------------------
    def record_query(self, *, query_path: str, query_sha256: str | None, engine: str, results: dict) -> int | None:
        """Store one query; None (logged, see :attr:`last_write_error`) when it cannot be written."""

        query_id = self._history.record(query_path=query_path, query_sha256=query_sha256, engine=engine,
                                        results=results)
        if query_id is None:
            self._vectors.last_write_error = self._history.last_error
        return query_id

    def history(self, limit: int = 100) -> list[dict]:
        """The newest recorded queries with the results as shown then and their current ``decisions``."""

        entries = self._history.recent(limit)
        for e in entries:
            e["decisions"] = self._decisions.for_query(e["id"])
        return entries

    def query(self, query_id: int) -> dict:
        """One recorded query (as :meth:`history` gives it); NotFoundInGallery when pruned or unknown."""

        entry = self._history.get(int(query_id))
        entry["decisions"] = self._decisions.for_query(entry["id"])
        return entry

    def decide(self, query_id: int, face_index: int, face_id: int, decision: str, note: str = "") -> dict:
        """Record confirm / reject / unsure (with a note) on a candidate of a recorded query; audited."""

        return self._decisions.record(query_id, face_index, face_id, decision, note)

    # -- export / import -------------------------------------------------------------------
    def export(self, out_path: str | os.PathLike, *, labels: list[str] | None = None,
               case_ids: list[str] | None = None, passphrase: str | None = None) -> dict:
        """Write the gallery (or the persons with these labels / case ids) to one file, encrypted with
        ``passphrase`` when given; see transfer.py and envelope.py."""

        return transfer.export_gallery(self, out_path, labels=labels, case_ids=case_ids, passphrase=passphrase)

    def import_file(self, in_path: str | os.PathLike, *, allow_unsigned: bool = False,
                    passphrase: str | None = None) -> dict:
        """Verify and import an export file in one transaction (all or nothing); an encrypted one is
        decrypted with ``passphrase``; see transfer.py."""

        return transfer.import_gallery(self, in_path, allow_unsigned=allow_unsigned, passphrase=passphrase)
