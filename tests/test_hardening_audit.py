"""Hardening (issue 14, findings 10 and 11): the hash-chained audit log and its verification
(``Gallery.verify_audit``, the ``audit_verify`` operation, ``audit --verify``), the OS account as
"who", the v2 -> v3 migration, query history retention, owner-only explanation files, and no
export temporaries left behind by a killed export. Synthetic faces through ``Gallery.add_image``."""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import stat
import subprocess
import sys

import numpy as np
import pytest

from fasfinder.gallery import Gallery
from fasfinder.gallery.schema import SCHEMA, SCHEMA_VERSION

from .conftest import REPO
from .gallery_fakes import RGB, fake_face

ENGINE = "test-vec"
DIM = 16


def _face():
    return fake_face()


def _add(g, i):
    v = np.random.default_rng(i).standard_normal((1, DIM)).astype(np.float32)
    v /= np.linalg.norm(v)
    return g.add_image(label=f"person{i}", path=f"img{i}.png", sha256=f"sha{i}", width=64, height=64, rgb=RGB,
                       faces=[_face()], embeddings={ENGINE: v})


@pytest.fixture
def logged(tmp_path):
    """A gallery with at least 6 audit rows (two enrolments, a search, a setting, ...), closed: tamper with it raw."""

    db = tmp_path / "g.db"
    with Gallery(db) as g:
        _add(g, 1)
        _add(g, 2)
        g.search(ENGINE, np.ones((1, DIM), np.float32) / 4.0, k=2)
        g.set_exact_max(100)
        g.audit("custom", {"n": 1})
        g.audit("custom", {"n": 2})
        assert len(g.audit_log()) >= 6
    return db


def _n(db) -> int:
    c = sqlite3.connect(str(db))
    try:
        return c.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    finally:
        c.close()


def _raw(db, *sql):
    """Change the file as an attacker with sqlite3 would: the append-only triggers dropped first."""

    c = sqlite3.connect(str(db))
    c.execute("DROP TRIGGER IF EXISTS audit_no_update")
    c.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    for s in sql:
        c.execute(s)
    c.commit()
    c.close()


def _verify(db):
    with Gallery(db) as g:
        return g.verify_audit()


def test_rows_are_chained_and_verify_ok(logged):
    n = _n(logged)
    rep = _verify(logged)
    assert rep["ok"] and rep["problem"] is None and rep["first_broken_id"] is None
    assert rep["rows"] == rep["recorded_rows"] == n
    with Gallery(logged) as g:
        rows = g.audit_log()
        hashes = [r["hash"] for r in rows]
        assert all(isinstance(h, str) and len(h) == 64 for h in hashes) and len(set(hashes)) == n
        assert rep["head"] == rows[0]["hash"]
        g.audit("more", {})  # still intact after one more row in a new session
        assert g.verify_audit()["ok"] and g.verify_audit()["rows"] == n + 1


def test_verify_finds_a_deleted_row(logged):
    _raw(logged, "DELETE FROM audit WHERE id = 3")
    rep = _verify(logged)
    assert not rep["ok"] and rep["first_broken_id"] == 4 and "3" in rep["problem"] and "deleted" in rep["problem"]


def test_verify_finds_an_edited_row(logged):
    _raw(logged, "UPDATE audit SET details = '{\"n\": 99}' WHERE id = 5")
    rep = _verify(logged)
    assert not rep["ok"] and rep["first_broken_id"] == 5 and rep["broken_ids"] == [5] and "changed" in rep["problem"]


def test_verify_finds_an_edited_user_even_with_its_hash_recomputed_naively(logged):
    """Rewriting a row's hash to match its new content still breaks the link to the next row."""

    from fasfinder.gallery.chain import row_hash

    c = sqlite3.connect(str(logged))
    c.row_factory = sqlite3.Row
    c.execute("DROP TRIGGER audit_no_update")
    rows = c.execute("SELECT * FROM audit ORDER BY id").fetchall()
    edited = {**dict(rows[1]), "user": "someone-else"}
    c.execute("UPDATE audit SET user = ?, hash = ? WHERE id = 2", (edited["user"], row_hash(rows[0]["hash"], edited)))
    c.commit()
    c.close()
    rep = _verify(logged)
    assert not rep["ok"] and rep["first_broken_id"] == 3


def test_verify_finds_the_last_rows_deleted(logged):
    n = _n(logged)
    _raw(logged, f"DELETE FROM audit WHERE id > {n - 2}")
    rep = _verify(logged)
    assert not rep["ok"] and rep["rows"] == n - 2 and rep["recorded_rows"] == n
    assert rep["first_broken_id"] == n - 1 and "last 2 row(s) were deleted" in rep["problem"]


def test_verify_finds_the_last_row_replaced_by_a_new_one(logged):
    """The last row deleted, then FASFinder writes again (the id is reused): the new row does not chain."""

    n = _n(logged)
    _raw(logged, f"DELETE FROM audit WHERE id = {n}")
    with Gallery(logged) as g:
        g.audit("after", {})
        rep = g.verify_audit()
    assert not rep["ok"] and rep["first_broken_id"] == n


def test_row_inserted_past_fasfinder_is_found(logged):
    n = _n(logged)
    _raw(logged, "INSERT INTO audit(at, user, action, details) VALUES ('2020-01-01', 'x', 'forged', '{}')")
    rep = _verify(logged)
    assert not rep["ok"] and rep["first_broken_id"] == n + 1 and "no hash" in rep["problem"]


def test_crafted_noop_triggers_are_replaced_and_logging_goes_on(logged):
    """A gallery whose append-only triggers do nothing and whose extra trigger swallows every insert:
    at open the real triggers come back, the foreign one is dropped (audited), searches are logged."""

    c = sqlite3.connect(str(logged))
    c.executescript("""
        DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT 1; END;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT 1; END;
        CREATE TRIGGER swallow BEFORE INSERT ON audit BEGIN SELECT RAISE(IGNORE); END;
    """)
    c.close()
    with Gallery(logged) as g:
        g.search(ENGINE, np.ones((1, DIM), np.float32) / 4.0, k=1)
        actions = [r["action"] for r in g.audit_log(2)]
        assert actions == ["search", "audit.foreign_triggers_dropped"]
        assert g.audit_log(2)[1]["details"] == {"triggers": ["swallow"]}
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            g.conn.execute("DELETE FROM audit WHERE id = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            g.conn.execute("UPDATE audit SET user = 'x' WHERE id = 1")
        assert g.verify_audit()["ok"]


def test_who_is_the_os_account_not_user_env(tmp_path, monkeypatch):
    monkeypatch.setenv("USER", "mallory-the-spoofer")
    account = pwd.getpwuid(os.getuid()).pw_name
    with Gallery(tmp_path / "w.db") as g:
        assert g.user == account
        g.audit("x", {})
        (row,) = g.audit_log(1)
        assert row["user"] == account and row["claimed_user"] == "mallory-the-spoofer"
    monkeypatch.setenv("USER", account)
    with Gallery(tmp_path / "w.db") as g:
        g.audit("y", {})
        assert g.audit_log(1)[0]["claimed_user"] is None
        assert g.verify_audit()["ok"]


def _v2_schema() -> str:
    """The SQL of schema version 2: the audit table without claimed_user/hash, triggers created once."""

    old = SCHEMA.replace("    details TEXT NOT NULL DEFAULT '{}',\n    claimed_user TEXT,\n    hash TEXT\n);",
                         "    details TEXT NOT NULL DEFAULT '{}'\n);")
    old = old.replace("DROP TRIGGER IF EXISTS audit_no_update;\nDROP TRIGGER IF EXISTS audit_no_delete;\n", "")
    assert "hash TEXT" not in old
    return old


def test_v2_gallery_opens_and_its_rows_are_chained(tmp_path):
    db = tmp_path / "v2.db"
    raw = sqlite3.connect(str(db))
    raw.executescript(_v2_schema())
    raw.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    for i in range(3):
        raw.execute("INSERT INTO audit(at, user, action, details) VALUES (?, 'old', 'image.enroll', ?)",
                    (f"2024-01-0{i + 1}T00:00:00.000+00:00", json.dumps({"n": i})))
    raw.commit()
    raw.close()
    with Gallery(db) as g:
        assert SCHEMA_VERSION == 3
        assert g.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "3"
        cols = [r[1] for r in g.conn.execute("PRAGMA table_info(audit)")]
        assert "hash" in cols and "claimed_user" in cols
        rep = g.verify_audit()
        assert rep["ok"] and rep["rows"] == 3
        assert [r["details"] for r in reversed(g.audit_log())] == [{"n": 0}, {"n": 1}, {"n": 2}]
        g.audit("new", {})
        assert g.verify_audit()["ok"]
    _raw(db, "DELETE FROM audit WHERE id = 2")  # the migrated rows are protected too
    assert _verify(db)["first_broken_id"] == 3


def test_audit_verify_operation_and_cli(logged):
    from fasfinder.service import OPERATIONS, FasFinder

    assert "audit_verify" in OPERATIONS
    ff = FasFinder(logged)
    try:
        assert ff.audit_verify()["ok"]
    finally:
        ff.close()

    def cli():
        p = subprocess.run([sys.executable, "main.py", "audit", "--verify", "--db", str(logged), "--json"], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        (line,) = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
        return line

    assert cli()["ok"] is True
    _raw(logged, "UPDATE audit SET action = 'nothing' WHERE id = 2")
    rep = cli()
    assert rep["ok"] is False and rep["first_broken_id"] == 2 and rep["problem"]


# -- finding 11: retention, explanation files, export temporaries -----------------------------


def _old_query(db, days_ago: float):
    from datetime import UTC, datetime, timedelta

    at = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(timespec="milliseconds")
    c = sqlite3.connect(str(db))
    c.execute("INSERT INTO queries(created_at, user, query_path, query_sha256, engine, results) "
              "VALUES (?, 'u', ?, 'x', 'e', '{}')", (at, f"q{days_ago}.png"))
    c.commit()
    c.close()


def test_history_retention_deletes_old_queries_at_open_and_record(tmp_path):
    from fasfinder.settings import Settings

    assert Settings().history_days == 365
    db = tmp_path / "h.db"
    Gallery(db).close()
    for d in (400, 40, 1):
        _old_query(db, d)
    with Gallery(db) as g:  # no retention: all kept
        assert len(g.history()) == 3
    with Gallery(db, history_days=365) as g:
        assert sorted(q["query_path"] for q in g.history()) == ["q1.png", "q40.png"]
        (row,) = [r for r in g.audit_log() if r["action"] == "query.prune"]
        assert row["details"]["deleted"] == 1 and row["details"]["retention_days"] == 365
        _old_query(db, 500)
        g.record_query(query_path="new.png", query_sha256="s", engine="e", results={"faces": []})
        assert sorted(q["query_path"] for q in g.history()) == ["new.png", "q1.png", "q40.png"]
        assert g.verify_audit()["ok"]
    with Gallery(db, history_days=30) as g:
        assert sorted(q["query_path"] for q in g.history()) == ["new.png", "q1.png"]


def test_service_passes_the_retention_setting(tmp_path):
    from fasfinder.service import FasFinder
    from fasfinder.settings import Settings

    db = tmp_path / "s.db"
    Gallery(db).close()
    _old_query(db, 10)
    ff = FasFinder(db, settings=Settings(gallery=str(db), history_days=5))
    try:
        assert ff.history() == []
    finally:
        ff.close()


def test_explanation_files_are_owner_only(tmp_path):
    from fasfinder.explain_io import ExplanationWriter

    out = tmp_path / "explain" / "q1"
    w = ExplanationWriter(out)
    rgb = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    w._map("face0_match1_query", rgb, np.random.default_rng(1).random((32, 32)))
    w.report({"faces": []})
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    files = sorted(p.name for p in out.iterdir())
    assert files == ["explanation.json", "face0_match1_query.npy", "face0_match1_query.png"]
    assert all(stat.S_IMODE((out / f).stat().st_mode) == 0o600 for f in files)
    # written again over files that were world-readable: tightened
    os.chmod(out / "explanation.json", 0o644)
    ExplanationWriter(out).report({"faces": [1]})
    assert stat.S_IMODE((out / "explanation.json").stat().st_mode) == 0o600


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_killed_export_leaves_no_temp_archive_after_the_next_export(tmp_path):
    """A killed export leaves ``<out>.<pid>.tmp`` (a zip of faces); the next export removes it.
    Files that are not stale export temporaries stay."""

    db = tmp_path / "e.db"
    with Gallery(db) as g:
        _add(g, 1)
        out = tmp_path / "out" / "case.zip"
        out.parent.mkdir()
        stale = out.parent / f"case.zip.{_dead_pid()}.tmp"
        stale.write_bytes(b"PK\x03\x04" + b"\0" * 100)  # what a killed export had written so far
        other_stale = out.parent / f"other.zip.{_dead_pid()}.tmp"
        other_stale.write_bytes(b"")
        live = out.parent / f"case.zip.{os.getppid()}.tmp"  # a running process's export: kept
        live.write_bytes(b"PK\x03\x04")
        not_zip = out.parent / f"notes.{_dead_pid()}.tmp"  # not an archive: kept
        not_zip.write_text("user notes")
        g.export(out)
        left = sorted(p.name for p in out.parent.iterdir())
    assert left == sorted(["case.zip", live.name, not_zip.name])


@pytest.mark.slow
def test_explain_records_its_query_with_the_image_sha256(tmp_path, astronaut_png, one_torch_thread):
    """``explain`` with a gallery shows matches, so it is recorded like a search: a history row and a
    ``query.record`` audit row carrying the image's sha256; its files are owner-only."""

    import hashlib

    from fasfinder.service import FasFinder
    from fasfinder.settings import Settings

    db = tmp_path / "x.db"
    ff = FasFinder(db, settings=Settings(gallery=str(db), liveness=False))
    try:
        assert ff.enroll([astronaut_png], label="eileen")[0].record_id
        out = tmp_path / "explained"
        report = ff.explain_to_folder(str(astronaut_png), str(out), with_matches=True, top_k=1)
        assert report["error"] is None and report["faces"][0]["matches"]
        sha = hashlib.sha256(astronaut_png.read_bytes()).hexdigest()
        (q,) = ff.history()
        assert q["query_sha256"] == sha and q["query_path"] == str(astronaut_png)
        rec = [r for r in ff.audit_log() if r["action"] == "query.record"]
        assert rec and rec[0]["details"]["query_sha256"] == sha
        assert ff.audit_verify()["ok"]
    finally:
        ff.close()
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o600}
