"""The main window: query view in the centre, analysis docks around it."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QRect, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QMessageBox, QToolBar, QVBoxLayout, QWidget

from fasfinder.host import Host, make_host
from fasfinder.service import VIDEO_SUFFIXES
from fasfinder.settings import Settings, config_dir, default_gallery_path, demo_gallery_path

from .docks.cases import CasesDock
from .docks.gallery import GalleryDock
from .docks.heatmap import HeatmapDock
from .docks.history import HistoryDock
from .docks.matches import MatchesDock
from .docks.regions import RegionDock
from .docks.severity import SeverityDock
from .docks.footage import FootageDock
from .docks.timeline import TimelineDock
from .filedialogs import choose_file
from .help import first_start, help_box
from .image_view import ImageView
from .qtutil import error_text, plain, plain_tip, scrollable
from .session import Session
from .settings_dialog import SettingsDialog

log = logging.getLogger("fasfinder.ui")

# resources/ of the source tree (or bundle); ``pip install .`` installs it as ui/resources
RESOURCES = next((p for p in (Path(__file__).resolve().parent.parent / "resources",
                              Path(__file__).resolve().parent / "resources") if p.is_dir()),
                 Path(__file__).resolve().parent.parent / "resources")
IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp *.gif *.ppm *.pgm);;All files (*)"
STATE_VERSION = 3  # 2: the video timeline and footage docks; 3: the cases dock
#: a free screen area narrower or lower than this (logical pixels: a laptop, 150 % scaling) gets the compact layout
COMPACT_BELOW = (1200, 760)


def icon(name: str) -> QIcon:
    return QIcon(str(RESOURCES / "icons" / f"{name}.svg"))


def ui_settings() -> QSettings:
    return QSettings(str(config_dir() / "ui.ini"), QSettings.Format.IniFormat)


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, host: Host | None = None, *, offer_demo: bool = True,
                 restore_layout: bool = True):
        super().__init__()
        self.settings = settings or Settings.load()
        self.host = host or make_host(self.settings)
        self._own_host = host is None
        self.offer_demo = offer_demo
        self.session = Session(self.host, parent=self)
        self.setWindowTitle("FASFinder \u2013 face search for missing-person cases")
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)

        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.banner = plain(QLabel(""))  # error messages quote file names
        self.banner.setObjectName("errorBanner")
        self.banner.setWordWrap(True)
        self.banner.setVisible(False)
        lay.addWidget(self.banner)
        self.view = ImageView()
        lay.addWidget(self.view, 1)
        self.setCentralWidget(central)

        self.matches = MatchesDock(self.session, self)
        self.heatmap = HeatmapDock(self.session, self)
        self.regions = RegionDock(self.session, self)
        self.severity = SeverityDock(self.session, self)
        self.gallery = GalleryDock(self.session, self)
        self.history = HistoryDock(self.session, self)
        self.cases = CasesDock(self.session, self)
        self.timeline = TimelineDock(self.session, self)
        self.footage = FootageDock(self.session, self.timeline, self)
        self.docks = [self.gallery, self.history, self.cases, self.matches, self.heatmap, self.regions, self.severity,
                      self.timeline, self.footage]
        for d in self.docks:
            d.setFeatures(QDockWidgetFeatures.ALL)
            d.setWidget(scrollable(d.widget()))  # a small dock scrolls instead of growing the window
        self.resize(1280, 800)  # before the dock sizes, which are kept within the window
        self.compact, self._sized, self._clamp_on_show = False, False, False
        self._default_layout()
        self._default_state = self.saveState(STATE_VERSION)

        self._actions()
        self.status_info = plain(QLabel(""))
        self.statusBar().addPermanentWidget(self.status_info)

        self.view.face_clicked.connect(self.session.select_face)
        self.view.files_dropped.connect(self._dropped)
        self.session.face_selected.connect(self.view.select_face)
        self.session.message.connect(self.statusBar().showMessage)
        self.session.gallery_changed.connect(self._refresh_info)
        self.history.reopen.connect(lambda p: self.open_query(p, record=False))
        self.cases.search_in.connect(self.search_in_case)
        self.gallery.import_finished.connect(lambda _r: self._refresh_info())
        self.last_result = None

        if restore_layout:
            self.restore_layout()
        QTimer.singleShot(0, self._startup)

    # -- layout -------------------------------------------------------------------------------
    def _default_layout(self) -> None:
        L, R, B = (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea,
                   Qt.DockWidgetArea.BottomDockWidgetArea)
        self.setCorner(Qt.Corner.BottomLeftCorner, B)
        self.setCorner(Qt.Corner.BottomRightCorner, R)
        self.addDockWidget(L, self.gallery)
        self.addDockWidget(L, self.history)
        self.tabifyDockWidget(self.gallery, self.history)
        self.tabifyDockWidget(self.history, self.cases)
        self.gallery.raise_()
        self.addDockWidget(R, self.matches)
        self.addDockWidget(R, self.heatmap)
        self.splitDockWidget(self.matches, self.heatmap, Qt.Orientation.Vertical)
        self.addDockWidget(B, self.regions)
        self.addDockWidget(B, self.severity)
        self.splitDockWidget(self.regions, self.severity, Qt.Orientation.Horizontal)
        self.tabifyDockWidget(self.regions, self.timeline)
        self.tabifyDockWidget(self.severity, self.footage)
        self.regions.raise_()
        self.severity.raise_()
        self._size_docks()

    def _size_docks(self) -> None:
        """The docks' default sizes (the bottom row as high as the region chart needs; compact: smaller)."""

        H, V = Qt.Orientation.Horizontal, Qt.Orientation.Vertical
        if self.compact:
            self.resizeDocks([self.gallery, self.matches], [250, 300], H)
            self.resizeDocks([self.regions], [200], V)
            return
        self.resizeDocks([self.gallery, self.matches], [350, 360], H)  # the case list shows all its columns
        self.resizeDocks([self.matches, self.heatmap], [430, 300], V)
        bottom = max(d.widget().content_height() for d in (self.regions, self.severity)) + 24  # + the title
        self.resizeDocks([self.regions], [max(300, bottom)], V)
        self.resizeDocks([self.regions, self.severity], [400, 550], H)

    def showEvent(self, ev):  # noqa: N802
        super().showEvent(ev)
        if not self._sized:  # once shown the layout honours the sizes (a restored state keeps its own)
            self._sized = True
            QTimer.singleShot(0, self._size_docks)
        if self._clamp_on_show:  # the frame (title bar, borders) is known only now
            self._clamp_on_show = False
            QTimer.singleShot(0, self.clamp_to_screen)

    def restore_layout(self) -> None:
        s = ui_settings()
        geo, state = s.value("window/geometry"), s.value("window/state")
        if geo is not None:
            self.restoreGeometry(geo)
        if state is not None and self.restoreState(state, STATE_VERSION):
            self._sized = True  # the user's own dock sizes
        self.clamp_to_screen()
        self._clamp_on_show = True

    def clamp_to_screen(self, free: QRect | None = None) -> None:
        """Never larger than the screen's free area (``free``; default: this window's screen), and on it
        (a geometry saved at another scaling or on a larger monitor is shrunk and moved back); a free area
        under :data:`COMPACT_BELOW` gets the compact layout."""

        if free is None:
            screen = self.screen() or QApplication.primaryScreen()
            if screen is None:
                return
            free = screen.availableGeometry()
        need = self.minimumSizeHint()
        if (free.width() < COMPACT_BELOW[0] or free.height() < COMPACT_BELOW[1]
                or need.width() > free.width() or need.height() > free.height()):
            self.compact_layout()
        frame = self.frameGeometry().size() - self.size()  # title bar and borders, when the window has them
        w = min(self.width(), free.width() - frame.width())
        h = min(self.height(), free.height() - frame.height())
        if (w, h) != (self.width(), self.height()):
            self.resize(w, h)
        x = min(max(self.x(), free.left()), free.right() - w - frame.width() + 1)
        y = min(max(self.y(), free.top()), free.bottom() - h - frame.height() + 1)
        if (x, y) != (self.x(), self.y()):
            self.move(x, y)

    def compact_layout(self) -> None:
        """For a screen too small for the default layout (a laptop, 150 % scaling): the bottom docks share one
        tab group and the heatmap is a tab beside the matches, all docks narrower, so every dock stays on the
        screen (each one scrolls when its contents need more room)."""

        for d in (self.severity, self.timeline, self.footage):
            self.tabifyDockWidget(self.regions, d)
        self.tabifyDockWidget(self.matches, self.heatmap)
        self.regions.raise_()
        self.matches.raise_()
        self.compact = True
        self._size_docks()

    def save_layout(self) -> None:
        s = ui_settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState(STATE_VERSION))
        s.sync()

    def reset_layout(self) -> None:
        for d in self.docks:
            d.setFloating(False)
            d.show()
        self.restoreState(self._default_state, STATE_VERSION)

    def _actions(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("toolbar_main")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(tb)
        m_file = self.menuBar().addMenu("&File")
        m_gallery = self.menuBar().addMenu("&Gallery")
        m_view = self.menuBar().addMenu("&View")
        m_help = self.menuBar().addMenu("&Help")

        def act(text, slot, ico=None, shortcut=None, menu=None, toolbar=False):
            a = QAction(icon(ico) if ico else QIcon(), text, self)
            a.triggered.connect(slot)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
            if menu is not None:
                menu.addAction(a)
            if toolbar:
                tb.addAction(a)
            return a

        act("Open query\u2026", self.choose_query, "open", "Ctrl+O", m_file, True)
        act("Open video\u2026", self.timeline.choose_video, None, "Ctrl+Shift+O", m_file)
        act("Import folder\u2026", self.gallery.choose_folder, "import", "Ctrl+I", m_gallery, True)
        act("Add person\u2026", self.gallery.add_person, None, "Ctrl+N", m_gallery)
        act("Trash\u2026", self.gallery.open_trash, None, None, m_gallery)
        act("Open the demo gallery", self.open_demo_gallery, None, None, m_gallery)
        act("Refresh", lambda: self.session.gallery_changed.emit(), None, "F5", m_gallery)
        act("Sync with office server", self.sync_server, None, None, m_gallery)
        act("Compute severity curves", self.severity.compute, "curves", None, None, True)
        m_file.addSeparator()
        act("Settings\u2026", self.open_settings, "settings", "Ctrl+,", m_file, True)
        m_file.addSeparator()
        act("Quit", self.close, None, "Ctrl+Q", m_file)
        for d in self.docks:
            m_view.addAction(d.toggleViewAction())
        m_view.addSeparator()
        act("Next face", lambda: self.step_face(1), None, "Alt+Right", m_view)
        act("Previous face", lambda: self.step_face(-1), None, "Alt+Left", m_view)
        m_view.addSeparator()
        act("Reset layout", self.reset_layout, None, None, m_view)
        act("Keyboard shortcuts", lambda: help_box(self, "shortcuts"), None, "F1", m_help)
        act("Licences", lambda: help_box(self, "licences"), None, None, m_help)
        act("About FASFinder", lambda: help_box(self, "about"), None, None, m_help)

    # -- startup ------------------------------------------------------------------------------
    def _startup(self) -> None:
        self.session.gallery_changed.emit()
        self.session.call("warm_up", on_error=lambda e: self.session.report_error(e))
        self.session.call("info", on_result=self._maybe_offer_demo)

    def _refresh_info(self) -> None:
        self.session.call("info", on_result=self._show_info)

    def _show_info(self, info) -> None:
        c = info.counts
        live = "liveness: on" if not info.liveness_unavailable else "liveness: n/a"
        self.status_info.setText(f"{Path(info.gallery).name} \u00b7 {c['persons']} persons \u00b7 {c['images']} photos"
                                 f" \u00b7 {info.engine} \u00b7 {live}")
        self.status_info.setToolTip(plain_tip(f"{info.gallery}\n{info.liveness_unavailable or 'liveness model installed'}"))
        self.session.call("status_text", on_result=self._show_sync, on_error=lambda _e: None)

    def _show_sync(self, text: str) -> None:
        """Append the replica's last sync time and pending changes (issue 19) to the gallery line."""

        base = self.status_info.text().split(" \u00b7 last sync", 1)[0]
        self.status_info.setText(f"{base} \u00b7 {text}" if text else base)

    def sync_server(self) -> None:
        """Push and pull with the office server of the settings; search keeps working meanwhile."""

        self.statusBar().showMessage("Syncing with the office server\u2026")
        self.session.call("sync", on_progress=lambda d, t, m: self.statusBar().showMessage(f"Sync: {m} {d}"),
                          on_result=lambda r: (self.statusBar().showMessage(
                              f"Synced: pushed {r['pushed']}, pulled {r['pulled_images']} photo(s), "
                              f"{len(r['conflicts'])} conflict(s)", 15000), self.session.gallery_changed.emit()))

    def _maybe_offer_demo(self, info) -> None:
        self._show_info(info)
        if not self.offer_demo or info.counts["images"] > 0:
            return
        if Path(info.gallery).resolve() != default_gallery_path().resolve():
            return
        choice = first_start(self)
        if choice == "demo":
            self.open_demo_gallery()
        elif choice == "import":
            self.gallery.choose_folder()

    def open_demo_gallery(self) -> None:
        """Switch this session to the separate demo gallery (demo.db) and fill it when empty; the
        settings (and the real gallery) are not changed."""

        self.apply_settings(replace(self.settings, gallery=str(demo_gallery_path())))
        self.setWindowTitle("FASFinder \u2013 DEMO gallery (not your cases)")
        self.gallery.seed_demo()

    def step_face(self, delta: int) -> None:
        """Select the next (``delta`` 1) or previous (-1) face of the query (keyboard: Alt+Right / Alt+Left)."""

        res = self.session.result
        if res is None or not res.faces:
            return
        n, i = len(res.faces), self.session.face_index
        self.session.select_face((0 if delta > 0 else n - 1) if i < 0 else (i + delta) % n)

    # -- queries ------------------------------------------------------------------------------
    def search_in_case(self, case_id: str) -> None:
        """Restrict this window's searches to ``case_id`` (the gallery's case filter) and search the open
        query photo again in it; without one, say what to do next."""

        self.gallery.case_filter.select(case_id)
        if self.gallery.case_filter.case_ids() != [case_id]:  # no person has it (a case of queries only)
            self.statusBar().showMessage(f"Case {case_id} has no person in the gallery to search.", 10000)
            return
        if self.session.result is not None:
            self.open_query(self.session.result.query)
        else:
            self.statusBar().showMessage(f"Searches are restricted to case {case_id}: open a query photo (Ctrl+O).",
                                         15000)

    def choose_query(self) -> None:
        path = choose_file(self, "Open a query photo", IMAGE_FILTER)
        if path:
            self.open_query(path)

    def _dropped(self, paths: list) -> None:
        files = [p for p in paths if Path(p).is_file()]
        folders = [p for p in paths if Path(p).is_dir()]
        if files and Path(files[0]).suffix.lower() in VIDEO_SUFFIXES:
            self.timeline.open_video(files[0])
            self.timeline.raise_()
        elif files:
            self.open_query(files[0])
        elif folders:
            self.gallery.import_folder(folders[0])

    def dragEnterEvent(self, ev):  # noqa: N802
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):  # noqa: N802
        self._dropped([u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()])

    def open_query(self, path: str, record: bool = True) -> None:
        self.banner.setVisible(False)
        self.statusBar().showMessage(f"Searching {Path(path).name}\u2026")
        self.session.cancel_explanations()  # the previous query's pending explanations never run
        self.session.call("analyze", str(path), record=record, case_ids=self.gallery.case_filter.case_ids(),
                          lane="query", on_result=self._on_query, on_error=self._on_query_error)

    def _on_query_error(self, exc) -> None:
        self.view.show_message("No photo: see the message above.")
        self.session.set_result(None)
        self._show_banner(f"Could not search this photo: {error_text(exc)}")

    def _show_banner(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.setVisible(True)
        self.statusBar().showMessage(text, 15000)

    def _on_query(self, result) -> None:
        self.last_result = result
        self.session.cancel_explanations()  # what is on screen changes: explanations of the old query are moot
        if result.error:
            msg = error_text(result.error)
            if msg.startswith(f"{result.query}: "):
                msg = msg[len(result.query) + 2:]
            code = result.error.get("code", "")
            if code == "no_face" and result.pixels is not None:
                self.view.set_result(result.pixels, [])
                self._show_banner(f"No face found in {Path(result.query).name}. Try a larger or sharper photo, "
                                  "or the CNN detector in Settings.")
            else:  # the previous photo must not stay under the banner
                self.view.show_message(f"{Path(result.query).name}: no photo to show.")
                self._show_banner(f"Could not search {Path(result.query).name}: {msg} [{code}]")
            self.session.set_result(None)
            return
        self.view.set_result(result.pixels, result.faces)
        self.session.set_result(result)
        self.session.history_changed.emit()
        t = result.timings_ms
        total = t.get("total", sum(t.values()))  # stages overlap (liveness beside the search): the wall time
        n = len(result.faces)
        self.statusBar().showMessage(f"{Path(result.query).name}: {n} face{'s' if n != 1 else ''} "
                                     f"in {total:.0f} ms", 10000)

    # -- settings -----------------------------------------------------------------------------
    def open_settings(self) -> None:
        self.session.call("engines", on_result=self._settings_dialog,
                          on_error=lambda _e: self._settings_dialog([]))

    def _settings_dialog(self, engines) -> None:
        dlg = SettingsDialog(self.settings, engines, self)
        if dlg.exec() != SettingsDialog.DialogCode.Accepted:
            return
        new = dlg.result_settings()
        try:
            new.save()
        except OSError as exc:
            box = QMessageBox(QMessageBox.Icon.Warning, "Settings", f"Could not save the settings: {exc}",
                              QMessageBox.StandardButton.Ok, self)
            box.setTextFormat(Qt.TextFormat.PlainText)  # the error quotes a path
            box.exec()
            return
        self.apply_settings(new)

    def apply_settings(self, new: Settings) -> None:
        """Restart the inference host with ``new`` settings (cancels running work)."""

        self.session.pool.cancel_all()
        self.session.pool.wait_idle(timeout_ms=30_000, settle_ms=0)
        old = self.host
        self.settings = new
        self.host = make_host(new)
        self.session.host = self.host
        if self._own_host:
            old.close()
        self._own_host = True
        self.session.set_result(None)
        self.view.show_message("Settings applied. Open a query photo.")
        self.session.gallery_changed.emit()
        self.session.history_changed.emit()

    # -- shutdown -----------------------------------------------------------------------------
    def closeEvent(self, ev):  # noqa: N802
        try:
            self.save_layout()
        except Exception:  # pragma: no cover - never block closing on the layout file
            log.exception("could not save the window layout")
        self.session.pool.cancel_all()
        self.session.pool.wait_idle(timeout_ms=20_000, settle_ms=0)
        if self._own_host:
            self.host.close()
        super().closeEvent(ev)


class QDockWidgetFeatures:
    from PySide6.QtWidgets import QDockWidget as _D

    ALL = (_D.DockWidgetFeature.DockWidgetMovable | _D.DockWidgetFeature.DockWidgetFloatable
           | _D.DockWidgetFeature.DockWidgetClosable)
