"""Shared set-up of the casework tests: a PNG writer and a small real gallery of two astronaut persons."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from fasfinder.settings import Settings


def save_png(rgb, path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb)).save(path)
    return path


def two_person_gallery(root: Path, case_id: str | None = None):
    """(settings, LocalHost, astronaut) of a gallery at ``root`` holding "Eileen Collins" (the astronaut)
    and "Mirror Case" (her mirror image), enrolled with the real models (liveness off)."""

    from skimage import data

    from fasfinder.host import LocalHost

    astro = data.astronaut()
    settings = replace(Settings(gallery=str(root / "gallery.db")), liveness=False)
    host = LocalHost(settings)
    for label, rgb in (("Eileen Collins", astro), ("Mirror Case", astro[:, ::-1])):
        res = host.call("enroll", [str(save_png(rgb, root / "enroll" / f"{label}.png"))], label=label, case_id=case_id)
        assert all(r.error is None for r in res), [r.error for r in res]
    return settings, host, astro


@contextmanager
def main_window(qtbot, settings, host, show: bool = True):
    """A MainWindow on ``host`` (no demo offer, default layout; shown unless ``show`` is False, for a
    test that places it first); its workers stopped and the window closed afterwards."""

    from ui.main_window import MainWindow

    win = MainWindow(settings, host, offer_demo=False, restore_layout=False)
    qtbot.addWidget(win)
    if show:
        win.show()
    try:
        yield win
    finally:
        win.session.pool.cancel_all()
        win.session.pool.wait_idle(timeout_ms=60_000, settle_ms=0)
        win.close()


LFW_IMAGES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lfw" / "images_deepfunneled"


def lfw_photos(name: str) -> list[Path]:
    """The LFW photos of one person (evaluation data: only enrolled and searched, never fitted on)."""

    return sorted((LFW_IMAGES / name).glob("*.jpg"))


def lfw_gallery(root: Path, persons: dict[str, str], per_person: int, metadata: dict[str, dict] | None = None):
    """(settings, LocalHost) of a gallery at ``root`` holding ``per_person`` LFW photos of each person
    (name -> case id; labels with spaces), enrolled with the real models (liveness off); skips the
    test when ../shared/data/lfw is absent."""

    import pytest

    from fasfinder.host import LocalHost

    if not LFW_IMAGES.is_dir():
        pytest.skip("../shared/data/lfw is absent (real faces of a few LFW persons are needed)")
    settings = replace(Settings(gallery=str(root / "gallery.db")), liveness=False)
    host = LocalHost(settings)
    for name, case in persons.items():
        res = host.call("enroll", lfw_photos(name)[:per_person], label=name.replace("_", " "), case_id=case,
                        metadata=(metadata or {}).get(name))
        assert all(r.error is None for r in res), [r.error for r in res]
    return settings, host


def pdf_text(path) -> str:
    import unicodedata

    from pypdf import PdfReader

    text = "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
    return unicodedata.normalize("NFKC", text)  # the PDF's fonts write "fi" as one ligature
