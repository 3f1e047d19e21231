"""The video timeline and footage docks (pytest-qt, offscreen): a searched clip's tracks as bars, a click
on a bar shows its frames and matches, an enrolled person found in the footage."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fasfinder.settings import Settings

from .conftest import shared_data
from .video_files import lfw_clip

pytestmark = pytest.mark.slow
WAIT_MS = 300_000


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from fasfinder.host import LocalHost

    root = tmp_path_factory.mktemp("timeline")
    video, known, photo, _ = lfw_clip(root, shared_data("lfw/images_deepfunneled"))
    settings = replace(Settings(gallery=str(root / "gallery.db")))
    host = LocalHost(settings)
    assert host.call("enroll", [photo], label=known)[0].error is None
    yield {"host": host, "settings": settings, "video": video, "known": known}
    host.close()


def test_timeline_click_shows_track_and_footage_plot(qtbot, setup):
    from PySide6.QtCore import QPoint, Qt

    from tests.casework_util import main_window

    with main_window(qtbot, setup["settings"], setup["host"]) as win:
        dock = win.timeline
        dock.raise_()
        dock.open_video(str(setup["video"]))
        qtbot.waitUntil(lambda: dock.result is not None, timeout=WAIT_MS)
        res = dock.result
        assert res.error is None and len(res.tracks) >= 2
        assert len(dock._bars) == len(res.tracks)
        assert dock.selected == 0 and dock.frames.count() > 1
        # a real mouse click on the second bar, at its middle, selects that track
        row = 1
        t = res.tracks[row]
        vb = dock.plot.getPlotItem().vb
        qtbot.waitUntil(lambda: dock.plot.isVisible(), timeout=10_000)
        scene_pt = vb.mapViewToScene(pg_point((t.start_s + t.end_s) / 2, row))
        view_pt = dock.plot.mapFromScene(scene_pt)
        qtbot.mouseClick(dock.plot.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(int(view_pt.x()), int(view_pt.y())))
        qtbot.waitUntil(lambda: dock.selected == row, timeout=10_000)
        assert dock.matches.item(0).text().startswith(f"Track {t.track}:")
        shown = [dock.matches.item(i).text() for i in range(dock.matches.count())]
        if t.decision.in_gallery:
            assert setup["known"] in shown[1]
        # footage: the enrolled person, looked for in the same video
        foot = win.footage
        foot.raise_()
        foot._load_persons()
        qtbot.waitUntil(lambda: foot.person.count() == 1, timeout=WAIT_MS)
        foot.find()
        qtbot.waitUntil(lambda: foot.result is not None, timeout=WAIT_MS)
        assert foot.result.error is None and foot.result.spans
        assert "span(s)" in foot.status.text()


def pg_point(x, y):
    from PySide6.QtCore import QPointF

    return QPointF(x, y)
