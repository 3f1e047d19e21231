"""The office server's schema, roles and row-level security (``fasfinder server init``).

Run once (and again after an upgrade: every statement is idempotent) by the database administrator's
account, which needs CREATEROLE (the ``postgres`` account of a fresh installation). The product itself
runs as ordinary login roles, never a superuser:

* ``fasfinder_owner`` (NOLOGIN) owns the schema, tables and functions; nobody logs in as it;
* ``fasfinder_viewer``: reads (searches) the cases assigned to them;
* ``fasfinder_caseworker`` (includes viewer): also enrolls, edits, deletes (tombstones) and decides
  in their cases;
* ``fasfinder_admin`` (includes case worker): every case, manages cases and assignments, reads audit.

Row-level security is FORCEd (it binds the owner too). Rows are never deleted: a delete is a tombstone
(``deleted = true``) so replicas learn about it; every row carries the id of the transaction that last
wrote it (``txid``, a ``xid8``) which is the sync cursor (see sync.py). ``audit`` is append-only for
everyone: triggers refuse UPDATE, DELETE and TRUNCATE whoever runs them (the owner included), and its
``db_user`` is forced to ``session_user`` by the insert policy. Data changes write their audit rows
through triggers, in the same transaction.
"""

from __future__ import annotations

SCHEMA_VERSION = 1
ROLES = ("fasfinder_owner", "fasfinder_viewer", "fasfinder_caseworker", "fasfinder_admin")
ROLE_OF = {"viewer": "fasfinder_viewer", "caseworker": "fasfinder_caseworker", "admin": "fasfinder_admin"}

_ROLES_SQL = "".join(
    f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{r}') THEN CREATE ROLE {r} NOLOGIN; "
    f"END IF; END $$;\n" for r in ROLES
) + """
GRANT fasfinder_viewer TO fasfinder_caseworker;
GRANT fasfinder_caseworker TO fasfinder_admin;
GRANT fasfinder_owner TO CURRENT_USER;
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO fasfinder_owner', current_database()); END $$;
"""

# Statements run as fasfinder_owner (SET ROLE), so it owns every object.
_OBJECTS_SQL = """
CREATE SCHEMA IF NOT EXISTS fasfinder;
SET search_path = fasfinder, pg_catalog;
CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS cases (
    case_id text PRIMARY KEY, title text NOT NULL DEFAULT '', created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS assignments (
    case_id text NOT NULL REFERENCES cases ON DELETE CASCADE, username name NOT NULL,
    PRIMARY KEY (case_id, username));
CREATE TABLE IF NOT EXISTS persons (
    uuid text PRIMARY KEY, case_id text NOT NULL REFERENCES cases, label text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}', deleted boolean NOT NULL DEFAULT false,
    version integer NOT NULL DEFAULT 1, edit_id text, updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by name NOT NULL DEFAULT session_user, txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    UNIQUE (case_id, label));
CREATE INDEX IF NOT EXISTS persons_txid ON persons (txid);
CREATE TABLE IF NOT EXISTS images (
    sha256 text PRIMARY KEY, person_uuid text NOT NULL REFERENCES persons, case_id text NOT NULL,
    path text NOT NULL, width integer NOT NULL, height integer NOT NULL,
    provenance jsonb NOT NULL DEFAULT '{}', liveness jsonb, deleted boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(), created_by name NOT NULL DEFAULT session_user,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id());
CREATE INDEX IF NOT EXISTS images_txid ON images (txid);
CREATE INDEX IF NOT EXISTS images_person ON images (person_uuid);
CREATE TABLE IF NOT EXISTS faces (
    uuid text PRIMARY KEY, image_sha256 text NOT NULL REFERENCES images, case_id text NOT NULL,
    box jsonb NOT NULL, landmarks bytea NOT NULL, detector text NOT NULL, score real NOT NULL,
    crop bytea NOT NULL, crop_box jsonb NOT NULL, deleted boolean NOT NULL DEFAULT false);
CREATE INDEX IF NOT EXISTS faces_image ON faces (image_sha256);
CREATE TABLE IF NOT EXISTS embeddings (
    face_uuid text NOT NULL REFERENCES faces, engine text NOT NULL, case_id text NOT NULL,
    vector bytea NOT NULL, PRIMARY KEY (face_uuid, engine));
CREATE TABLE IF NOT EXISTS decisions (
    uuid text PRIMARY KEY, case_id text NOT NULL REFERENCES cases, person_uuid text,
    query_sha256 text, face_uuid text, verdict text NOT NULL, note text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(), created_by name NOT NULL DEFAULT session_user,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id());
CREATE INDEX IF NOT EXISTS decisions_txid ON decisions (txid);
CREATE TABLE IF NOT EXISTS audit (
    id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(),
    db_user name NOT NULL DEFAULT session_user, action text NOT NULL, case_id text,
    details jsonb NOT NULL DEFAULT '{}');

CREATE OR REPLACE FUNCTION may_see(c text) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = fasfinder, pg_catalog AS $$
    SELECT pg_has_role(session_user, 'fasfinder_admin', 'MEMBER')
        OR EXISTS (SELECT 1 FROM fasfinder.assignments a WHERE a.case_id = c AND a.username = session_user) $$;
CREATE OR REPLACE FUNCTION may_edit(c text) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = fasfinder, pg_catalog AS $$
    SELECT pg_has_role(session_user, 'fasfinder_caseworker', 'MEMBER') AND fasfinder.may_see(c) $$;

-- the case ids a policy compares with, computed once per statement (an InitPlan), not once per row
CREATE OR REPLACE FUNCTION visible_cases() RETURNS text[] LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = fasfinder, pg_catalog AS $$
    SELECT CASE WHEN pg_has_role(session_user, 'fasfinder_admin', 'MEMBER')
                THEN (SELECT coalesce(array_agg(case_id), '{}') FROM fasfinder.cases)
                ELSE (SELECT coalesce(array_agg(case_id), '{}') FROM fasfinder.assignments WHERE username = session_user)
           END $$;
CREATE OR REPLACE FUNCTION editable_cases() RETURNS text[] LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = fasfinder, pg_catalog AS $$
    SELECT CASE WHEN pg_has_role(session_user, 'fasfinder_caseworker', 'MEMBER') THEN fasfinder.visible_cases()
                ELSE '{}'::text[] END $$;

CREATE OR REPLACE FUNCTION stamp_txid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.txid := pg_current_xact_id(); RETURN NEW; END $$;
CREATE OR REPLACE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = '42501'; END $$;
CREATE OR REPLACE FUNCTION audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE row jsonb := to_jsonb(NEW);
BEGIN
    INSERT INTO fasfinder.audit(action, case_id, details)
    VALUES (TG_TABLE_NAME || '.' || lower(TG_OP) || CASE WHEN row->>'deleted' = 'true' THEN '.deleted' ELSE '' END,
            NEW.case_id, jsonb_build_object('key', coalesce(row->>'uuid', row->>'sha256')));
    RETURN NULL;
END $$;
"""

_TRIGGERS_SQL = "".join(
    f"DROP TRIGGER IF EXISTS {t}_txid ON {t};\n"
    f"CREATE TRIGGER {t}_txid BEFORE UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION stamp_txid();\n"
    f"DROP TRIGGER IF EXISTS {t}_audit ON {t};\n"
    f"CREATE TRIGGER {t}_audit AFTER INSERT OR UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION audit_change();\n"
    for t in ("persons", "images", "decisions")
) + """
DROP TRIGGER IF EXISTS audit_no_change ON audit;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
DROP TRIGGER IF EXISTS audit_no_truncate ON audit;
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
"""

_DATA_TABLES = ("persons", "images", "faces", "embeddings", "decisions")

_POLICIES_SQL = "".join(
    f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY; ALTER TABLE {t} FORCE ROW LEVEL SECURITY;\n"
    f"DROP POLICY IF EXISTS {t}_read ON {t};\n"
    f"CREATE POLICY {t}_read ON {t} FOR SELECT USING (case_id = ANY ((SELECT visible_cases())::text[]));\n"
    f"DROP POLICY IF EXISTS {t}_insert ON {t};\n"
    f"CREATE POLICY {t}_insert ON {t} FOR INSERT WITH CHECK (case_id = ANY ((SELECT editable_cases())::text[]));\n"
    f"DROP POLICY IF EXISTS {t}_update ON {t};\n"
    f"CREATE POLICY {t}_update ON {t} FOR UPDATE USING (case_id = ANY ((SELECT editable_cases())::text[]))\n"
    f"    WITH CHECK (case_id = ANY ((SELECT editable_cases())::text[]));\n"
    for t in _DATA_TABLES
) + """
ALTER TABLE audit ENABLE ROW LEVEL SECURITY; ALTER TABLE audit FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS audit_read ON audit;
CREATE POLICY audit_read ON audit FOR SELECT USING (pg_has_role(session_user, 'fasfinder_admin', 'MEMBER'));
DROP POLICY IF EXISTS audit_insert ON audit;
CREATE POLICY audit_insert ON audit FOR INSERT WITH CHECK (db_user = session_user);
ALTER TABLE cases ENABLE ROW LEVEL SECURITY; ALTER TABLE cases FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS cases_read ON cases;
CREATE POLICY cases_read ON cases FOR SELECT USING (may_see(case_id));
DROP POLICY IF EXISTS cases_admin ON cases;
CREATE POLICY cases_admin ON cases FOR ALL USING (pg_has_role(session_user, 'fasfinder_admin', 'MEMBER'));

REVOKE ALL ON ALL TABLES IN SCHEMA fasfinder FROM PUBLIC;
GRANT USAGE ON SCHEMA fasfinder TO fasfinder_viewer;
GRANT SELECT ON cases, persons, images, faces, embeddings, decisions, meta TO fasfinder_viewer;
GRANT INSERT ON audit TO fasfinder_viewer;
GRANT USAGE ON SEQUENCE audit_id_seq TO fasfinder_viewer;
GRANT INSERT, UPDATE ON persons, images, faces, embeddings, decisions TO fasfinder_caseworker;
GRANT SELECT, INSERT, UPDATE, DELETE ON cases, assignments TO fasfinder_admin;
GRANT SELECT ON audit TO fasfinder_admin;
"""


def init_server(conn) -> dict:
    """Create or upgrade the schema, roles and policies on ``conn`` (the administrator's connection)."""

    with conn.transaction():
        conn.execute(_ROLES_SQL)
        conn.execute("SET LOCAL ROLE fasfinder_owner")
        conn.execute(_OBJECTS_SQL)
        conn.execute(_TRIGGERS_SQL)
        conn.execute(_POLICIES_SQL)
        conn.execute("INSERT INTO fasfinder.meta VALUES ('schema_version', %s) "
                     "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (str(SCHEMA_VERSION),))
    return {"schema_version": SCHEMA_VERSION, "roles": list(ROLES)}


def add_user(conn, name: str, role: str, *, password: str | None = None) -> None:
    """Create (or re-role) the login role ``name`` as ``viewer``, ``caseworker`` or ``admin`` (needs CREATEROLE)."""

    from psycopg import sql

    if role not in ROLE_OF:
        from ..errors import BadArgument

        raise BadArgument(f"role must be one of {sorted(ROLE_OF)}, not {role!r}")
    ident = sql.Identifier(name)
    with conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
        if password is not None:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
        for other in ROLE_OF.values():
            conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(other), ident))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(ROLE_OF[role]), ident))


def add_case(conn, case_id: str, *, title: str = "", assign: list[str] = ()) -> None:
    """Create case ``case_id`` (if new) and assign these users to it (an admin's connection)."""

    with conn.transaction():
        conn.execute("INSERT INTO fasfinder.cases(case_id, title) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                     (case_id, title))
        for user in assign:
            conn.execute("INSERT INTO fasfinder.assignments VALUES (%s, %s) ON CONFLICT DO NOTHING", (case_id, user))
