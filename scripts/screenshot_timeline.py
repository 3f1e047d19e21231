"""Screenshot of the video timeline and footage docks on a real window (run under Xvfb).

    xvfb-run -a -s "-screen 0 1440x900x24" python scripts/screenshot_timeline.py OUT.png [--video V --gallery-photos G]

Without --video it makes the 8 s LFW clip of tests/video_files.py and enrolls its person from another photo.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--video")
    ap.add_argument("--gallery-photos", help="the .gallery.json of bench/make_test_video.py")
    a = ap.parse_args()
    import os

    tmp = Path(tempfile.mkdtemp(prefix="timeline-shot-"))
    os.environ.setdefault("FASFINDER_CONFIG_DIR", str(tmp / "config"))
    os.environ.setdefault("FASFINDER_DATA_DIR", str(tmp / "data"))
    from PySide6.QtWidgets import QApplication

    from fasfinder.host import LocalHost
    from fasfinder.settings import Settings
    from tests.video_files import lfw_clip
    from ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    settings = replace(Settings(gallery=str(tmp / "gallery.db")))
    host = LocalHost(settings)
    if a.video:
        video = a.video
        for label, files in json.loads(Path(a.gallery_photos).read_text()).items():
            host.call("enroll", files, label=label)
    else:
        video, known, photo, _ = lfw_clip(tmp, Path("../shared/data/lfw/images_deepfunneled"))
        host.call("enroll", [photo], label=known)
    win = MainWindow(settings, host, offer_demo=False, restore_layout=False)
    win.resize(1440, 900)
    win.show()

    def wait(cond, s=900):
        t0 = time.time()
        while not cond() and time.time() - t0 < s:
            app.processEvents()
            time.sleep(0.05)

    win.timeline.raise_()
    win.footage.raise_()
    win.resizeDocks([win.timeline], [520], __import__("PySide6.QtCore").QtCore.Qt.Orientation.Vertical)
    win.timeline.open_video(str(video))
    wait(lambda: win.timeline.result is not None)
    res = win.timeline.result
    known_rows = [i for i, t in enumerate(res.tracks) if t.decision is not None and t.decision.in_gallery]
    if known_rows:
        win.timeline.select_track(known_rows[0])
    win.footage._load_persons()
    wait(lambda: win.footage.person.count() > 0, 60)
    if known_rows:
        i = win.footage.person.findText(res.tracks[known_rows[0]].persons[0].label)
        win.footage.person.setCurrentIndex(max(i, 0))
    win.footage.find()
    wait(lambda: win.footage.result is not None)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    win.grab().save(a.out)
    print(json.dumps({"out": a.out, "tracks": len(res.tracks), "in_gallery": len(known_rows),
                      "spans": len(win.footage.result.spans) if win.footage.result else None}))
    host.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
