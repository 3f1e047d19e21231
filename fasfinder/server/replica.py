"""The workstation side of sync: tables beside the gallery's own in the same SQLite file.

* ``sync_person`` / ``sync_face``: the server identity (a random 128-bit hex uuid, made on the
  workstation when the row is created) of each local person and face, and the person's server
  ``version`` the local copy is based on;
* ``sync_outbox``: the local changes not yet on the server, written by triggers on persons, images
  and faces *in the same transaction as the change*, so every path that changes the gallery
  (enroll, edit, delete, import) is captured and a crash loses no change. Each entry has an ``op_id``
  that makes its push idempotent;
* ``sync_state``: the pull cursor, the last sync time, and ``applying`` (1 while sync itself writes
  pulled rows: the triggers then stay quiet; set and reset inside that one transaction);
* ``sync_conflicts``: what the conflict rules decided (see sync.py), for the user to review;
* ``sync_decisions``: decisions (match confirmed / rejected) replicated with the server.

The gallery's own schema and code are untouched: these objects are created on first sync.
"""

from __future__ import annotations

import json

from ..gallery import Gallery
from ..gallery.stamp import now_iso

_NEW_ID = "lower(hex(randomblob(16)))"
_QUIET = "(SELECT value FROM sync_state WHERE key = 'applying') = '0'"

REPLICA_SQL = f"""
CREATE TABLE IF NOT EXISTS sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO sync_state VALUES ('applying', '0'), ('cursor', '0');
CREATE TABLE IF NOT EXISTS sync_person (local_id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE,
                                        version INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sync_face (local_id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS sync_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
    local_id INTEGER NOT NULL, op TEXT NOT NULL, key TEXT, op_id TEXT NOT NULL DEFAULT ({_NEW_ID}));
CREATE TABLE IF NOT EXISTS sync_conflicts (id INTEGER PRIMARY KEY, at TEXT NOT NULL, rule TEXT NOT NULL,
                                           details TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sync_decisions (uuid TEXT PRIMARY KEY, case_id TEXT NOT NULL, person_uuid TEXT,
    query_sha256 TEXT, face_uuid TEXT, verdict TEXT NOT NULL, note TEXT NOT NULL, created_by TEXT,
    created_at TEXT, pushed INTEGER NOT NULL DEFAULT 0);
CREATE TRIGGER IF NOT EXISTS sync_person_ins AFTER INSERT ON persons WHEN {_QUIET} BEGIN
    INSERT INTO sync_person(local_id, uuid) VALUES (NEW.id, {_NEW_ID});
    INSERT INTO sync_outbox(kind, local_id, op) VALUES ('person', NEW.id, 'ins');
END;
CREATE TRIGGER IF NOT EXISTS sync_person_upd AFTER UPDATE ON persons WHEN {_QUIET} BEGIN
    INSERT INTO sync_outbox(kind, local_id, op) VALUES ('person', NEW.id, 'upd');
END;
CREATE TRIGGER IF NOT EXISTS sync_person_del AFTER DELETE ON persons BEGIN
    INSERT INTO sync_outbox(kind, local_id, op, key)
    SELECT 'person', OLD.id, 'del', uuid FROM sync_person WHERE local_id = OLD.id AND {_QUIET};
    DELETE FROM sync_person WHERE local_id = OLD.id;
END;
CREATE TRIGGER IF NOT EXISTS sync_image_ins AFTER INSERT ON images WHEN {_QUIET} BEGIN
    INSERT INTO sync_outbox(kind, local_id, op, key) VALUES ('image', NEW.id, 'ins', NEW.sha256);
END;
CREATE TRIGGER IF NOT EXISTS sync_image_del AFTER DELETE ON images WHEN {_QUIET} BEGIN
    INSERT INTO sync_outbox(kind, local_id, op, key) VALUES ('image', OLD.id, 'del', OLD.sha256);
END;
CREATE TRIGGER IF NOT EXISTS sync_face_ins AFTER INSERT ON faces WHEN {_QUIET} BEGIN
    INSERT INTO sync_face(local_id, uuid) VALUES (NEW.id, {_NEW_ID});
END;
CREATE TRIGGER IF NOT EXISTS sync_face_del AFTER DELETE ON faces BEGIN
    INSERT INTO sync_outbox(kind, local_id, op, key)
    SELECT 'image', OLD.image_id, 'upd', i.sha256 FROM images i WHERE i.id = OLD.image_id AND {_QUIET};
    DELETE FROM sync_face WHERE local_id = OLD.id;
END;
"""


def attach(gallery: Gallery) -> None:
    """Create the sync tables and triggers (idempotent); rows that predate them are queued for push."""

    with gallery.transaction() as conn:
        fresh = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sync_outbox'").fetchone() is None
        # executescript would commit mid-transaction: the statements run one by one
        for stmt in _statements(REPLICA_SQL):
            conn.execute(stmt)
        if fresh:
            conn.execute(f"INSERT INTO sync_person(local_id, uuid) SELECT id, {_NEW_ID} FROM persons")
            conn.execute(f"INSERT INTO sync_face(local_id, uuid) SELECT id, {_NEW_ID} FROM faces")
            conn.execute("INSERT INTO sync_outbox(kind, local_id, op) SELECT 'person', id, 'ins' FROM persons")
            conn.execute("INSERT INTO sync_outbox(kind, local_id, op, key) SELECT 'image', id, 'ins', sha256 "
                         "FROM images")


def _statements(script: str) -> list[str]:
    """Split on ``;`` at line ends outside trigger bodies (BEGIN ... END;)."""

    out, buf, depth = [], [], 0
    for line in script.strip().splitlines():
        buf.append(line)
        s = line.strip()
        if s.endswith(" BEGIN") or s == "BEGIN":
            depth += 1
        if s == "END;":
            depth -= 1
        if depth == 0 and s.endswith(";"):
            out.append("\n".join(buf))
            buf = []
    return out


def state(conn, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM sync_state WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def set_state(conn, key: str, value: str) -> None:
    conn.execute("INSERT INTO sync_state VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (key, str(value)))


def conflict(conn, rule: str, details: dict, at: str) -> None:
    conn.execute("INSERT INTO sync_conflicts(at, rule, details) VALUES (?, ?, ?)",
                 (at, rule, json.dumps(details, sort_keys=True)))


def status(gallery: Gallery) -> dict:
    """Last sync time, pending changes, conflicts recorded (no server needed)."""

    with gallery.snapshot() as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sync_outbox'").fetchone() is None:
            return {"attached": False, "last_sync": None, "pending": None, "conflicts": 0}
        pending = conn.execute("SELECT COUNT(*) FROM sync_outbox").fetchone()[0]
        pending += conn.execute("SELECT COUNT(*) FROM sync_decisions WHERE pushed = 0").fetchone()[0]
        return {"attached": True, "last_sync": state(conn, "last_sync"), "pending": int(pending),
                "conflicts": int(conn.execute("SELECT COUNT(*) FROM sync_conflicts").fetchone()[0]),
                "server": state(conn, "server")}


def record_decision(gallery: Gallery, *, person_id: int, verdict: str, note: str = "",
                    query_sha256: str | None = None, face_id: int | None = None) -> str:
    """Store a decision (``verdict`` on a match of the person ``person_id``) for the next push; its uuid."""

    import uuid as _uuid

    from ..errors import BadArgument, NotFoundInGallery

    if not isinstance(verdict, str) or not verdict.strip() or len(verdict) > 64:
        raise BadArgument("a decision needs a verdict (at most 64 characters)")
    attach(gallery)
    with gallery.transaction() as conn:
        row = conn.execute("SELECT p.case_id, s.uuid FROM persons p JOIN sync_person s ON s.local_id = p.id "
                           "WHERE p.id = ?", (int(person_id),)).fetchone()
        if row is None:
            raise NotFoundInGallery(f"no person with id {person_id}")
        face = conn.execute("SELECT uuid FROM sync_face WHERE local_id = ?", (face_id,)).fetchone() if face_id else None
        did = _uuid.uuid4().hex
        conn.execute("INSERT INTO sync_decisions(uuid, case_id, person_uuid, query_sha256, face_uuid, verdict, note, "
                     "created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (did, row[0], row[1], query_sha256, face[0] if face else None, verdict, note, gallery.user,
                      now_iso()))
        gallery.audit("decision.record", {"uuid": did, "person_id": int(person_id), "verdict": verdict})
    return did
