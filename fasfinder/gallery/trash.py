"""Soft delete: what a delete or merge removed, kept for ``trash_days`` so it can be restored.

A delete of a person, photo or face still removes its rows from ``persons`` / ``images`` /
``faces`` / ``embeddings`` (so search, export, counts and duplicate checks never see it, and the
FAISS indexes drop its faces through the change log), but in the same transaction the removed rows
are copied into one ``trash`` row (JSON, blobs base64). :func:`restore_rows` writes them back with
their old ids (``AUTOINCREMENT`` ids are never reused, so they are free) and :meth:`Trash.purge`
deletes trash rows for good: those older than the retention period at every open, or one on
request. A merge keeps the merged-away person and the moved photo ids (kind ``merge``), so it is
undone the same way. Every step is an audit row (``<kind>.delete``, ``<kind>.restore``,
``trash.purge``), written by the caller (records.py) or here.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from ..errors import GalleryError, NotFoundInGallery
from .audit import AuditLog
from .db import GalleryDB
from .stamp import now_iso

KINDS = ("person", "image", "face", "merge")
_TABLES = ("persons", "images", "faces", "embeddings")
_BLOB = "__b64__"


def encode_row(row) -> dict:
    return {k: ({_BLOB: base64.b64encode(v).decode("ascii")} if isinstance(v, bytes) else v) for k, v in dict(row).items()}


def decode_row(row: dict) -> dict:
    return {k: (base64.b64decode(v[_BLOB]) if isinstance(v, dict) and _BLOB in v else v) for k, v in row.items()}


def _rows(conn, sql: str, args) -> list[dict]:
    return [encode_row(r) for r in conn.execute(sql, args)]


def snapshot_rows(conn, kind: str, key: int) -> tuple[dict, str]:
    """The rows a delete of ``kind`` ``key`` removes (``persons``, ``images``, ``faces``, ``embeddings``)
    and a short name of what goes; NotFoundInGallery when there is no such row."""

    if kind == "person":
        persons = _rows(conn, "SELECT * FROM persons WHERE id = ?", (key,))
        images = _rows(conn, "SELECT * FROM images WHERE person_id = ?", (key,))
    elif kind == "image":
        images = _rows(conn, "SELECT * FROM images WHERE id = ?", (key,))
        persons = []
    elif kind == "face":
        images, persons = [], []
    else:
        raise GalleryError(f"unknown trash kind {kind!r}", code="bad_argument")
    if kind == "face":
        faces = _rows(conn, "SELECT * FROM faces WHERE id = ?", (key,))
    else:
        ids = [im["id"] for im in images]
        faces = _rows(conn, f"SELECT * FROM faces WHERE image_id IN ({','.join('?' * len(ids))})", ids) if ids else []
    main = {"person": persons, "image": images, "face": faces}[kind]
    if not main:
        raise NotFoundInGallery(f"no {kind} with id {key}")
    fids = [f["id"] for f in faces]
    emb = _rows(conn, f"SELECT * FROM embeddings WHERE face_id IN ({','.join('?' * len(fids))})", fids) if fids else []
    if kind == "person":
        what = f"person {persons[0]['label']!r} with {len(images)} photo(s)"
    elif kind == "image":
        what = f"photo {images[0]['path']}"
    else:
        what = f"face {key}"
    return {"persons": persons, "images": images, "faces": faces, "embeddings": emb}, what


def person_label(conn, person_id: int) -> str:
    row = conn.execute("SELECT label FROM persons WHERE id = ?", (person_id,)).fetchone()
    return row[0] if row else ""


def _insert(conn, table: str, rows: list[dict]) -> None:
    for r in rows:
        r = decode_row(r)
        cols = list(r)
        conn.execute(f"INSERT INTO {table}({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                     [r[c] for c in cols])


def restore_rows(conn, payload: dict) -> None:
    """Write the rows of a trash payload back (same ids). GalleryError ``restore_conflict`` when a label
    or a photo's content is in the gallery again, or the person / photo a part belonged to is gone."""

    for p in payload["persons"]:
        if conn.execute("SELECT 1 FROM persons WHERE label = ?", (p["label"],)).fetchone():
            raise GalleryError(f"cannot restore: another person is now called {p['label']!r} (rename it first)",
                               code="restore_conflict")
    person_ids = {p["id"] for p in payload["persons"]}
    for im in payload["images"]:
        if conn.execute("SELECT 1 FROM images WHERE sha256 = ?", (im["sha256"],)).fetchone():
            raise GalleryError(f"cannot restore: the photo {im['path']} was enrolled again since",
                               code="restore_conflict")
        if im["person_id"] not in person_ids and not conn.execute(
                "SELECT 1 FROM persons WHERE id = ?", (im["person_id"],)).fetchone():
            raise GalleryError(f"cannot restore the photo {im['path']}: its person was deleted (restore the person "
                               "first)", code="restore_conflict")
    image_ids = {im["id"] for im in payload["images"]}
    for f in payload["faces"]:
        if f["image_id"] not in image_ids and not conn.execute(
                "SELECT 1 FROM images WHERE id = ?", (f["image_id"],)).fetchone():
            raise GalleryError(f"cannot restore face {f['id']}: its photo was deleted", code="restore_conflict")
    for table in _TABLES:
        _insert(conn, table, payload[table])


class Trash:
    """Rows of the ``trash`` table: soft-deleted persons, photos, faces and undone-able merges."""

    def __init__(self, db: GalleryDB, audit: AuditLog, retention_days: float | None = 30):
        self.db = db
        self.audit = audit
        self.retention_days = retention_days

    def keep(self, conn, kind: str, ref_id: int, label: str, what: str, payload: dict) -> int:
        """Store one trash row inside the caller's transaction; its id."""

        cur = conn.execute("INSERT INTO trash(kind, ref_id, label, what, deleted_at, user, payload) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (kind, int(ref_id), label, what, now_iso(), self.audit.user, json.dumps(payload)))
        return int(cur.lastrowid)

    def entries(self) -> list[dict]:
        """Every trash row, newest first, without its payload: ``id, kind, ref_id, label, what,
        deleted_at, user, purge_after`` (None when kept until purged by hand)."""

        with self.db.lock:
            if not self._exists():
                return []
            rows = self.db.conn.execute("SELECT id, kind, ref_id, label, what, deleted_at, user FROM trash "
                                        "ORDER BY id DESC").fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["purge_after"] = None
            if self.retention_days is not None:
                at = datetime.fromisoformat(d["deleted_at"]) + timedelta(days=float(self.retention_days))
                d["purge_after"] = at.isoformat(timespec="seconds")
            out.append(d)
        return out

    def _exists(self) -> bool:
        return self.db.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'trash'").fetchone() \
            is not None

    def take(self, conn, trash_id: int) -> dict:
        """The row (payload decoded) of ``trash_id``, deleted from the trash inside the caller's transaction."""

        row = conn.execute("SELECT * FROM trash WHERE id = ?", (int(trash_id),)).fetchone()
        if row is None:
            raise NotFoundInGallery(f"nothing with id {trash_id} in the trash (restored or purged already?)")
        conn.execute("DELETE FROM trash WHERE id = ?", (int(trash_id),))
        return dict(row, payload=json.loads(row["payload"]))

    def purge(self, trash_id: int | None = None) -> int:
        """Delete for good: ``trash_id``, or (None) every row older than the retention period. Audited; how many."""

        if trash_id is None and (self.retention_days is None or self.db.read_only):
            return 0
        with self.db.lock:
            if not self._exists():
                return 0
            with self.db.transaction() as conn:
                if trash_id is not None:
                    row = self.take(conn, trash_id)
                    self.audit.write("trash.purge", {"trash_ids": [row["id"]], "what": [row["what"]], "by": "user"})
                    return 1
                cutoff = (datetime.now(UTC) - timedelta(days=max(float(self.retention_days), 0.0))
                          ).isoformat(timespec="milliseconds")
                rows = conn.execute("SELECT id, what FROM trash WHERE deleted_at < ?", (cutoff,)).fetchall()
                if not rows:
                    return 0
                conn.execute("DELETE FROM trash WHERE deleted_at < ?", (cutoff,))
                self.audit.write("trash.purge", {"trash_ids": [r[0] for r in rows], "what": [r[1] for r in rows],
                                                 "older_than": cutoff, "retention_days": self.retention_days,
                                                 "by": "retention"})
                return len(rows)
