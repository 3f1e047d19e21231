"""The CLI of the office server: ``server init | add-user | add-case`` and ``sync``, against a real PostgreSQL."""

from __future__ import annotations

import json

from fasfinder.cli import main
from fasfinder.gallery import Gallery

from .server_helpers import enroll


def _json(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_office_setup_and_sync_from_the_command_line(pg_server, tmp_path, capsys, monkeypatch):
    pg = pg_server
    import psycopg

    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute('CREATE DATABASE "clioffice"')
    admin = pg.url(db="clioffice")
    assert main(["server", "init", "--server", admin, "--json"]) == 0
    assert _json(capsys)[0]["schema_version"] == 1
    assert main(["server", "add-user", "carol", "--role", "caseworker", "--server", admin, "--json"]) == 0
    assert main(["server", "add-user", "dan", "--role", "admin", "--server", admin, "--json"]) == 0
    assert main(["server", "add-case", "K1", "--assign", "carol", "--server", pg.url("dan", "clioffice"),
                 "--json"]) == 0
    capsys.readouterr()
    db = tmp_path / "g.db"
    with Gallery(db) as g:
        enroll(g, "Kim", "kim-1", case_id=None)  # no case: --case gives it one at push
    assert main(["sync", "--db", str(db), "--json", "--status"]) == 0
    assert _json(capsys)[0]["attached"] is False
    url = pg.url("carol", "clioffice")
    assert main(["sync", "--db", str(db), "--server", url, "--json"]) == 1  # no case for Kim: typed error
    assert _json(capsys)[0]["error"]["code"] == "bad_argument"
    assert main(["sync", "--db", str(db), "--server", url, "--case", "K1", "--json"]) == 0
    out = _json(capsys)[0]
    assert out["pushed"] == 2 and out["conflicts"] == []
    assert main(["sync", "--db", str(db), "--json", "--status"]) == 0
    st = _json(capsys)[0]
    assert st["pending"] == 0 and st["last_sync"] and st["server"] == url
    with Gallery(db) as g:
        assert g.persons()[0].case_id == "K1"
    # the password never goes in the URL, and an unreachable server is a typed error
    assert main(["sync", "--db", str(db), "--server", "postgresql://carol:pw@/x", "--json"]) == 1
    assert _json(capsys)[0]["error"]["code"] == "bad_argument"
    bad = f"postgresql://carol@/clioffice?host={tmp_path}&port=1"
    assert main(["sync", "--db", str(db), "--server", bad, "--json"]) == 1
    assert _json(capsys)[0]["error"]["code"] == "server_unavailable"
