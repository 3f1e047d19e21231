"""The desktop app's status bar shows the replica's last sync and pending changes; the sync action works."""

from __future__ import annotations

from dataclasses import replace

from fasfinder.gallery import Gallery
from fasfinder.settings import Settings

from .server_helpers import enroll, sync


def test_status_bar_shows_last_sync_and_pending_changes(qtbot, office, tmp_path):
    from fasfinder.host import LocalHost
    from ui.main_window import MainWindow

    pg, db = office
    path = tmp_path / "g.db"
    with Gallery(path) as g:
        enroll(g, "Gina", "gina-1")
        sync(g, pg, db, "alice")
        enroll(g, "Gina", "gina-2")  # made offline after the sync: 1 pending photo
    settings = replace(Settings(gallery=str(path)), liveness=False, server=pg.url("alice", db))
    host = LocalHost(settings)
    win = MainWindow(settings, host, offer_demo=False, restore_layout=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: "last sync" in win.status_info.text(), timeout=60_000)
    assert "1 pending" in win.status_info.text()
    win.sync_server()
    qtbot.waitUntil(lambda: "0 pending" in win.status_info.text(), timeout=60_000)
    assert win.status_info.text().count("last sync") == 1
    win.session.pool.wait_idle(timeout_ms=60_000, settle_ms=0)
    host.close()


def test_settings_dialog_keeps_the_server_connection(qtbot):
    from ui.settings_dialog import SettingsDialog

    dlg = SettingsDialog(Settings(server="postgresql://ann@db/fasfinder", server_case="C1"), [])
    qtbot.addWidget(dlg)
    assert dlg.server.text() == "postgresql://ann@db/fasfinder"
    dlg.server.setText("postgresql://bob@db2/fasfinder?sslmode=verify-full")
    dlg.server_password_file.setText("/home/bob/.fasfinder-pw")
    out = dlg.result_settings()
    assert (out.server, out.server_password_file, out.server_case) == (
        "postgresql://bob@db2/fasfinder?sslmode=verify-full", "/home/bob/.fasfinder-pw", "C1")
