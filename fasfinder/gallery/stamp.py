"""Who and when: the timestamp and the user name written on gallery rows (a leaf module, stdlib only)."""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds (``2024-05-01T12:00:00.000+00:00``)."""

    return datetime.now(UTC).isoformat(timespec="milliseconds")


def current_user() -> str:
    """The OS account this process runs as (its passwd entry for the real uid, not ``$USER``,
    which anyone can set); ``getpass`` where there is no ``pwd`` module (Windows)."""

    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, AttributeError):  # no pwd module / no passwd entry for the uid
        pass
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        return "unknown"


def claimed_user(account: str | None = None) -> str | None:
    """``$USER`` (or ``$LOGNAME`` / ``$USERNAME``) when it differs from the OS account, else None."""

    claimed = os.environ.get("USER") or os.environ.get("LOGNAME") or os.environ.get("USERNAME")
    account = account if account is not None else current_user()
    return claimed if claimed and claimed != account else None
