"""Find model files and check them against their model cards.

Model cards live in the top-level ``models/`` folder as ``<name>.card.json``. A card lists the
files a model needs (``files: [{"name", "path" | "package_file", "sha256"}]``), where they came
from, how the model was made and what it scored. Before a file is used its sha256 is checked
against the card (once per process and file), so a swapped or damaged weight file is refused
with :class:`~fasfinder.errors.ModelIntegrityError`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import threading
from functools import lru_cache
from pathlib import Path

from .errors import ModelError, ModelIntegrityError


def repo_root() -> Path:
    """The folder holding ``models/``: the source tree, or the PyInstaller bundle."""

    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle)
    return Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    override = os.environ.get("FASFINDER_MODELS_DIR")
    return Path(override) if override else repo_root() / "models"


def face_recognition_models_dir() -> Path:
    """Folder of the dlib weight files shipped by the PyPI package ``face_recognition_models``.

    Located with ``importlib.util.find_spec`` so that the package's ``pkg_resources`` import
    never runs.
    """

    override = os.environ.get("FASFINDER_DLIB_MODELS_DIR")
    if override:
        return Path(override)
    bundled = repo_root() / "face_recognition_models" / "models"
    if bundled.is_dir():
        return bundled
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the package face_recognition_models is not installed (pip install face_recognition_models)")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def load_card(name: str) -> dict:
    path = models_dir() / f"{name}.card.json"
    if not path.is_file():
        raise ModelError(f"model card {path} not found", code="model_missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"model card {path} is unreadable: {exc}") from exc


def list_cards() -> list[dict]:
    cards = []
    for path in sorted(models_dir().glob("*.card.json")):
        try:
            cards.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue
    return cards


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


_verified: set[tuple[str, str]] = set()
_verify_lock = threading.Lock()


def verified_path(path: Path, expected_sha256: str) -> Path:
    """Return ``path`` after checking it exists and its sha256 matches (cached per process)."""

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} is missing")
    key = (str(path), expected_sha256)
    with _verify_lock:
        if key in _verified:
            return path
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise ModelIntegrityError(
                f"model file {path} fails its integrity check (sha256 {actual[:12]}..., card says {expected_sha256[:12]}...)"
            )
        _verified.add(key)
    return path


def card_file(card: dict, file_name: str) -> Path:
    """Resolve and verify one file named in a card's ``files`` list."""

    for entry in card.get("files", []):
        if entry.get("name") == file_name:
            if "package_file" in entry:
                path = face_recognition_models_dir() / entry["package_file"]
            else:
                path = models_dir() / entry["path"]
            return verified_path(path, entry["sha256"])
    raise ModelError(f"model card {card.get('name')} names no file {file_name!r}")


@lru_cache(maxsize=None)
def dlib_file(file_name: str) -> Path:
    """A verified file of dlib's weights, checked against ``models/dlib-models.card.json``."""

    return card_file(load_card("dlib-models"), file_name)
