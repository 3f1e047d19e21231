"""Issue 17, 150 % scaling (pytest-qt, offscreen): on a 1440x900 screen at QT_SCALE_FACTOR=1.5 the free
area is 960x600 logical pixels. The main window (restored from a geometry saved on a larger screen), the
import dialog and the comparison window must fit it, and every dock of the main window must lie inside
the window (the compact layout: docks scroll instead of growing the window)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtCore import QPoint, QRect

from tests.casework_util import main_window, save_png

SMALL = QRect(0, 0, 960, 600)  # 1440x900 at 150 %


def fits(size, free: QRect = SMALL) -> bool:
    return size.width() <= free.width() and size.height() <= free.height()


@pytest.fixture
def empty(tmp_path):
    from fasfinder.host import LocalHost
    from fasfinder.settings import Settings

    settings = replace(Settings(gallery=str(tmp_path / "g.db")), liveness=False)
    host = LocalHost(settings)
    yield settings, host
    host.close()


def test_main_window_fits_960x600_with_every_dock_inside(qtbot, empty):
    settings, host = empty
    with main_window(qtbot, settings, host, show=False) as win:
        win.resize(1440, 900)  # a geometry saved at 100 % on the same monitor
        win.move(300, 200)
        win.show()
        win.clamp_to_screen(SMALL)
        assert win.compact  # under 1200x760: the compact layout
        qtbot.wait(50)
        frame = win.frameGeometry()
        assert SMALL.contains(frame), frame
        assert fits(win.size()) and fits(win.minimumSizeHint()), win.minimumSizeHint()
        inside = win.rect()
        for dock in win.docks:
            dock.raise_()  # the shown tab of its group
            qtbot.wait(10)
            assert not dock.isFloating()
            top_left = dock.mapTo(win, QPoint(0, 0))
            rect = QRect(top_left, dock.size())
            assert inside.contains(rect), (dock.windowTitle(), rect, inside)
            assert dock.width() >= 120 and dock.height() >= 80, (dock.windowTitle(), dock.size())  # usable


def test_restored_geometry_from_a_larger_screen_fits_960x600(qtbot, empty, monkeypatch):
    """A layout saved at 1440x900 (100 %) and restored at 150 % (960x600 free): shrunk onto the screen."""

    from PySide6.QtGui import QScreen

    from ui.main_window import MainWindow

    settings, host = empty
    first = MainWindow(settings, host, offer_demo=False, restore_layout=False)
    qtbot.addWidget(first)
    first.resize(1440, 900)
    first.save_layout()
    first.session.pool.wait_idle(timeout_ms=60_000, settle_ms=0)
    first.close()
    monkeypatch.setattr(QScreen, "availableGeometry", lambda _self: QRect(SMALL))
    win = MainWindow(settings, host, offer_demo=False, restore_layout=True)
    qtbot.addWidget(win)
    try:
        win.show()
        qtbot.wait(50)
        assert win.compact and fits(win.frameGeometry().size()) and fits(win.minimumSizeHint())
        assert SMALL.contains(win.frameGeometry()), win.frameGeometry()
    finally:
        win.session.pool.cancel_all()
        win.session.pool.wait_idle(timeout_ms=60_000, settle_ms=0)
        win.close()


def test_large_screen_keeps_the_default_layout(qtbot, empty):
    settings, host = empty
    with main_window(qtbot, settings, host, show=False) as win:
        win.clamp_to_screen(QRect(0, 0, 1920, 1080))
        assert not win.compact and not win.tabifiedDockWidgets(win.heatmap)


def test_import_dialog_fits_960x600(qtbot, empty, tmp_path, astronaut):
    from ui.import_dialog import ImportDialog
    from ui.qtutil import fit_to_screen
    from ui.session import Session

    _, host = empty
    for name in ("a", "b"):
        save_png(astronaut, tmp_path / "folder" / name / "x.png")
    session = Session(host)
    dlg = ImportDialog(session, str(tmp_path / "folder"), [])
    qtbot.addWidget(dlg)
    fit_to_screen(dlg, 760, 620, SMALL)
    qtbot.waitUntil(lambda: dlg.ok.isEnabled(), timeout=60_000)
    assert fits(dlg.minimumSizeHint()), dlg.minimumSizeHint()
    assert dlg.width() <= 960 and dlg.height() <= 560  # room for the title bar
    session.pool.wait_idle(timeout_ms=60_000, settle_ms=0)
