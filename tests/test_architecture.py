"""Layering rules: the core never imports Qt; the UI never touches storage or models directly."""

from __future__ import annotations

import shutil
import subprocess
import sys

from .conftest import REPO


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports", path=str(REPO / ".venv" / "bin")) or shutil.which("lint-imports")
    assert exe, "import-linter is a test dependency (requirements-dev.txt)"
    proc = subprocess.run([exe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 2 kept, 0 broken" in proc.stdout


def test_core_import_pulls_in_no_qt():
    code = ("import sys, fasfinder.service, fasfinder.cli, fasfinder.gallery, fasfinder.evaluation.lfw; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'ui')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
