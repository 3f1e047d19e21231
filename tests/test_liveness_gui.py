"""The default liveness model in the window (issue `liveness` item 5; pytest-qt, real models through
LocalHost): a NUAA test print as the query gets the default's three-way verdict on its badge, the
heatmap dock shows the liveness model's Grad-CAM++ for the selected face and the region dock its Area
Importance. ``FASFINDER_SCREENSHOTS=DIR`` saves the window (docs/screenshots/liveness_default.png)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from fasfinder.settings import Settings
from tests.casework_util import main_window

from .conftest import shared_data

MS = 180_000


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    from fasfinder.host import LocalHost

    root = tmp_path_factory.mktemp("liveness_gui")
    h = LocalHost(replace(Settings(gallery=str(root / "g.db")), liveness=True))
    yield h
    h.close()


@pytest.mark.slow
def test_default_liveness_verdict_heatmap_and_regions_for_a_nuaa_print(qtbot, host):
    from fasfinder.liveness import DEFAULT_MODEL, load_liveness_model
    from fasfinder.imaging import load_image

    nuaa = shared_data("nuaa") / "db"
    rel = [ln for ln in (nuaa / "subset_imposter_test_raw.txt").read_text().split() if ln][40]
    query = nuaa / "ImposterRaw" / rel
    with main_window(qtbot, host.settings, host) as win:
        win.resize(1280, 800)
        win.open_query(str(query))
        qtbot.waitUntil(lambda: win.last_result is not None, timeout=MS)
        res = win.last_result
        assert res.error is None and len(res.faces) == 1
        lv = res.faces[0].liveness
        assert lv is not None and lv.model == DEFAULT_MODEL and lv.label in ("real", "uncertain", "spoof")
        # the window shows what the model says for this photo, directly
        from fasfinder.faces import FaceAnalyzer

        rgb = load_image(query).pixels
        direct = load_liveness_model(DEFAULT_MODEL).predict(rgb, [FaceAnalyzer().detect(rgb)[0]])[0]
        assert lv.label == direct.label and lv.score == pytest.approx(direct.score, abs=1e-4)
        assert lv.label != "real", f"NUAA test print {rel} called real ({lv.score:.3f})"
        win.heatmap.source.setCurrentIndex(win.heatmap.source.findData("fas"))
        qtbot.waitUntil(lambda: win.heatmap.status.text().startswith("Source") or "Not available" in win.heatmap.view.text(),
                        timeout=MS)
        assert win.heatmap.status.text() == "Source: liveness (FAS) model, Grad-CAM++.", win.heatmap.view.text()
        assert not win.heatmap.view.pixmap().isNull()
        qtbot.waitUntil(lambda: win.regions.values("fas") is not None or "not available" in win.regions.status.text(),
                        timeout=MS)
        regions = win.regions.values("fas")
        assert regions is not None and len(regions) == 10 and max(regions.values()) > 0, win.regions.status.text()
        folder = os.environ.get("FASFINDER_SCREENSHOTS")
        if folder:
            qtbot.wait(500)
            win.grab().save(str(Path(folder) / "liveness_default.png"))
