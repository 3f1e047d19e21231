"""Conventions of issue 17: `main.py photo.jpg`, `--demo` in its own gallery, `--help` with the app's
options, the Help menu, keyboard face switching, dialogs opening in the last / home folder."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import REPO


def test_help_lists_the_app_options_and_the_commands():
    out = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for word in ("--demo", "--db", "--query", "photo", "--screenshot", "enroll", "search", "history"):
        assert word in out.stdout, word


def test_a_photo_or_app_flags_in_any_order_open_the_app_and_commands_run_the_cli():
    import main

    assert main._wants_gui([]) and main._wants_gui(["photo.jpg"]) and main._wants_gui(["--demo"])
    assert main._wants_gui(["photo.jpg", "--db", "x.db"]) and main._wants_gui(["--db", "x.db", "photo.jpg"])
    assert not main._wants_gui(["search", "photo.jpg"]) and not main._wants_gui(["-v", "engines"])
    from ui.app import parse_args

    assert parse_args(["p.jpg", "--db", "g.db"]).query == "p.jpg"
    assert parse_args(["--db", "g.db", "p.jpg", "--demo"]).query == "p.jpg"
    with pytest.raises(SystemExit):
        parse_args(["a.jpg", "--query", "b.jpg"])


@pytest.mark.slow
def test_main_py_photo_and_demo_run_the_app_and_the_demo_stays_out_of_the_real_gallery(tmp_path):
    from skimage import data
    from PIL import Image

    photo = tmp_path / "sighting.png"
    Image.fromarray(data.astronaut()).save(photo)
    env = {"FASFINDER_DATA_DIR": str(tmp_path / "data"), "FASFINDER_CONFIG_DIR": str(tmp_path / "cfg"),
           "QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    shot = tmp_path / "app.png"
    run = lambda *a: subprocess.run([sys.executable, "main.py", *a, "--host", "local", "--screenshot", str(shot)],
                                    cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    out = run(str(photo))
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    out = run("--demo")
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "data" / "demo.db").is_file()
    from fasfinder.gallery import Gallery

    with Gallery(tmp_path / "data" / "demo.db") as demo:
        assert demo.counts()["images"] >= 1
    real = tmp_path / "data" / "gallery.db"
    if real.exists():  # the first run may have created the (empty) real gallery: the demo is not in it
        with Gallery(real) as g:
            assert g.counts()["images"] == 0


def test_help_menu_face_keys_and_last_folder(qtbot, tmp_path, monkeypatch):
    from fasfinder.host import LocalHost
    from fasfinder.settings import Settings
    from ui import filedialogs
    from ui.main_window import MainWindow

    settings = replace(Settings(gallery=str(tmp_path / "g.db")), liveness=False)
    host = LocalHost(settings)
    win = MainWindow(settings, host, offer_demo=False, restore_layout=False)
    qtbot.addWidget(win)
    try:
        menus = {a.text().replace("&", ""): a.menu() for a in win.menuBar().actions()}
        assert "Help" in menus
        items = [a.text() for a in menus["Help"].actions()]
        assert items == ["Keyboard shortcuts", "Licences", "About FASFinder"]
        view_items = {a.text(): a.shortcut().toString() for a in menus["View"].actions()}
        assert view_items["Next face"] == "Alt+Right" and view_items["Previous face"] == "Alt+Left"
        # keyboard face switching on a result with three faces
        from fasfinder.results import FaceResult, QueryResult
        from tests.gallery_fakes import fake_face

        faces = [FaceResult(index=i, face=fake_face()) for i in range(3)]
        win.session.set_result(QueryResult(query="q.png", sha256="x", engine="e", faces=faces))
        assert win.session.face_index == 0  # a new result selects its first face
        win.step_face(1)
        assert win.session.face_index == 1
        win.step_face(-1)
        win.step_face(-1)
        assert win.session.face_index == 2  # wraps around
        # dialogs open in the home folder first, then in the folder used last
        assert filedialogs.start_folder() == str(Path.home())
        filedialogs.remember(str(tmp_path / "g.db"))
        assert filedialogs.start_folder() == str(tmp_path)
    finally:
        win.close()
        host.close()


def test_a_window_larger_than_the_screen_is_clamped(qtbot, tmp_path):
    from fasfinder.host import LocalHost
    from fasfinder.settings import Settings
    from ui.main_window import MainWindow

    settings = replace(Settings(gallery=str(tmp_path / "g.db")), liveness=False)
    host = LocalHost(settings)
    win = MainWindow(settings, host, offer_demo=False, restore_layout=False)
    qtbot.addWidget(win)
    try:
        free = win.screen().availableGeometry()
        win.resize(free.width() * 2, free.height() * 2)  # e.g. a geometry saved at 150 % on a larger monitor
        win.move(free.right() + 500, free.bottom() + 500)
        win.clamp_to_screen()
        assert win.width() <= free.width() and win.height() <= free.height()
        assert free.contains(win.geometry().topLeft())
    finally:
        win.close()
        host.close()
