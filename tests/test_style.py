"""The code passes the project's ruff configuration (pyproject.toml [tool.ruff])."""

from __future__ import annotations

import shutil
import subprocess

from .conftest import REPO


def test_ruff_passes():
    exe = shutil.which("ruff", path=str(REPO / ".venv" / "bin")) or shutil.which("ruff")
    assert exe, "ruff is a test dependency (requirements-dev.txt)"
    proc = subprocess.run([exe, "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
