"""The gallery's audit log: who did what, when; append-only (triggers) and hash-chained.

Every row stores ``hash`` = sha256 of the previous row's hash and the row's own canonical
content (:func:`row_hash`; the first row chains on :data:`GENESIS`). The ``meta`` table keeps the
head hash (``audit.head``) and the row count (``audit.rows``), updated in the same transaction as
each row, so :meth:`AuditLog.verify` finds a row edited or deleted anywhere, the last rows
included, also when the append-only triggers were dropped first. What the chain cannot stop is
someone rewriting every hash and the meta values too (there is no secret in a local file); the
head hash in a verification report is what an auditor notes down elsewhere to catch that.

``user`` is the OS account of the process (``pwd``, not ``$USER``, which anyone sets);
``claimed_user`` the ``$USER`` given when it differs (else NULL).
"""

from __future__ import annotations

import json

from ..errors import GalleryError
from .chain import COLUMNS, GENESIS, foreign_triggers, row_hash, set_meta
from .db import GalleryDB
from .stamp import claimed_user, current_user, now_iso


class AuditLog:
    """Rows of the ``audit`` table, each stamped with the time and ``user``."""

    def __init__(self, db: GalleryDB, user: str | None = None):
        self.db = db
        self.user = user or current_user()
        self.claimed_user = claimed_user(self.user)

    def write(self, action: str, details: dict) -> None:
        """Add one row inside the caller's open transaction (it is rolled back with it)."""

        conn = self.db.conn
        if not conn.in_transaction:
            raise GalleryError("an audit row is written inside a transaction (use record())")
        head = conn.execute("SELECT value FROM meta WHERE key = 'audit.head'").fetchone()
        count = conn.execute("SELECT value FROM meta WHERE key = 'audit.rows'").fetchone()
        # The id is part of the hashed content, so it is chosen here (the write lock is held).
        new_id = int(conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM audit").fetchone()[0])
        row = {"id": new_id, "at": now_iso(), "user": self.user, "claimed_user": self.claimed_user,
               "action": action, "details": json.dumps(details, sort_keys=True)}
        row["hash"] = row_hash(head[0] if head else GENESIS, row)
        conn.execute(f"INSERT INTO audit({COLUMNS}) VALUES (:id, :at, :user, :action, :details, :claimed_user, :hash)",
                     row)
        stored = conn.execute("SELECT hash FROM audit WHERE id = ?", (new_id,)).fetchone()
        if stored is None or stored[0] != row["hash"]:  # e.g. a crafted trigger that drops or rewrites the insert
            raise GalleryError("the audit row was not written as given: the gallery's audit table was tampered with",
                               code="audit_tampered")
        set_meta(conn, "audit.head", row["hash"])
        set_meta(conn, "audit.rows", str(int(count[0]) + 1 if count else 1))

    def record(self, action: str, details: dict | None = None) -> None:
        """Add one row: its own transaction, or part of the one open on this connection."""

        with self.db.transaction():
            self.write(action, details or {})

    def entries(self, limit: int | None = None) -> list[dict]:
        """The newest ``limit`` rows (all when None), newest first, ``details`` decoded."""

        sql = "SELECT id, at, user, claimed_user, action, details, hash FROM audit ORDER BY id DESC"
        with self.db.lock:
            rows = self.db.conn.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        return [dict(r, details=json.loads(r["details"])) for r in rows]

    def verify(self, max_listed: int = 100) -> dict:
        """Check the hash chain of every row and the head and count kept in ``meta``.

        Returns ``{"ok", "rows", "recorded_rows", "head", "first_broken_id", "problem",
        "broken_ids", "foreign_triggers"}``: ``first_broken_id`` is the first row that does not
        chain (a row edited, or rows before it deleted), or the first missing id when the last
        rows were deleted; ``problem`` says what is wrong in words; ``broken_ids`` lists up to
        ``max_listed`` rows that do not match their own hash.
        """

        with self.db.snapshot() as conn:
            rows = conn.execute(f"SELECT {COLUMNS} FROM audit ORDER BY id").fetchall()
            head = conn.execute("SELECT value FROM meta WHERE key = 'audit.head'").fetchone()
            count = conn.execute("SELECT value FROM meta WHERE key = 'audit.rows'").fetchone()
            foreign = foreign_triggers(conn)
        recorded_rows = int(count[0]) if count else 0
        recorded_head = head[0] if head else GENESIS
        first, problem, broken = None, None, []
        prev, prev_id = GENESIS, 0
        for r in rows:
            rid = int(r["id"])
            expected = row_hash(prev, r)
            if r["hash"] != expected:
                if len(broken) < max_listed:
                    broken.append(rid)
                if first is None:
                    first = rid
                    if r["hash"] is None:
                        problem = f"row {rid} has no hash: it was written past FASFinder's audit log"
                    elif rid != prev_id + 1:
                        gone = f"{prev_id + 1}" if rid == prev_id + 2 else f"{prev_id + 1}..{rid - 1}"
                        problem = f"row(s) {gone} were deleted: row {rid} does not chain on row {prev_id}"
                    else:
                        problem = f"row {rid} was changed or replaced after it was written (it does not match its hash)"
            prev, prev_id = (r["hash"] or expected), rid
        if first is None and (recorded_rows != len(rows) or recorded_head != prev):
            if recorded_rows > len(rows):
                first = prev_id + 1
                problem = (f"the last {recorded_rows - len(rows)} row(s) were deleted: the gallery recorded "
                           f"{recorded_rows} rows, the log holds {len(rows)}")
            else:
                first = prev_id if rows else None
                problem = (f"the log's head does not match the one recorded with the last write "
                           f"({recorded_rows} rows recorded, {len(rows)} found)")
        return {"ok": problem is None, "rows": len(rows), "recorded_rows": recorded_rows, "head": prev,
                "first_broken_id": first, "problem": problem, "broken_ids": broken, "foreign_triggers": foreign}
