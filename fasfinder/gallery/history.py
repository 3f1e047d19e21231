"""Recorded queries: each search a user chose to keep, with its results (and an audit row)."""

from __future__ import annotations

import json

from .audit import AuditLog
from .db import GalleryDB
from .stamp import now_iso


class QueryHistory:
    """Rows of the ``queries`` table."""

    def __init__(self, db: GalleryDB, audit: AuditLog):
        self.db = db
        self.audit = audit

    def record(self, *, query_path: str, query_sha256: str | None, engine: str, results: dict) -> int:
        """Store one query and its results; return its id."""

        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO queries(created_at, user, query_path, query_sha256, engine, results) VALUES (?, ?, ?, ?, ?, ?)",
                (now_iso(), self.audit.user, query_path, query_sha256, engine, json.dumps(results, sort_keys=True)),
            )
            self.audit.write("query.record", {"query_id": cur.lastrowid, "query": query_path,
                                              "query_sha256": query_sha256, "engine": engine,
                                              "faces": len(results.get("faces", []))})
            return int(cur.lastrowid)

    def recent(self, limit: int = 100) -> list[dict]:
        """The newest ``limit`` queries, newest first, ``results`` decoded."""

        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT id, created_at, user, query_path, query_sha256, engine, results FROM queries ORDER BY id DESC LIMIT ?",
                (int(limit),),
            ).fetchall()
        return [dict(r, results=json.loads(r["results"])) for r in rows]
