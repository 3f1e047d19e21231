"""Heatmap dock: a model's attention on the selected face, with an opacity slider and a source selector."""

from __future__ import annotations

import numpy as np

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDockWidget, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from fasfinder.results import overlay

from ..dock_export import ExportRow, colour_bar
from ..qtutil import ImageLabel, error_text, face_window, is_unavailable, plain

SOURCES = [
    ("face", "Recognition \u2013 face attention"),
    ("match", "Recognition \u2013 selected match"),
    ("fas", "Liveness (FAS) model"),
]


class HeatmapDock(QDockWidget):
    def __init__(self, session, parent=None):
        super().__init__("Heatmap", parent)
        self.setObjectName("dock_heatmap")
        self.session = session
        self._heat = None
        self._token = 0
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        row.addWidget(QLabel("Source"))
        self.source = QComboBox()
        for key, text in SOURCES:
            self.source.addItem(text, key)
        self.source.currentIndexChanged.connect(self.refresh)
        row.addWidget(self.source, 1)
        lay.addLayout(row)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.opacity.valueChanged.connect(self._redraw)
        row2.addWidget(self.opacity, 1)
        self.opacity_value = QLabel("45%")
        self.opacity_value.setMinimumWidth(36)
        row2.addWidget(self.opacity_value)
        lay.addLayout(row2)
        self.view = ImageLabel("Select a face to see where the model looks.", 140)
        lay.addWidget(self.view, 1)
        self.colour_bar = colour_bar()
        lay.addWidget(self.colour_bar)
        self.export = ExportRow("heatmap", self.view, self.table, lambda t: self.status.setText(t))
        lay.addWidget(self.export)
        self.status = plain(QLabel(""))
        self.status.setWordWrap(True)
        self.status.setObjectName("hint")
        lay.addWidget(self.status)
        self.setWidget(w)
        session.face_selected.connect(lambda _i: self.refresh())
        session.match_explained.connect(self._on_match_explained)
        session.result_changed.connect(self._on_result)

    def table(self):
        """(header, rows) of the heatmap (values 0-1, one row per pixel row of the photo) or None."""

        if self._heat is None:
            return None
        h = np.asarray(self._heat, dtype=float)
        return ["row"] + [f"x{i}" for i in range(h.shape[1])], [[y] + [round(v, 4) for v in r] for y, r in enumerate(h)]

    @property
    def kind(self) -> str:
        return self.source.currentData()

    def _on_result(self, result) -> None:
        if result is None or result.error or not result.faces:
            self._heat = None
            self.view.clear_image("Select a face to see where the model looks.")
            self.status.setText("")

    def refresh(self) -> None:
        self._token += 1
        fr = self.session.face
        if fr is None:
            return
        kind = self.kind
        if kind == "match":
            done = self.session.match_explanation
            if self.session.match is None:
                self._show_state("Select a match in the Matches dock.")
            elif done is not None and done[0] is self.session.match:
                self._on_match_explained(*done)
            else:
                self._show_state("Waiting for the per-match heatmap (Matches dock)\u2026")
            return
        token = self._token
        self._show_state("Computing\u2026")
        self.session.explanation(kind, lambda v, t=token: self._ready(t, v), lambda e, t=token: self._failed(t, e))

    def _on_match_explained(self, match, value) -> None:
        if self.kind != "match" or match is not self.session.match:
            return
        q = value.query
        self._ready(self._token, (q.heatmap, q.regions, f"recognition model, per-match ({q.layer})"))

    def _ready(self, token, value) -> None:
        if token != self._token:
            return
        self._heat = value[0]
        self.status.setText(f"Source: {value[2]}.")
        self._redraw()

    def _failed(self, token, exc) -> None:
        if token != self._token:
            return
        self._heat = None
        if is_unavailable(exc):
            self._show_state(f"Not available: {error_text(exc)}")
        else:
            self._show_state(f"Could not compute the heatmap: {error_text(exc)}")

    def _show_state(self, text: str) -> None:
        self._heat = None
        self.view.clear_image(text)
        self.status.setText("")

    def _redraw(self, *_):
        self.opacity_value.setText(f"{self.opacity.value()}%")
        res, fr = self.session.result, self.session.face
        if self._heat is None or fr is None:
            return
        y0, x0, y1, x1 = face_window(res.pixels.shape, fr.box)
        self.view.set_image(overlay(res.pixels[y0:y1, x0:x1], self._heat[y0:y1, x0:x1], self.opacity.value() / 100.0))
