"""Shared fixtures. Tests run offscreen and never touch the user's real settings or gallery."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FASFINDER_DATA") or REPO.parent / "shared" / "data")  # as fasfinder.evaluation.celeba


def shared_data(sub: str) -> Path:
    """A folder of ../shared/data, or skip the test with the reason."""

    path = SHARED_DATA / sub
    if not path.is_dir():
        pytest.skip(f"real data not available: {path} is absent (CI and the dev machine have ../shared/data)")
    return path


def shared_models(sub: str) -> Path:
    """A folder of ../shared/models (third-party weights that never enter the repository), or skip."""

    path = SHARED_DATA.parent / "models" / sub
    if not path.is_dir():
        pytest.skip(f"shared models not available: {path} is absent (the dev machine has ../shared/models)")
    return path


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    base = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("FASFINDER_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("FASFINDER_DATA_DIR", str(base / "data"))
    yield


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_png(tmp_path_factory, astronaut) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("astro") / "eileen" / "astronaut.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(astronaut).save(path)
    return path


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread (model tests are timed on 2 shared cores), then restore."""

    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

# the real PostgreSQL of the server tests (tests/server_helpers.py, tests/pg_server.py)
from .server_helpers import office, pg_server  # noqa: E402, F401
