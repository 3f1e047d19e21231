"""Connection settings of the office server and the one place a psycopg connection is opened.

``--server URL`` is a libpq URL (``postgresql://user@host:port/dbname?sslmode=verify-full``). The
password never travels in the URL (refused: it would sit in shell history and settings files); it
comes from ``$FASFINDER_SERVER_PASSWORD`` or from a file only its owner can read (mode 0600 or
stricter; another mode is refused). TLS options (``sslmode``, ``sslrootcert``, ``sslcert``,
``sslkey``, ``sslcrl``) are passed through to libpq unchanged. :meth:`ServerConfig.describe` is the
only text of a config that may be logged or shown: it holds no password.

Every psycopg failure is turned into a typed error here: :class:`ServerUnavailable` when the server
cannot be reached or the connection drops, :class:`ServerForbidden` for a privilege or row-level
security refusal (SQLSTATE 42501), :class:`ServerError` for the rest.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import BadArgument, ServerError, ServerForbidden, ServerUnavailable

PASSWORD_ENV = "FASFINDER_SERVER_PASSWORD"
TLS_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword")


@dataclass
class ServerConfig:
    url: str
    password_file: str | None = None
    tls: dict = field(default_factory=dict)
    connect_timeout: int = 5

    def __post_init__(self):
        if not isinstance(self.url, str) or not self.url.strip():
            raise BadArgument("--server needs a postgresql:// URL")
        parts = urlsplit(self.url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise BadArgument(f"--server: expected a postgresql:// URL, got scheme {parts.scheme!r}")
        if parts.password is not None:
            raise BadArgument(f"--server: put no password in the URL; use ${PASSWORD_ENV} or --password-file")
        unknown = set(self.tls) - set(TLS_OPTIONS)
        if unknown:
            raise BadArgument(f"unknown TLS option(s) {sorted(unknown)}; known: {list(TLS_OPTIONS)}")

    @property
    def user(self) -> str | None:
        return urlsplit(self.url).username

    def describe(self) -> str:
        """The URL without any secret (safe for logs and the status bar)."""

        return self.url

    def password(self) -> str | None:
        """From the password file (owner-only) or the environment; None: libpq's own (.pgpass, peer, trust)."""

        if self.password_file:
            path = Path(self.password_file)
            try:
                st = path.stat()
            except OSError as exc:
                raise BadArgument(f"{path}: cannot read the password file ({type(exc).__name__})") from exc
            if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise BadArgument(f"{path}: the password file must be readable by its owner only (chmod 600)")
            text = path.read_text(encoding="utf-8")
            return text.splitlines()[0] if text.strip() else None
        return os.environ.get(PASSWORD_ENV) or None

    def connect(self, *, autocommit: bool = False):
        """An open psycopg connection (typed error when it cannot be opened)."""

        import psycopg

        kwargs = {k: v for k, v in self.tls.items() if v}
        pw = self.password()
        if pw is not None:
            kwargs["password"] = pw
        try:
            return psycopg.connect(self.url, autocommit=autocommit, connect_timeout=self.connect_timeout,
                                   application_name="fasfinder", **kwargs)
        except psycopg.Error as exc:
            raise server_error(exc, "connect") from exc


def server_error(exc: BaseException, what: str) -> ServerError:
    """The typed error for a psycopg exception (the message names no password: libpq never prints it)."""

    import psycopg

    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate == "42501":
        return ServerForbidden(f"{what}: refused by the server: {detail}")
    if isinstance(exc, psycopg.OperationalError) or (sqlstate or "").startswith(("08", "57P")):
        return ServerUnavailable(f"{what}: server unavailable: {detail}")
    return ServerError(f"{what}: {detail}" + (f" (SQLSTATE {sqlstate})" if sqlstate else ""))
