"""Roles and row-level security, enforced by the real server itself (never by the client)."""

from __future__ import annotations

import psycopg
import pytest

from fasfinder.errors import ServerForbidden
from fasfinder.gallery import Gallery
from fasfinder.server import replica
from fasfinder.server.connection import ServerConfig, server_error

from .server_helpers import content, enroll, server_content, sync

#: (who, SQL, why it must be refused) -- every forbidden action of docs/results/server.md's table.
FORBIDDEN = [
    ("vic", "INSERT INTO fasfinder.persons(uuid, case_id, label) VALUES ('x1', 'C1', 'X')", "viewer enrolls"),
    ("vic", "UPDATE fasfinder.persons SET label = 'Y'", "viewer edits"),
    ("vic", "INSERT INTO fasfinder.decisions(uuid, case_id, verdict) VALUES ('d1', 'C1', 'match')", "viewer decides"),
    ("alice", "INSERT INTO fasfinder.persons(uuid, case_id, label) VALUES ('x2', 'C2', 'X')",
     "case worker enrolls in a case not assigned to them"),
    ("alice", "DELETE FROM fasfinder.persons", "case worker deletes rows (deletes are tombstones)"),
    ("alice", "INSERT INTO fasfinder.cases(case_id) VALUES ('C9')", "case worker creates a case"),
    ("alice", "INSERT INTO fasfinder.assignments VALUES ('C2', 'alice')", "case worker assigns themself"),
    ("alice", "SELECT * FROM fasfinder.audit", "case worker reads the audit"),
    ("alice", "INSERT INTO fasfinder.audit(action, db_user) VALUES ('x', 'bob')", "audit row in another user's name"),
    ("alice", "UPDATE fasfinder.audit SET action = 'x'", "UPDATE on audit (case worker)"),
    ("ada", "UPDATE fasfinder.audit SET action = 'x'", "UPDATE on audit (admin)"),
    ("ada", "DELETE FROM fasfinder.audit", "DELETE on audit (admin)"),
    ("pgadmin", "SET ROLE fasfinder_owner; UPDATE fasfinder.audit SET action = 'x'", "UPDATE on audit (table owner)"),
    ("pgadmin", "SET ROLE fasfinder_owner; TRUNCATE fasfinder.audit", "TRUNCATE of audit (table owner)"),
    ("pgadmin", "UPDATE fasfinder.audit SET action = 'x'", "UPDATE on audit (superuser)"),
    ("pgadmin", "DELETE FROM fasfinder.audit", "DELETE on audit (superuser)"),
]


@pytest.fixture
def seeded(office, tmp_path):
    pg, db = office
    a = Gallery(tmp_path / "a.db")
    enroll(a, "Ann", "ann-1")
    enroll(a, "Bea", "bea-1", case_id="C2")
    sync(a, pg, db, "bob")  # bob works on C1 and C2
    a.close()
    return pg, db


@pytest.mark.parametrize("who,sql,why", FORBIDDEN, ids=[f[2] for f in FORBIDDEN])
def test_forbidden_actions_are_refused_by_the_server(seeded, who, sql, why):
    pg, db = seeded
    with psycopg.connect(pg.url(who, db)) as conn:
        before = conn.execute("SELECT count(*) FROM fasfinder.persons").fetchone()[0]
        with pytest.raises(psycopg.Error) as err:
            with conn.transaction():
                for stmt in sql.split("; "):
                    conn.execute(stmt)
        typed = server_error(err.value, why)
        print(f"| {why} | `{who}` | {err.value.sqlstate} | {str(err.value).splitlines()[0]} | {typed.code} |")
        assert isinstance(typed, ServerForbidden) and typed.code == "server_forbidden"
        assert conn.execute("SELECT count(*) FROM fasfinder.persons").fetchone()[0] == before


def test_audit_records_the_database_user_and_survives(seeded):
    pg, db = seeded
    with psycopg.connect(pg.url("ada", db)) as conn:
        rows = conn.execute("SELECT db_user, action FROM fasfinder.audit ORDER BY id").fetchall()
    assert ("bob", "persons.insert") in rows and ("bob", "images.insert") in rows
    assert {u for u, _ in rows} == {"bob"}


def test_viewer_enrolling_is_refused_with_a_typed_error(seeded, tmp_path):
    pg, db = seeded
    v = Gallery(tmp_path / "v.db")
    sync(v, pg, db, "vic")
    assert {r.label for r in v.persons()} == {"Ann"}  # C1 only: vic is not assigned to C2
    enroll(v, "Vic's guess", "vic-1")
    with pytest.raises(ServerForbidden) as err:
        sync(v, pg, db, "vic")
    assert err.value.code == "server_forbidden" and "permission denied" in err.value.message
    assert replica.status(v)["pending"] == 2  # kept locally, never half-pushed
    assert "Vic's guess" not in {r[0] for r in server_content(pg, db)}


def test_replica_holds_only_the_assigned_cases(seeded, tmp_path):
    pg, db = seeded
    a = Gallery(tmp_path / "alice.db")
    sync(a, pg, db, "alice")
    assert {r[1] for r in content(a)} == {"C1"}
    with psycopg.connect(pg.url("ada", db), autocommit=True) as conn:  # the admin takes alice off C1
        conn.execute("DELETE FROM fasfinder.assignments WHERE username = 'alice'")
    report = sync(a, pg, db, "alice")
    assert report.removed_persons == 1 and content(a) == set()


def test_password_comes_from_an_owner_only_file_never_the_url(tmp_path):
    from fasfinder.errors import BadArgument

    with pytest.raises(BadArgument):
        ServerConfig("postgresql://alice:secret@localhost/db")
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    pw.chmod(0o644)
    with pytest.raises(BadArgument, match="owner only"):
        ServerConfig("postgresql://alice@localhost/db", password_file=str(pw)).password()
    pw.chmod(0o600)
    cfg = ServerConfig("postgresql://alice@localhost/db", password_file=str(pw), tls={"sslmode": "verify-full"})
    assert cfg.password() == "s3cret" and "s3cret" not in cfg.describe() and "s3cret" not in repr(cfg)
    with pytest.raises(BadArgument):
        ServerConfig("postgresql://alice@localhost/db", tls={"sslbogus": "1"})


def test_password_from_env_or_file_is_used_and_never_stored_or_logged(office, tmp_path, monkeypatch, caplog):
    import logging

    from fasfinder.errors import ServerError
    from fasfinder.server import schema

    from .pg_server import PASSWORD_USER

    pg, db = office
    secret = "pw-" + "x7Kq9-not-in-logs"
    with psycopg.connect(pg.url(db=db), autocommit=True) as conn:
        schema.add_user(conn, PASSWORD_USER, "caseworker", password=secret)
        conn.execute("INSERT INTO fasfinder.assignments VALUES ('C1', %s)", (PASSWORD_USER,))
    url = pg.url(PASSWORD_USER, db)
    g = Gallery(tmp_path / "p.db")
    enroll(g, "Pia", "pia-1")
    monkeypatch.delenv("FASFINDER_SERVER_PASSWORD", raising=False)
    with pytest.raises(ServerError):  # no password: the server refuses the login
        sync(g, pg, db, PASSWORD_USER)
    monkeypatch.setenv("FASFINDER_SERVER_PASSWORD", "wrong")
    with pytest.raises(ServerError) as err:
        sync(g, pg, db, PASSWORD_USER)
    assert "wrong" not in err.value.message
    monkeypatch.setenv("FASFINDER_SERVER_PASSWORD", secret)
    caplog.set_level(logging.DEBUG)
    sync(g, pg, db, PASSWORD_USER)  # from the environment
    monkeypatch.delenv("FASFINDER_SERVER_PASSWORD")
    pw = tmp_path / "pw"
    pw.write_text(secret + "\n")
    pw.chmod(0o600)
    enroll(g, "Pia", "pia-2")
    from fasfinder.server.sync import Sync

    Sync(g, ServerConfig(url, password_file=str(pw))).run()  # from the owner-only file
    assert {r[2] for r in server_content(pg, db)} == {r[2] for r in content(g)} and len(content(g)) == 2
    g.close()
    assert secret not in caplog.text
    for f in tmp_path.glob("p.db*"):
        assert secret.encode() not in f.read_bytes(), f  # not in the gallery, its WAL or its indexes
