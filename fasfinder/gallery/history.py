"""Recorded queries: each search a user chose to keep, with its results (and an audit row).

A retention period (``retention_days``, the ``history_days`` setting) deletes older queries when
the gallery opens and at every new record, with an audit row saying how many went.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from ..errors import GalleryError, NotFoundInGallery
from .audit import AuditLog
from .crypt import OPERATIONAL_ERRORS
from .db import GalleryDB
from .stamp import now_iso

log = logging.getLogger("fasfinder.gallery")


class QueryHistory:
    """Rows of the ``queries`` table."""

    def __init__(self, db: GalleryDB, audit: AuditLog, retention_days: int | None = None):
        self.db = db
        self.audit = audit
        self.last_error: str | None = None
        self.retention_days = retention_days

    def prune(self) -> int:
        """Delete the queries older than ``retention_days`` (audited); how many went (0 when no limit)."""

        if self.retention_days is None or getattr(self.db, "read_only", False):
            return 0
        days = float(self.retention_days)
        cutoff = (datetime.now(UTC) - timedelta(days=max(days, 0.0))).isoformat(timespec="milliseconds")
        with self.db.lock:
            if self.db.conn.execute("SELECT 1 FROM queries WHERE created_at < ? LIMIT 1", (cutoff,)).fetchone() is None:
                return 0
        with self.db.transaction() as conn:
            # created_at is now_iso() (UTC, one format), so text order is time order.
            n = conn.execute("DELETE FROM queries WHERE created_at < ?", (cutoff,)).rowcount
            if n:
                self.audit.write("query.prune", {"deleted": int(n), "older_than": cutoff,
                                                 "retention_days": self.retention_days})
        return int(n)

    def record(self, *, query_path: str, query_sha256: str | None, engine: str, results: dict) -> int | None:
        """Store one query and its results; return its id.

        None, logged (``last_error`` says why), when it cannot be written: a read-only gallery or a
        failed write (disk full): the search it belongs to has answered and must not fail for it.
        """

        try:
            return self._record(query_path=query_path, query_sha256=query_sha256, engine=engine, results=results)
        except (OSError, *OPERATIONAL_ERRORS, GalleryError) as exc:
            if isinstance(exc, GalleryError) and exc.code not in ("read_only", "gallery_error"):
                raise
            self.last_error = f"the query was not recorded in the history ({exc})"
            log.warning("%s: %s", self.db.path, self.last_error)
            return None

    def _record(self, *, query_path: str, query_sha256: str | None, engine: str, results: dict) -> int:
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO queries(created_at, user, query_path, query_sha256, engine, results) VALUES (?, ?, ?, ?, ?, ?)",
                (now_iso(), self.audit.user, query_path, query_sha256, engine, json.dumps(results, sort_keys=True)),
            )
            self.audit.write("query.record", {"query_id": cur.lastrowid, "query": query_path,
                                              "query_sha256": query_sha256, "engine": engine,
                                              "faces": len(results.get("faces", []))})
            query_id = int(cur.lastrowid)
            self.prune()
            return query_id

    def get(self, query_id: int) -> dict:
        with self.db.lock:
            row = self.db.conn.execute(
                "SELECT id, created_at, user, query_path, query_sha256, engine, results FROM queries WHERE id = ?",
                (int(query_id),)).fetchone()
        if row is None:
            raise NotFoundInGallery(f"no recorded query with id {query_id} (unknown, or past history_days)")
        return dict(row, results=json.loads(row["results"]))

    def recent(self, limit: int = 100) -> list[dict]:
        """The newest ``limit`` queries, newest first, ``results`` decoded."""

        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT id, created_at, user, query_path, query_sha256, engine, results FROM queries ORDER BY id DESC LIMIT ?",
                (int(limit),),
            ).fetchall()
        return [dict(r, results=json.loads(r["results"])) for r in rows]
