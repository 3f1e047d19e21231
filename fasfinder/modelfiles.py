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
from functools import cache
from pathlib import Path

from .errors import ModelError, ModelIntegrityError


def repo_root() -> Path:
    """The folder holding ``models/``: the source tree, or the PyInstaller bundle."""

    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle)
    return Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    """``FASFINDER_MODELS_DIR``, else ``models/`` of the source tree or bundle, else the installed package's copy.

    ``pip install .`` installs ``models/`` as ``fasfinder/models`` (see pyproject.toml)."""

    override = os.environ.get("FASFINDER_MODELS_DIR")
    if override:
        return Path(override)
    installed = Path(__file__).resolve().parent / "models"
    source = repo_root() / "models"
    return source if source.is_dir() or not installed.is_dir() else installed


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


@cache
def dlib_file(file_name: str) -> Path:
    """A verified file of dlib's weights, checked against ``models/dlib-models.card.json``."""

    return card_file(load_card("dlib-models"), file_name)


# --------------------------------------------------------------------------------------------
# Writing model cards (every trainer's export goes through here)
# --------------------------------------------------------------------------------------------
def file_entry(name: str, path: Path) -> dict:
    """A card's ``files`` entry for a file written next to the card: name, file name, sha256."""

    path = Path(path)
    return {"name": name, "path": path.name, "sha256": sha256_file(path)}


def write_card(card: dict, directory: Path | None = None, *, indent: int = 1, newline: bool = True) -> Path:
    """Write ``<directory>/<card["name"]>.card.json`` (default: :func:`models_dir`) and return its path.

    JSON with ``indent`` spaces (and a final newline unless ``newline`` is False, the layout of the
    cards written before this helper existed, so that re-exporting them changes no byte). Written to
    a temporary file first and then renamed, so a reader never sees half a card.
    """

    directory = Path(directory) if directory is not None else models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{card['name']}.card.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=indent) + ("\n" if newline else ""), encoding="utf-8")
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------------------------
# Loaded models, once per process
# --------------------------------------------------------------------------------------------
_models: dict = {}
_model_locks: dict = {}
_models_lock = threading.Lock()


def cached_model(key: tuple, loader):
    """``loader()``'s result, loaded once per process for ``key`` and shared by every caller.

    ``key``: a tuple whose first element names the kind of model (``("liveness", card name)``,
    ``("explainer", layer)``); :func:`forget_cached_models` drops a kind.

    Thread-safe: concurrent first calls for one key load it once (the others wait); loads of
    different keys run in parallel, and a loader may itself call :func:`cached_model` for another
    key. A loader that raises caches nothing, so the next call tries again (and raises again
    while the cause stays, e.g. a missing or tampered weights file).
    """

    with _models_lock:
        if key in _models:
            return _models[key]
        lock = _model_locks.setdefault(key, threading.Lock())
    with lock:
        with _models_lock:
            if key in _models:
                return _models[key]
        value = loader()
        with _models_lock:
            _models[key] = value
        return value


def forget_cached_models(kind: str | None = None) -> None:
    """Drop the cached models of one ``kind`` (the first element of their keys), or all of them
    (tests; a process that swapped its model folder). Holders of a model keep their reference."""

    with _models_lock:
        for key in [k for k in _models if kind is None or k[0] == kind]:
            del _models[key]
