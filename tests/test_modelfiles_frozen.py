"""Model and dlib files are found inside a PyInstaller bundle (sys._MEIPASS), not the source tree."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

from fasfinder import modelfiles
from fasfinder.errors import ModelIntegrityError


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    """A fake one-folder bundle: <bundle>/models/*.card.json and <bundle>/face_recognition_models/models/."""

    for var in ("FASFINDER_MODELS_DIR", "FASFINDER_DLIB_MODELS_DIR"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "models").mkdir()
    dlib_dir = tmp_path / "face_recognition_models" / "models"
    dlib_dir.mkdir(parents=True)
    weights = b"not really dlib weights"
    (dlib_dir / "shape_predictor_5_face_landmarks.dat").write_bytes(weights)
    card = {"name": "dlib-models", "files": [{"name": "shape5", "package_file": "shape_predictor_5_face_landmarks.dat",
                                                "sha256": hashlib.sha256(weights).hexdigest()}]}
    (tmp_path / "models" / "dlib-models.card.json").write_text(json.dumps(card), encoding="utf-8")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    modelfiles.dlib_file.cache_clear()
    yield tmp_path
    modelfiles.dlib_file.cache_clear()


def test_frozen_paths_point_into_the_bundle(bundle):
    assert modelfiles.repo_root() == bundle
    assert modelfiles.models_dir() == bundle / "models"
    assert modelfiles.face_recognition_models_dir() == bundle / "face_recognition_models" / "models"
    assert [c["name"] for c in modelfiles.list_cards()] == ["dlib-models"]


def test_frozen_dlib_file_is_verified_from_the_bundle(bundle):
    path = modelfiles.dlib_file("shape5")
    assert path == bundle / "face_recognition_models" / "models" / "shape_predictor_5_face_landmarks.dat"
    (bundle / "face_recognition_models" / "models" / "shape_predictor_5_face_landmarks.dat").write_bytes(b"swapped")
    modelfiles.dlib_file.cache_clear()
    modelfiles._verified.clear()
    with pytest.raises(ModelIntegrityError):
        modelfiles.dlib_file("shape5")


def test_environment_overrides_win_over_the_bundle(bundle, tmp_path_factory, monkeypatch):
    other = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.setenv("FASFINDER_MODELS_DIR", str(other))
    monkeypatch.setenv("FASFINDER_DLIB_MODELS_DIR", str(other))
    assert modelfiles.models_dir() == other
    assert modelfiles.face_recognition_models_dir() == other


def test_source_tree_without_bundle(monkeypatch):
    monkeypatch.delattr(sys, "_MEIPASS", raising=False)
    monkeypatch.delenv("FASFINDER_MODELS_DIR", raising=False)
    assert (modelfiles.repo_root() / "fasfinder" / "modelfiles.py").is_file()
    assert modelfiles.models_dir() == modelfiles.repo_root() / "models"
