"""Region importance dock: mean heatmap value in each of the 10 facial regions (pyqtgraph bars)."""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QDockWidget, QLabel, QVBoxLayout, QWidget

from fasfinder.service import REGION_NAMES

from ..dock_export import ExportRow
from ..qtutil import error_text, is_unavailable

SERIES = {"face": ("Recognition", "#4dabf7"), "fas": ("Liveness (FAS)", "#ff922b")}


class RegionDock(QDockWidget):
    def __init__(self, session, parent=None):
        super().__init__("Region importance", parent)
        self.setObjectName("dock_regions")
        self.session = session
        self._values: dict[str, dict] = {}
        self._notes: dict[str, str] = {}
        self._token = 0
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.setXRange(0, 100, padding=0.02)
        self.plot.setYRange(-0.6, len(REGION_NAMES) - 0.4, padding=0)
        ax = self.plot.getAxis("left")
        ax.setTicks([[(i, n) for i, n in enumerate(REGION_NAMES)]])
        ax.setWidth(92)
        bottom = self.plot.getAxis("bottom")
        bottom.enableAutoSIPrefix(False)  # percent, never "(x0.001)"
        bottom.setLabel("mean heatmap value in region (%)")
        bottom.setTickSpacing(20, 10)
        self.plot.getPlotItem().invertY(True)
        self.plot.setMinimumHeight(190)  # 10 region names never overlap; a lower dock scrolls (main_window)
        lay.addWidget(self.plot, 1)
        self.status = QLabel("Select a face.")
        self.status.setWordWrap(True)
        self.status.setObjectName("hint")
        self.export = ExportRow("region-importance", self.plot, self.table, self.status.setText)
        lay.addWidget(self.export)
        lay.addWidget(self.status)
        self.setWidget(w)
        session.face_selected.connect(self._on_face)

    def _on_face(self, index: int) -> None:
        self._token += 1
        self._values.clear()
        self._draw()
        if index < 0:
            self.status.setText("Select a face.")
            return
        self.status.setText("Computing region importance\u2026")
        self._notes: dict[str, str] = {}
        for kind in SERIES:
            t = self._token
            self.session.explanation(kind, lambda v, k=kind, t=t: self._ready(t, k, v),
                                     lambda e, k=kind, t=t: self._failed(t, k, e))

    def _ready(self, token, kind, value) -> None:
        if token != self._token:
            return
        self._values[kind] = value[1]
        self._draw()
        self._update_status()

    def _failed(self, token, kind, exc) -> None:
        if token != self._token:
            return
        name = SERIES[kind][0]
        self._notes[kind] = f"{name}: not available ({error_text(exc)})" if is_unavailable(exc) else \
            f"{name}: failed ({error_text(exc)})"
        self._update_status()

    def _update_status(self) -> None:
        parts = [f"<span style='color:{SERIES[k][1]}'>\u25a0</span> {SERIES[k][0]}" for k in self._values]
        parts += [html.escape(n) for n in self._notes.values()]  # rich text on purpose; error texts escaped
        self.status.setText(" &nbsp; ".join(parts))

    def table(self):
        """(header, rows) of the values shown: one row per region, in percent, one column per series."""

        if not self._values:
            return None
        kinds = list(self._values)
        rows = [[r] + [round(100 * float(self._values[k].get(r, float("nan"))), 3) for k in kinds] for r in REGION_NAMES]
        return ["region"] + [f"{SERIES[k][0]} (%)" for k in kinds], rows

    def values(self, kind: str) -> dict | None:
        return self._values.get(kind)

    def _draw(self) -> None:
        self.plot.clear()
        n = len(self._values)
        if not n:
            return
        h = 0.8 / max(n, 1)
        for j, (kind, vals) in enumerate(self._values.items()):
            name, colour = SERIES[kind]
            y = np.arange(len(REGION_NAMES)) - 0.4 + h * (j + 0.5)
            widths = 100 * np.array([np.nan_to_num(vals.get(r, 0.0)) for r in REGION_NAMES], dtype=float)
            item = pg.BarGraphItem(x0=np.zeros_like(widths), y=y, height=h * 0.9, width=widths,
                                   brush=colour, pen=pg.mkPen(None), name=name)
            self.plot.addItem(item)
        self.plot.setXRange(0, 100, padding=0)  # a fixed 0-100 % scale: regions compare across faces
