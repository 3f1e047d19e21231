"""Layering rules: the core never imports Qt, keeps its layers and has no cycles; the UI uses only the service API."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib

from .conftest import REPO


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports", path=str(REPO / ".venv" / "bin")) or shutil.which("lint-imports")
    assert exe, "import-linter is a test dependency (requirements-dev.txt)"
    proc = subprocess.run([exe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert {c["type"] for c in contracts} >= {"forbidden", "layers", "acyclic_siblings"}
    assert f"Contracts: {len(contracts)} kept, 0 broken" in proc.stdout, proc.stdout


def test_core_import_pulls_in_no_qt():
    code = ("import sys, fasfinder.service, fasfinder.cli, fasfinder.gallery, fasfinder.evaluation.lfw; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'ui')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


#: What ui/ may import from the core (the import-linter contract lists the modules it may not; this
#: allow-list also catches a core module added later).
UI_MAY_IMPORT = {"fasfinder.service", "fasfinder.host", "fasfinder.operations", "fasfinder.results",
                 "fasfinder.errors", "fasfinder.settings"}


def test_ui_imports_only_the_service_api():
    seen = {}
    for path in (REPO / "ui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] if node.module != "fasfinder" else [f"fasfinder.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.split(".")[0] == "fasfinder":
                    seen.setdefault(name, []).append(path.relative_to(REPO).as_posix())
    assert seen, "ui imports nothing from the core?"
    bad = {m: files for m, files in seen.items() if m not in UI_MAY_IMPORT}
    assert not bad, f"ui imports core modules beyond the service API: {bad}"


def test_no_module_over_500_lines():
    long = {p.relative_to(REPO).as_posix(): n for top in ("fasfinder", "ui") for p in (REPO / top).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"split these by concept (or say in the closing note why each is one concept): {long}"
