"""File and folder dialogs that open in the folder used last (else the home folder), remembered in ui.ini."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog

from fasfinder.settings import config_dir

KEY = "dialogs/last_folder"


def _settings() -> QSettings:
    return QSettings(str(config_dir() / "ui.ini"), QSettings.Format.IniFormat)


def start_folder() -> str:
    """The folder a dialog opens in: the last one used if it still exists, else the user's home."""

    last = _settings().value(KEY, "")
    return str(last) if last and Path(str(last)).is_dir() else str(Path.home())


def remember(path: str) -> None:
    if path:
        p = Path(path)
        _settings().setValue(KEY, str(p if p.is_dir() else p.parent))


def choose_folder(parent, title: str) -> str:
    folder = QFileDialog.getExistingDirectory(parent, title, start_folder())
    remember(folder)
    return folder


def choose_file(parent, title: str, filters: str) -> str:
    path, _ = QFileDialog.getOpenFileName(parent, title, start_folder(), filters)
    remember(path)
    return path


def choose_save(parent, title: str, name: str, filters: str) -> str:
    path, _ = QFileDialog.getSaveFileName(parent, title, str(Path(start_folder()) / name), filters)
    remember(path)
    return path
