"""Analyst docks readable and exportable (issue 17): the region chart in percent on a fixed 0-100 axis
(no "(x0.001)"), severity plots with a y label and a fixed 0-1 scale, the heatmap colour bar, and
Export PNG / CSV. The docks get real result objects; ``FASFINDER_SCREENSHOTS=DIR`` saves them as PNG."""

from __future__ import annotations

import csv
import os
from dataclasses import replace
from pathlib import Path

import pytest

from fasfinder.results import SeverityCurves
from fasfinder.service import REGION_NAMES, SEVERITY_SWEEPS
from fasfinder.settings import Settings


@pytest.fixture
def session(qtbot, tmp_path):
    from fasfinder.host import LocalHost
    from ui.session import Session

    host = LocalHost(replace(Settings(gallery=str(tmp_path / "g.db")), liveness=False))
    yield Session(host)
    host.close()


def _shot(widget, name):
    if os.environ.get("FASFINDER_SCREENSHOTS"):
        widget.grab().save(str(Path(os.environ["FASFINDER_SCREENSHOTS"]) / name))


def test_region_chart_in_percent_on_a_fixed_axis_and_exports(qtbot, session, tmp_path):
    from ui.docks.regions import RegionDock

    dock = RegionDock(session)
    qtbot.addWidget(dock)
    dock.resize(420, 420)
    dock.show()
    vals = {r: 0.0004 * (i + 1) for i, r in enumerate(REGION_NAMES)}  # small values: the old axis read "(x0.001)"
    dock._ready(dock._token, "face", (None, vals))
    bottom = dock.plot.getAxis("bottom")
    assert "%" in bottom.labelText and not bottom.autoSIPrefix
    assert "x0.001" not in bottom.labelString() and "x1e" not in bottom.labelString()
    (x0, x1), _ = dock.plot.viewRange()
    assert (x0, x1) == (0, 100)
    _shot(dock, "dock_regions.png")
    out = dock.export.export_csv(str(tmp_path / "regions"))
    rows = list(csv.reader(open(out, encoding="utf-8")))
    assert rows[0] == ["region", "Recognition (%)"] and len(rows) == 1 + len(REGION_NAMES)
    assert float(rows[1][1]) == pytest.approx(0.04)
    png = dock.export.export_png(str(tmp_path / "regions.png"))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_severity_plots_have_y_labels_fixed_ranges_and_export(qtbot, session, tmp_path):
    from ui.docks.severity import SeverityDock

    dock = SeverityDock(session)
    qtbot.addWidget(dock)
    dock.resize(760, 320)
    dock.show()
    curves = {k: [(s, 0.95 - 0.01 * i) for i, s in enumerate(v)] for k, v in SEVERITY_SWEEPS.items()}
    dock._ready(SeverityCurves(target="similarity", region="face", baseline=0.95, curves=curves, engine="e"))
    for p in dock.plots.values():
        assert p.getAxis("left").labelText == "similarity"
        _, (y0, y1) = p.viewRange()
        assert y0 <= 0.0 and y1 >= 1.0 and y1 - y0 < 1.1  # a 0.01 change is not stretched to the full height
    _shot(dock, "dock_severity.png")
    out = dock.export.export_csv(str(tmp_path / "sev.csv"))
    rows = list(csv.reader(open(out, encoding="utf-8")))
    assert rows[0] == ["perturbation", "severity", "similarity", "baseline"]
    assert len(rows) - 1 == sum(len(v) for v in curves.values())
    dock._ready(SeverityCurves(target="liveness", region="face", baseline=0.7, curves=curves, engine="e"))
    assert dock.plots["noise"].getAxis("left").labelText == "P(real)"


def test_heatmap_dock_has_a_colour_bar_of_the_overlay_colours(qtbot, session):
    from ui.docks.heatmap import HeatmapDock

    dock = HeatmapDock(session)
    qtbot.addWidget(dock)
    img = dock.colour_bar.bar.pixmap().toImage()
    low, high = img.pixelColor(0, 5), img.pixelColor(img.width() - 1, 5)
    assert low.blue() > 100 and low.red() < 50  # jet: blue at 0
    assert high.red() > 100 and high.blue() < 50  # red at 1
    assert dock.export.export_csv("/nonexistent/x.csv") is None  # no heatmap yet: nothing exported
