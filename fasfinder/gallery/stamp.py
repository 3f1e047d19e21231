"""Who and when: the timestamp and the user name written on gallery rows (a leaf module, stdlib only)."""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds (``2024-05-01T12:00:00.000+00:00``)."""

    return datetime.now(UTC).isoformat(timespec="milliseconds")


def current_user() -> str:
    """The login name of this process's user (``$USER`` / ``$USERNAME`` / ``unknown`` as fallbacks)."""

    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):  # no passwd entry / no pwd module
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
