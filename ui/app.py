"""Desktop entry point: ``run(argv)``.

    python main.py                                   # the app on the user's gallery
    python main.py --db GALLERY.db --query IMG       # open a gallery and run a query
    python main.py --screenshot OUT.png [--db GALLERY.db] [--query IMG]
                   [--import FOLDER --snap-at N]     # save a PNG of the window and exit
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

log = logging.getLogger("fasfinder.ui")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py", description="FASFinder desktop app (options in any order; a "
                                "command word instead runs the command line, listed below)")
    p.add_argument("photo", nargs="?", help="a photo to search at start (same as --query)")
    p.add_argument("--gui", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--screenshot", metavar="FILE", help="save a PNG of the window when all work is done, then exit")
    p.add_argument("--db", metavar="FILE", help="gallery file to open (default: the one in the settings)")
    p.add_argument("--query", metavar="IMAGE", help="run this query at start")
    p.add_argument("--import", dest="import_folder", metavar="FOLDER", help="import this folder at start")
    p.add_argument("--snap-at", type=int, default=0, metavar="N",
                   help="with --screenshot and --import: take the picture after N imported photos (then cancel)")
    p.add_argument("--curves", action="store_true", help="compute the severity curves after the query")
    p.add_argument("--demo", action="store_true",
                   help="open the separate demo gallery (demo.db in the data folder, never your real gallery; "
                        "enrolled when empty) and, without a photo, search a demo photo")
    p.add_argument("--size", default="1280x800", help="window size for --screenshot (WxH)")
    p.add_argument("--host", choices=("process", "local"), default=None,
                   help="where the models run: a helper process (default) or this process")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.photo and args.query and args.photo != args.query:
        build_parser().error("give the photo either as an argument or with --query, not both")
    args.query = args.query or args.photo
    return args


def limit_threads() -> None:
    """Torch (if loaded here) gets one thread: of two cores the GUI thread keeps one."""

    if "torch" in sys.modules:
        try:
            sys.modules["torch"].set_num_threads(1)
        except Exception:  # pragma: no cover
            pass


def run(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    limit_threads()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from fasfinder.settings import Settings, demo_gallery_path

    from fasfinder.host import make_host

    from .main_window import RESOURCES, MainWindow

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("FASFinder")
    app.setOrganizationName("FASFinder")
    app.setStyle("Fusion")
    qss = RESOURCES / "style.qss"
    if qss.is_file():
        app.setStyleSheet(qss.read_text(encoding="utf-8"))

    settings = Settings.load()
    if args.db:
        settings = replace(settings, gallery=str(Path(args.db).expanduser().resolve()))
    elif args.demo:  # the demo never goes into the real gallery
        settings = replace(settings, gallery=str(demo_gallery_path()))
    host = make_host(settings, args.host)
    if args.demo:
        log.info("demo gallery: %s", settings.gallery)
        query = host.call("ensure_demo")
        args.query = args.query or str(query)
    shot = args.screenshot
    win = MainWindow(settings, host, offer_demo=not shot, restore_layout=not shot)
    win._own_host = True
    if shot:
        w, h = (int(v) for v in args.size.lower().split("x"))
        win.resize(w, h)
        win.clamp_to_screen()
        win.save_layout = lambda: None  # a scripted run must not overwrite the user's layout
    win.show()

    if args.import_folder:
        def open_import():
            dlg = win.gallery.import_folder(args.import_folder)
            if shot:  # a scripted run takes the dialog's proposal as it is
                dlg.planned.connect(lambda _plan: dlg.ok.isEnabled() and dlg.accept())

        QTimer.singleShot(200, open_import)
    if args.query:
        QTimer.singleShot(200, lambda: win.open_query(args.query))
    if args.curves:
        win.session.face_selected.connect(lambda i: i >= 0 and QTimer.singleShot(0, win.severity.compute))
    if not shot:
        return app.exec()

    pool = win.session.pool
    if args.import_folder and args.snap_at > 0:
        snapped = {"done": False}

        def on_progress(done, total, _msg):
            if done >= args.snap_at and not snapped["done"]:
                snapped["done"] = True
                QTimer.singleShot(300, grab_and_cancel)

        def grab_and_cancel():
            _save(win, shot)
            pool.cancel_all()

        def hook():
            wk = win.gallery.import_worker
            if wk is not None:
                wk.signals.progress.connect(on_progress)

        QTimer.singleShot(400, hook)
        pool.wait_idle(timeout_ms=600_000, settle_ms=1500)
        if not snapped["done"]:
            _save(win, shot)
    else:
        pool.wait_idle(timeout_ms=600_000, settle_ms=1500)
        for _ in range(10):
            app.processEvents()
        _save(win, shot)
    win.close()
    app.processEvents()
    return 0


def _save(win, path: str) -> None:
    from PySide6.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ok = win.grab().save(path)
    log.info("screenshot %s %s", path, "saved" if ok else "FAILED")


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(run())
