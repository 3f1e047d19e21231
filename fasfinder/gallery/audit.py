"""The gallery's append-only audit log: who did what, when (triggers refuse UPDATE and DELETE)."""

from __future__ import annotations

import json

from .db import GalleryDB
from .stamp import current_user, now_iso


class AuditLog:
    """Rows of the ``audit`` table, each stamped with the time and ``user``."""

    def __init__(self, db: GalleryDB, user: str | None = None):
        self.db = db
        self.user = user or current_user()

    def write(self, action: str, details: dict) -> None:
        """Add one row inside the caller's open transaction (it is rolled back with it)."""

        self.db.conn.execute(
            "INSERT INTO audit(at, user, action, details) VALUES (?, ?, ?, ?)",
            (now_iso(), self.user, action, json.dumps(details, sort_keys=True)),
        )

    def record(self, action: str, details: dict | None = None) -> None:
        """Add one row: its own transaction, or part of the one open on this connection."""

        with self.db.transaction():
            self.write(action, details or {})

    def entries(self, limit: int | None = None) -> list[dict]:
        """The newest ``limit`` rows (all when None), newest first, ``details`` decoded."""

        sql = "SELECT id, at, user, action, details FROM audit ORDER BY id DESC"
        with self.db.lock:
            rows = self.db.conn.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        return [dict(r, details=json.loads(r["details"])) for r in rows]
