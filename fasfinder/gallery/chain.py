"""The audit log's hash chain: the row hash, chaining existing rows, and the triggers guarding it.

A leaf of the gallery package (stdlib and schema.py only), shared by db.py (the v2 -> v3
migration, the trigger check at open) and audit.py (writing and verifying rows).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3

from .schema import OWN_TRIGGERS

#: The hash the first row chains on.
GENESIS = "0" * 64

#: The audit columns, in the order rows are read and written.
COLUMNS = "id, at, user, action, details, claimed_user, hash"


def row_hash(prev: str, row) -> str:
    """sha256 of the previous row's hash and this row's canonical content (``details`` as stored)."""

    content = json.dumps([int(row["id"]), row["at"], row["user"], row["claimed_user"], row["action"], row["details"]],
                         ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{prev}\n{content}".encode()).hexdigest()


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (key, value))


def chain_existing(conn: sqlite3.Connection) -> int:
    """Migration: hash every row of the audit table in id order, store the head and count; how many rows.

    Runs inside the migration's transaction, with the append-only triggers dropped.
    """

    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    prev, n = GENESIS, 0
    for r in conn.execute(f"SELECT {COLUMNS} FROM audit ORDER BY id").fetchall():
        prev = row_hash(prev, r)
        conn.execute("UPDATE audit SET hash = ? WHERE id = ?", (prev, r["id"]))
        n += 1
    set_meta(conn, "audit.head", prev)
    set_meta(conn, "audit.rows", str(n))
    return n


def foreign_triggers(conn: sqlite3.Connection) -> list[str]:
    """Triggers on the audit or meta table that schema.py did not create (sorted)."""

    return sorted(r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ('audit', 'meta')")
        if r[0] not in OWN_TRIGGERS)
