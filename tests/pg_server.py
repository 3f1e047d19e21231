"""A real, throw-away PostgreSQL server for the tests (never a mock).

``initdb`` in a fresh temporary folder, ``postgres`` listening only on a unix socket in that folder
(no TCP port), trust authentication for local connections, stopped (``pg_ctl stop -m immediate``)
and deleted at the end. PostgreSQL refuses to run as root, so when the tests run as root (CI) the
folder is given to the unprivileged ``nobody`` account and the server runs as it. The Debian package
``postgresql`` provides the binaries (scripts/bootstrap.sh installs it); without them the tests skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "pgadmin"
PASSWORD_USER = "pat"  # authenticates with a password (the other test accounts: trust)


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PgServer:
    def __init__(self, port: int = 54329):
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql; see scripts/bootstrap.sh)")
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="fasfinder-pg-"))
        self.data = self.root / "data"
        self.account = None
        if os.geteuid() == 0:
            self.account = pwd.getpwnam("nobody")
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
        os.chmod(self.root, 0o755)  # the client (root or the test user) reaches the socket

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        def drop():
            if self.account is not None:
                os.setgid(self.account.pw_gid)
                os.setuid(self.account.pw_uid)

        env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
        return subprocess.run(args, preexec_fn=drop, env=env, cwd=self.root, capture_output=True, text=True,
                              check=check, timeout=120)

    def start(self) -> PgServer:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                  "--no-sync")
        hba = self.data / "pg_hba.conf"  # the account PASSWORD_USER must give its password (scram), the rest: trust
        hba.write_text(f"local all {PASSWORD_USER} scram-sha-256\n" + hba.read_text())
        opts = f"-k {self.root} -c listen_addresses='' -p {self.port} -c fsync=off -c max_connections=60"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-o", opts, "-w",
                  "start")
        self._run(str(self.bin / "createdb"), "-h", str(self.root), "-p", str(self.port), "-U", SUPERUSER,
                  "fasfinder")
        return self

    def url(self, user: str = SUPERUSER, db: str = "fasfinder") -> str:
        return f"postgresql://{user}@/{db}?host={self.root}&port={self.port}"

    def office(self, db: str) -> str:
        """A new database ``db`` set up by ``server init``, with the users alice and bob (case workers),
        vic (viewer) and ada (admin); cases C1 (alice, bob, vic) and C2 (bob). The admin URL is returned."""

        import psycopg

        from fasfinder.server import schema

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        with psycopg.connect(self.url(db=db), autocommit=True) as conn:
            schema.init_server(conn)
            for name, role in (("alice", "caseworker"), ("bob", "caseworker"), ("vic", "viewer"), ("ada", "admin")):
                schema.add_user(conn, name, role)
        with psycopg.connect(self.url("ada", db), autocommit=True) as conn:
            schema.add_case(conn, "C1", assign=["alice", "bob", "vic"])
            schema.add_case(conn, "C2", assign=["bob"])
        return self.url("ada", db)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)

    def restart(self) -> None:
        opts = f"-k {self.root} -c listen_addresses='' -p {self.port} -c fsync=off -c max_connections=60"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-o", opts, "-w",
                  "start")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
