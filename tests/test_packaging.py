"""Packaging metadata: `pip install .` gives a complete, working install (not just the top packages)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from .conftest import REPO


def _declared() -> tuple[list[str], dict[str, str]]:
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return cfg["packages"], cfg.get("package-dir", {})


def test_every_source_package_is_declared():
    packages, _ = _declared()
    found = sorted(".".join(p.parent.relative_to(REPO).parts) for top in ("fasfinder", "ui")
                   for p in (REPO / top).rglob("__init__.py"))
    missing = sorted(set(found) - set(packages))
    assert not missing, f"pyproject.toml [tool.setuptools] packages lacks {missing}: `pip install .` would drop them"
    stale = sorted(p for p in packages if p not in found and p not in _declared()[1])
    assert not stale, f"pyproject.toml declares packages that do not exist: {stale}"


@pytest.mark.slow
def test_built_wheel_installs_and_runs_outside_the_source_tree(tmp_path):
    # build from a copy: setuptools writes build/ and *.egg-info into the folder it builds
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "out", "runs", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".cache", ".build-venv"))
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(src)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("fasfinder-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for must in ("fasfinder/service.py", "fasfinder/gallery/store.py", "fasfinder/engines/dlib_torch.py",
                 "fasfinder/models/dlib-resnet-torch.card.json", "ui/docks/matches.py", "ui/resources/style.qss"):
        assert must in names, f"{must} missing from the wheel"
    site = tmp_path / "site"
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    # run from an empty folder with only the installed copy on the path (dependencies from this venv)
    code = f"import sys; sys.path.insert(0, {str(site)!r}); from fasfinder.cli import main; sys.exit(main(['engines', '--json']))"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["name"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert rows["dlib-resnet-torch"]["error"] is None and rows["dlib-resnet-torch"]["dim"] == 128
    # an engine whose weights live in models/: loaded (and sha256-checked) from the installed fasfinder/models
    assert rows["shufflenet-heatmap"]["error"] is None, rows["shufflenet-heatmap"]
    origin = subprocess.run([sys.executable, "-c", code.replace("from fasfinder.cli import main; sys.exit(main(['engines', '--json']))",
                                                                "import fasfinder.modelfiles as m; print(m.models_dir())")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert origin.stdout.strip() == str(site / "fasfinder" / "models"), origin.stdout + origin.stderr


def _pins(path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name = line.split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip().lower().replace("_", "-")
            pins[name] = line
    return pins


def test_slim_requirements_pin_what_the_development_environment_pins():
    dev, slim = _pins(REPO / "requirements.txt"), _pins(REPO / "packaging" / "requirements-slim.txt")
    assert slim.pop("torch").endswith("+cpu"), "the slim bundle's torch must be a CPU build"
    assert "torchvision" not in slim and "grad-cam" not in slim  # neither is needed at run time (tv_arch, gradcam)
    dev.pop("torch"), dev.pop("torchvision")
    assert slim == dev, "packaging/requirements-slim.txt and requirements.txt disagree beyond torch/torchvision"
