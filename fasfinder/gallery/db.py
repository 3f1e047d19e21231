"""The SQLite side of a gallery file: opening it, schema and migration, transactions, meta values.

One connection per :class:`GalleryDB` (WAL, ``synchronous=FULL``, foreign keys on), shared by the
threads of one process under one re-entrant lock. The file and its ``-wal``/``-shm`` sides are
owner-only (0600). Writes go through :meth:`GalleryDB.transaction` (``BEGIN IMMEDIATE``: the write
lock is taken up front, so a writer never fails half-way on a lock upgrade; nested blocks are
savepoints), consistent multi-statement reads through :meth:`GalleryDB.snapshot` (one WAL read
snapshot). The ``meta`` table holds the schema version, settings such as ``index.exact_max`` and
``embeddings_gen`` (bumped by triggers on every change of the embeddings table, see schema.py).

sqlite-utils serves where it fits: the meta upserts and the table introspection of the v1 -> v2
migration. The schema stays the SQL of schema.py (triggers, ``AUTOINCREMENT``, exact column
definitions: existing files must keep their on-disk schema), and the migration stays a table
rebuild of its own, because sqlite-utils' ``transform`` cannot add ``AUTOINCREMENT`` to a table.

Opened with a ``key`` the connection is SQLCipher's (crypt.py): the file and its ``-wal`` are
encrypted; without one it is the standard sqlite3 module, as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from ..errors import GalleryError
from .chain import chain_existing, foreign_triggers
from .crypt import DATABASE_ERRORS, OPERATIONAL_ERRORS, FileCipher, check_key, connect, open_error
from .schema import AUTOINCREMENT_TABLES, SCHEMA, SCHEMA_VERSION, table_body

log = logging.getLogger("fasfinder.gallery")


class GalleryDB:
    """The SQLite connection of one gallery file (opened, created or migrated on construction)."""

    def __init__(self, path: str | os.PathLike, *, key: str | None = None):
        self.path = Path(path)
        self.key = check_key(key)
        #: AES-GCM for the index files of an encrypted gallery (None: plain files).
        self.file_cipher = FileCipher(self.key) if self.key is not None else None
        self.lock = threading.RLock()
        self._reading = False  # a read snapshot begun by snapshot() is open
        self.dropped_triggers: list[str] = []  # foreign triggers on audit/meta dropped at open (see below)
        #: Opened read-only (the file or its folder is not writable): searches work; nothing is written
        #: (no index save, no audit or history row); every write transaction raises code ``read_only``.
        self.read_only = is_read_only(self.path)
        old_umask = os.umask(0o077)  # whatever SQLite creates while opening (-wal, -shm) is owner-only
        try:
            if self.read_only:
                self._open_read_only()
            else:
                self._open_read_write()
        except DATABASE_ERRORS as exc:
            if not self.closed:
                self.conn.close()
                self.conn = None
            raise open_error(self.path, self.key, exc) from exc
        finally:
            os.umask(old_umask)
        self.secure_files()

    def _connect(self, target: str, uri: bool = False) -> None:
        self.conn = connect(target, self.key, uri=uri)
        self.conn.execute("PRAGMA busy_timeout=30000")
        if self.key is not None:  # a wrong key (or a plain file) fails here, before anything is written
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()

    def _open_read_write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # Owner-only permissions from the first byte (SQLite gives -wal/-shm the same mode).
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self.secure_files()
        self._connect(str(self.path))
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        # No PRAGMA or plugin of sqlite-utils' own on this connection: the triggers behave as written.
        self.sql = sqlite_utils.Database(self.conn, recursive_triggers=False, execute_plugins=False)
        self._migrate()
        self._migrate_audit_chain()
        self.conn.execute("PRAGMA foreign_keys=ON")
        # One write transaction: the audit triggers are dropped and created again (see schema.py), and
        # triggers on audit/meta that the schema does not know are dropped (Gallery audits that).
        self.dropped_triggers = foreign_triggers(self.conn)
        drops = "".join(f'DROP TRIGGER IF EXISTS "{t.replace(chr(34), chr(34) * 2)}";\n' for t in self.dropped_triggers)
        self.conn.executescript("BEGIN IMMEDIATE;\n" + drops + SCHEMA + "\nCOMMIT;")
        self.sql["meta"].insert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key", ignore=True)
        if not self.meta("gallery_id"):  # the identity the FAISS index files carry (index.py)
            self.sql["meta"].insert({"key": "gallery_id", "value": uuid.uuid4().hex}, pk="key", ignore=True)
        self._enable_person_search()

    def _enable_person_search(self) -> None:
        """sqlite-utils' FTS5 table of the persons (label, case id, metadata), kept by its triggers.

        Made at the first open of a gallery (existing persons are indexed then); without FTS5 in the
        SQLite build the person search falls back to LIKE (records.py)."""

        self.sql["persons"].create_index(["case_id"], if_not_exists=True)  # the case list and case searches
        try:
            if not self.sql["persons"].detect_fts():
                self.sql["persons"].enable_fts(["label", "case_id", "metadata"], create_triggers=True,
                                               tokenize="unicode61 remove_diacritics 2")
        except DATABASE_ERRORS as exc:  # no FTS5 compiled in
            log.warning("%s: no full-text search of persons (%s); the search box uses LIKE", self.path, exc)

    def _open_read_only(self) -> None:
        """``mode=ro`` (``immutable=1`` when the folder is read-only too: SQLite cannot make its -shm)."""

        if not self.path.is_file():
            raise sqlite3.DatabaseError("no such gallery file (and its folder is read-only)")
        folder_writable = _writable(self.path.parent)
        target = f"{self.path.resolve().as_uri()}?{'mode=ro' if folder_writable else 'immutable=1'}"
        self._connect(target, uri=True)
        self.sql = sqlite_utils.Database(self.conn, recursive_triggers=False, execute_plugins=False)
        if self.meta("schema_version") != str(SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"read-only gallery of schema version {self.meta('schema_version')} "
                                        f"(this version needs {SCHEMA_VERSION}: open it writable once to migrate)")
        self.conn.execute("PRAGMA foreign_keys=ON")

    @property
    def gallery_id(self) -> str:
        """This gallery's random identity (meta ``gallery_id``, made at creation / first open)."""

        return self.meta("gallery_id") or ""

    def _migrate(self) -> None:
        """Version 1 -> 2: rebuild persons/images/faces with AUTOINCREMENT ids (foreign keys off)."""

        todo = [t for t in AUTOINCREMENT_TABLES
                if self.sql[t].exists() and "AUTOINCREMENT" not in self.sql[t].schema.upper()]
        if not todo:
            return
        self.conn.execute("PRAGMA foreign_keys=OFF")
        with self.transaction() as conn:
            for t in todo:
                cols = ", ".join(c.name for c in self.sql[t].columns)
                conn.execute(f"CREATE TABLE _new_{t} ({table_body(t)})")
                conn.execute(f"INSERT INTO _new_{t} ({cols}) SELECT {cols} FROM {t}")
                conn.execute(f"DROP TABLE {t}")
                conn.execute(f"ALTER TABLE _new_{t} RENAME TO {t}")
            bad = conn.execute("PRAGMA foreign_key_check").fetchall()
            if bad:
                raise sqlite3.DatabaseError(f"foreign key check failed after migration: {len(bad)} rows")
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def _migrate_audit_chain(self) -> None:
        """Version 2 -> 3: add the audit columns ``claimed_user`` and ``hash`` and chain the existing rows."""

        if not self.sql["audit"].exists() or "hash" in self.sql["audit"].columns_dict:
            return
        with self.transaction() as conn:
            conn.execute("ALTER TABLE audit ADD COLUMN claimed_user TEXT")
            conn.execute("ALTER TABLE audit ADD COLUMN hash TEXT")
            chain_existing(conn)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    # -- files -------------------------------------------------------------------------------
    def secure_files(self) -> None:
        """Owner-only permissions on the database and its ``-wal`` / ``-shm`` files."""

        for side in (self.path, Path(str(self.path) + "-wal"), Path(str(self.path) + "-shm")):
            try:
                mode = side.stat().st_mode if side.exists() else 0
                if mode & 0o077:  # strip group/other, keep the owner's bits (a read-only file stays read-only)
                    os.chmod(side, stat.S_IMODE(mode) & 0o700)
            except OSError:
                pass

    @property
    def closed(self) -> bool:
        return getattr(self, "conn", None) is None

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.conn.close()
                self.conn = None

    # -- transactions --------------------------------------------------------------------
    def transaction(self) -> _Transaction:
        """``with db.transaction() as conn:`` -- one write transaction (all or nothing), under the lock.

        ``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception); inside an open write
        transaction a savepoint, so that a nested block joins the outer one. Raises GalleryError
        (the gallery stays busy past the busy timeout, or a read :meth:`snapshot` is open).
        """

        return _Transaction(self)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """``with db.snapshot() as conn:`` -- consistent reads (one WAL read snapshot), under the lock.

        Joins the transaction already open on this connection, if any. Write nothing inside it.
        """

        with self.lock:
            own = not self.conn.in_transaction
            if own:
                self.conn.execute("BEGIN")
                self._reading = True
            try:
                yield self.conn
            finally:
                if own:
                    self._reading = False
                    self.conn.execute("COMMIT")

    # -- meta ----------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Insert or replace one meta value (joins the caller's transaction, if any)."""

        self.sql["meta"].upsert({"key": key, "value": str(value)}, pk="key")

    def gen(self) -> int:
        """The embeddings generation: bumped by a trigger on every change of the embeddings table."""

        row = self.conn.execute("SELECT value FROM meta WHERE key = 'embeddings_gen'").fetchone()
        return int(row[0]) if row else 0


def _writable(path: Path) -> bool:
    """Writable by its mode bits and for this process (root ignores the bits, a 0444 file still means read-only)."""

    try:
        return bool(path.stat().st_mode & stat.S_IWUSR) and os.access(path, os.W_OK)
    except OSError:
        return False


def is_read_only(path: Path) -> bool:
    """An existing gallery file that this process may not write, or whose folder it may not write."""

    return path.exists() and not (_writable(path) and _writable(path.parent))


class _Transaction:
    """The lock, then ``BEGIN IMMEDIATE`` ... ``COMMIT`` / ``ROLLBACK`` (a savepoint when nested)."""

    def __init__(self, db: GalleryDB):
        self.db = db
        self.savepoint: str | None = None

    def __enter__(self) -> sqlite3.Connection:
        self.db.lock.acquire()
        try:
            conn = self.db.conn
            if self.db.read_only:
                raise GalleryError(f"{self.db.path}: the gallery is read-only (opened without write access)",
                                   code="read_only")
            if self.db._reading:
                raise GalleryError("cannot write inside a read snapshot of the gallery")
            if conn.in_transaction:
                self.savepoint = f"nested_{id(self):x}"
                conn.execute(f"SAVEPOINT {self.savepoint}")
                return conn
            for attempt in range(3):  # each attempt already waits up to the 30 s busy timeout
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return conn
                except OPERATIONAL_ERRORS as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc) or attempt == 2:
                        raise GalleryError(f"gallery is busy: {exc}") from exc
                    time.sleep(0.1)
        except BaseException:
            self.db.lock.release()
            raise

    def __exit__(self, exc_type, exc, tb):
        conn = self.db.conn
        try:
            if self.savepoint is None:
                conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
            elif exc_type is None:
                conn.execute(f"RELEASE SAVEPOINT {self.savepoint}")
            elif conn.in_transaction:
                conn.execute(f"ROLLBACK TO SAVEPOINT {self.savepoint}")
                conn.execute(f"RELEASE SAVEPOINT {self.savepoint}")
        finally:
            self.db.lock.release()
        return False
