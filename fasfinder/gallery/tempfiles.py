"""Stale temporary files of exports: ``<name>.<pid>.tmp`` left behind when an export was killed.

An export writes ``<out>.<pid>.tmp`` beside its target and renames it at the end, so a kill
(SIGKILL, power loss) leaves the temporary archive -- owner-only, but a full copy of the exported
faces. The next export into the same folder removes such files when the process that wrote them
is gone, they belong to this user and they hold a zip (or nothing yet); other files are left alone.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_TEMP = re.compile(r"^.+\.(\d+)\.tmp$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # someone else's process, or we cannot tell: keep the file
    return True


def _ours_and_zip(path: Path) -> bool:
    try:
        st = path.lstat()
        if not path.is_file() or path.is_symlink() or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            return False
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head in (b"", b"PK\x03\x04", b"PK\x05\x06")


def clean_stale_exports(folder: str | os.PathLike) -> list[str]:
    """Remove the stale export temporaries in ``folder``; the names removed."""

    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None or _alive(int(m.group(1))):
            continue
        path = Path(entry.path)
        if _ours_and_zip(path):
            try:
                path.unlink()
                removed.append(entry.name)
            except OSError:
                pass
    return removed
