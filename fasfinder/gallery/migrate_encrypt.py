"""Migration of a plain gallery to an encrypted one (``main.py encrypt --db FILE``).

1. The plain gallery is opened once (schema migrations, index upkeep), then closed with its WAL
   checkpointed into the file.
2. SQLCipher copies it into ``<db>.encrypting.tmp`` (``ATTACH ... KEY``, ``sqlcipher_export``:
   tables, rows, ``sqlite_sequence``, then indexes and triggers).
3. The copy is verified against the original: a sha256 over every row of every table must match.
4. The original is kept as ``<db>.plain-backup`` while the copy takes its name; each index file is
   encrypted (AES-GCM, the same bytes inside) and the encrypted gallery is opened with the key: the
   counts, every index and the audit chain must check out, and an audit row ``gallery.encrypted``
   is written. Only then is the backup deleted. Any failure before that puts the original back.

Deleting the plain backup removes the file, not the blocks the file system may keep: on a disk
that held plain galleries, full-disk encryption is still the way to be sure (docs/results/gallery.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from pathlib import Path

from sqlcipher3 import dbapi2 as sqlcipher

from ..errors import GalleryError
from .crypt import DATABASE_ERRORS, FileCipher, check_key, connect, file_kind, is_encrypted, sql_text
from .index import _fsync_dir, write_atomic
from .store import Gallery


def _sides(path: Path) -> list[Path]:
    return [Path(str(path) + s) for s in ("-wal", "-shm", "-journal")]


def table_digests(conn) -> dict[str, str]:
    """sha256 over every row (in rowid order; all columns for a WITHOUT ROWID table) of every table: what must survive the copy unchanged."""

    out = {}
    tables = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
    for name, sql in tables:
        h = hashlib.sha256()
        quoted = '"' + name.replace('"', '""') + '"'
        order = "rowid"
        if "WITHOUT ROWID" in (sql or "").upper():  # e.g. the FTS5 shadow tables of persons_fts: every column
            n = len(conn.execute(f"PRAGMA table_info({quoted})").fetchall())
            order = ", ".join(str(i) for i in range(1, n + 1))
        for row in conn.execute(f"SELECT * FROM {quoted} ORDER BY {order}"):
            h.update(repr(tuple(row)).encode("utf-8", "backslashreplace"))
        out[name] = h.hexdigest()
    return out


def encrypt_gallery(path: str | os.PathLike, key: str, *, user: str | None = None) -> dict:
    """Encrypt the plain gallery at ``path`` in place with ``key``; returns what was done.

    Errors (GalleryError): ``bad_argument`` (no key), ``already_encrypted`` (the file is not a plain
    SQLite file), ``encrypt_failed`` (the copy did not verify: the original is back in place).
    """

    path = Path(path)
    key = check_key(key)
    if key is None:
        raise GalleryError("encrypting a gallery needs a key (FASFINDER_GALLERY_KEY or --key-file)",
                           code="bad_argument")
    kind = file_kind(path)
    if kind in ("missing", "empty"):
        raise GalleryError(f"{path}: no gallery to encrypt", code="not_in_gallery")
    if kind != "plain":
        raise GalleryError(f"{path}: the gallery is already encrypted (or is not a FASFinder gallery)",
                           code="already_encrypted")
    with Gallery(path, user=user) as plain:  # migrates the schema; brings the index files up to date
        if plain.read_only:
            raise GalleryError(f"{path}: the gallery is read-only; it cannot be encrypted in place", code="read_only")
        counts = plain.counts()
        engines = sorted(plain._vectors.engines_in_db())
        plain.audit("gallery.encrypt_started", {"engines": engines})
    tmp = path.with_name(path.name + ".encrypting.tmp")
    backup = path.with_name(path.name + ".plain-backup")
    for stale in [tmp, *_sides(tmp)]:
        stale.unlink(missing_ok=True)
    old_umask = os.umask(0o077)
    try:
        src = sqlite3.connect(str(path), isolation_level=None)
        try:
            src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            digests = table_digests(src)
        finally:
            src.close()
        _export(path, tmp, key)
        enc = connect(str(tmp), key)
        try:
            copied = table_digests(enc)
        finally:
            enc.close()
    except DATABASE_ERRORS as exc:
        tmp.unlink(missing_ok=True)
        raise GalleryError(f"{path}: the encrypted copy could not be written ({exc})", code="encrypt_failed") from exc
    finally:
        os.umask(old_umask)
    if copied != digests:
        tmp.unlink(missing_ok=True)
        differ = sorted(t for t in set(digests) | set(copied) if digests.get(t) != copied.get(t))
        raise GalleryError(f"{path}: the encrypted copy differs from the gallery in tables {differ}; nothing changed",
                           code="encrypt_failed")
    for side in _sides(path):
        side.unlink(missing_ok=True)  # checkpointed above; a plain -wal must never meet the encrypted file
    os.replace(path, backup)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    try:
        indexes = _encrypt_indexes(path, engines, FileCipher(key))
        with Gallery(path, user=user, key=key) as gallery:
            after = gallery.counts()
            checks = {e: gallery.verify_index(e) for e in engines}
            if after != counts:
                raise GalleryError(f"counts differ after encryption: {after} != {counts}", code="encrypt_failed")
            gallery.audit("gallery.encrypted", {"engines": engines, "tables": sorted(digests),
                                                "cipher": "sqlcipher4", "index_files": indexes})
            audit = gallery.verify_audit()
            if not audit.get("ok"):
                raise GalleryError(f"audit chain does not verify after encryption: {audit}", code="encrypt_failed")
    except BaseException:
        for side in _sides(path):
            side.unlink(missing_ok=True)
        os.replace(backup, path)  # the original is back; index files are rebuilt from it as needed
        _fsync_dir(path.parent)
        raise
    backup.unlink()
    _fsync_dir(path.parent)
    return {"path": str(path), "encrypted": True, "counts": counts, "engines": engines, "index_files": indexes,
            "index_checks": checks, "audit_ok": True, "backup_removed": True}


def _export(path: Path, tmp: Path, key: str) -> None:
    """SQLCipher's own copy of the plain database into a new encrypted file."""

    conn = sqlcipher.connect(str(path), isolation_level=None)  # no key: SQLCipher reads the plain file
    try:
        conn.execute(f"ATTACH DATABASE {sql_text(str(tmp))} AS encrypted KEY {sql_text(key)}")
        conn.execute("SELECT sqlcipher_export('encrypted')").fetchall()
        conn.execute("DETACH DATABASE encrypted")
    finally:
        conn.close()
    with contextlib.suppress(OSError):
        os.chmod(tmp, 0o600)


def _encrypt_indexes(path: Path, engines: list[str], cipher: FileCipher) -> int:
    """Each plain index file beside the gallery, encrypted in place (atomically); how many."""

    done = 0
    for engine in engines:
        idx = path.with_name(f"{path.name}.{engine}.faiss")
        if not idx.is_file():
            continue
        blob = idx.read_bytes()
        if is_encrypted(blob):
            continue
        write_atomic(idx, [cipher.encrypt(blob)])
        done += 1
    return done
