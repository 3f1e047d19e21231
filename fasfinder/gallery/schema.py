"""SQLite schema of a gallery (version 3).

Version 2: ``AUTOINCREMENT`` ids for persons, images and faces (an id is never reused after a
delete, so a stale FAISS entry can never point at a newer face), and triggers that bump
``meta.embeddings_gen`` on every change of the embeddings table (including cascaded deletes and
changes made by other processes or tools) and log the changed face id in ``embedding_changes``
(one row per generation), so an index that reflects generation g is brought up to date by
replaying the log after g instead of comparing every id. Galleries of version 1 are migrated when opened.

Version 3: the audit log is hash-chained (``audit.hash`` = sha256 of the previous row's hash and
the row's own canonical content, see audit.py; ``meta`` keeps the head hash and the row count,
updated in the same transaction as each row), ``audit.user`` is the OS account and
``audit.claimed_user`` the ``$USER`` given when it differs. The append-only triggers are dropped
and created again at every open (a gallery crafted with no-op triggers of the same names gets
the real ones back). Galleries of version 2 are migrated when opened: the columns are added and
the existing rows chained.

The ``trash`` table (soft delete, trash.py) and the ``decisions`` table (decisions.py) are created at open when missing (no version change:
a gallery without it simply has an empty trash).
"""

import re

SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS persons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL UNIQUE,
    case_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    provenance TEXT NOT NULL DEFAULT '{}',
    liveness TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_person ON images(person_id);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    box TEXT NOT NULL,
    landmarks BLOB NOT NULL,
    detector TEXT NOT NULL,
    score REAL NOT NULL,
    crop BLOB NOT NULL,
    crop_box TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS faces_image ON faces(image_id);
CREATE TABLE IF NOT EXISTS embeddings (
    face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    engine TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (face_id, engine)
);
CREATE INDEX IF NOT EXISTS embeddings_engine ON embeddings(engine);
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    user TEXT NOT NULL,
    query_path TEXT NOT NULL,
    query_sha256 TEXT,
    engine TEXT NOT NULL,
    results TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trash (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    ref_id INTEGER NOT NULL,
    label TEXT NOT NULL,
    what TEXT NOT NULL,
    deleted_at TEXT NOT NULL,
    user TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    query_id INTEGER NOT NULL REFERENCES queries(id) ON DELETE CASCADE,
    face_index INTEGER NOT NULL,
    face_id INTEGER NOT NULL,
    decision TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    user TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    claimed_user TEXT,
    hash TEXT
);
DROP TRIGGER IF EXISTS audit_no_update;
DROP TRIGGER IF EXISTS audit_no_delete;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
INSERT OR IGNORE INTO meta(key, value) VALUES ('embeddings_gen', '0');
CREATE TABLE IF NOT EXISTS embedding_changes (
    gen INTEGER PRIMARY KEY,
    face_id INTEGER NOT NULL,
    engine TEXT NOT NULL,
    op TEXT NOT NULL
);
DROP TRIGGER IF EXISTS embeddings_gen_insert;
DROP TRIGGER IF EXISTS embeddings_gen_delete;
DROP TRIGGER IF EXISTS embeddings_gen_update;
CREATE TRIGGER IF NOT EXISTS embeddings_log_insert AFTER INSERT ON embeddings
BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'embeddings_gen';
    INSERT INTO embedding_changes(gen, face_id, engine, op)
    VALUES ((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'embeddings_gen'), NEW.face_id, NEW.engine, 'add');
END;
CREATE TRIGGER IF NOT EXISTS embeddings_log_delete AFTER DELETE ON embeddings
BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'embeddings_gen';
    INSERT INTO embedding_changes(gen, face_id, engine, op)
    VALUES ((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'embeddings_gen'), OLD.face_id, OLD.engine, 'del');
END;
CREATE TRIGGER IF NOT EXISTS embeddings_log_update AFTER UPDATE ON embeddings
BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'embeddings_gen';
    INSERT INTO embedding_changes(gen, face_id, engine, op)
    VALUES ((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'embeddings_gen'), OLD.face_id, OLD.engine, 'upd');
    INSERT INTO embedding_changes(gen, face_id, engine, op)
    SELECT CAST(value AS INTEGER) + 1, NEW.face_id, NEW.engine, 'upd' FROM meta
    WHERE key = 'embeddings_gen' AND (NEW.face_id != OLD.face_id OR NEW.engine != OLD.engine);
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'embeddings_gen'
    AND (NEW.face_id != OLD.face_id OR NEW.engine != OLD.engine);
END;
"""

#: The triggers this schema creates (any other trigger on the audit or meta table is foreign and dropped at open).
OWN_TRIGGERS = frozenset({"audit_no_update", "audit_no_delete", "embeddings_log_insert", "embeddings_log_delete",
                          "embeddings_log_update"})

#: Tables whose ids became ``AUTOINCREMENT`` in version 2 (rebuilt by the v1 -> v2 migration).
AUTOINCREMENT_TABLES = ("persons", "images", "faces")


def table_body(table: str) -> str:
    """The column definitions of ``table`` in :data:`SCHEMA` (what goes between the parentheses)."""

    m = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", SCHEMA, re.DOTALL)
    if m is None:
        raise KeyError(table)
    return m.group(1)
