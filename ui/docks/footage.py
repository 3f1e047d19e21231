"""Footage dock: find one enrolled person (or a query photo) in the timeline's video; similarity over time.

The curve is, for each sampled frame, the best similarity of a face in it to the person; the shaded
regions are the spans where a track was judged that person; the dashed line the similarity it takes.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDockWidget, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..qtutil import error_text, plain
from .timeline import mmss


class FootageDock(QDockWidget):
    def __init__(self, session, timeline, parent=None):
        super().__init__("Find in footage", parent)
        self.setObjectName("dock_footage")
        self.session = session
        self.timeline = timeline
        self.result = None
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.person = QComboBox()
        self.person.setMinimumWidth(140)
        self.find_btn = QPushButton("Find in video")
        self.find_btn.clicked.connect(self.find)
        self.status = plain(QLabel("Search a video in the timeline, choose a person, then Find."))
        row.addWidget(self.person)
        row.addWidget(self.find_btn)
        self.status.setWordWrap(True)  # a long status wraps instead of widening the dock past a small screen
        row.addWidget(self.status, 1)
        lay.addLayout(row)
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLabel("bottom", "time (s)")
        self.plot.setLabel("left", "similarity")
        lay.addWidget(self.plot, 1)
        self.setWidget(w)
        session.gallery_changed.connect(self._load_persons)

    def _load_persons(self) -> None:
        self.session.call("persons", on_result=self._fill, on_error=lambda _e: None)

    def _fill(self, records) -> None:
        current = self.person.currentData()
        self.person.clear()
        for r in records:
            self.person.addItem(r.label, r.person_id)
        i = self.person.findData(current)
        if i >= 0:
            self.person.setCurrentIndex(i)

    def find(self) -> None:
        video = self.timeline.result
        if video is None or video.error:
            self.status.setText("Search a video in the timeline first.")
            return
        if self.person.currentData() is None:
            self.status.setText("The gallery has no person to look for.")
            return
        self.status.setText(f"Looking for {self.person.currentText()}\u2026")
        self.session.call("find_in_footage", [video.query], person_id=self.person.currentData(), rate=video.rate,
                          on_result=lambda res: self.show_result(res[0]),
                          on_error=lambda e: self.status.setText(f"Failed: {error_text(e)}"))

    def show_result(self, res) -> None:
        self.result = res
        self.plot.clear()
        if res.error:
            self.status.setText(f"Failed: {error_text(res.error)}")
            return
        for sp in res.spans:
            region = pg.LinearRegionItem(values=(sp.start_s, max(sp.end_s, sp.start_s + 0.25)), movable=False,
                                         brush=pg.mkBrush(46, 160, 67, 60))
            self.plot.addItem(region)
        xs = [t for t, s in res.series if s is not None]
        ys = [s for _, s in res.series if s is not None]
        self.plot.plot(xs, ys, pen=None, symbol="o", symbolSize=4, symbolBrush=(30, 90, 200))
        if res.threshold is not None:
            self.plot.addItem(pg.InfiniteLine(pos=res.threshold, angle=0, pen=pg.mkPen((200, 60, 60), style=Qt.PenStyle.DashLine)))
        self.plot.setYRange(0.5, 1.0, padding=0.02)
        spans = ", ".join(f"{mmss(s.start_s)}\u2013{mmss(s.end_s)}" for s in res.spans[:6])
        more = f" (+{len(res.spans) - 6})" if len(res.spans) > 6 else ""
        self.status.setText(f"{res.reference}: {len(res.spans)} span(s) {spans}{more}" if res.spans
                            else f"{res.reference}: not found in this video")
