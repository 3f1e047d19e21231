"""Severity curves dock: top-match similarity (or liveness score) vs occlusion / brightness / noise."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import (QComboBox, QDockWidget, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout,
                               QWidget)

from fasfinder.service import SEVERITY_SWEEPS

from ..dock_export import ExportRow
from ..qtutil import error_text, is_unavailable, plain

KINDS = [("occlusion", "Occlusion (area fraction)"), ("brightness", "Brightness (factor)"), ("noise", "Noise (\u03c3)")]
TICKS = {"occlusion": (0.2, 0.1), "brightness": (0.2, 0.1), "noise": (0.1, 0.05)}  # (major, minor) x tick spacing


class SeverityDock(QDockWidget):
    def __init__(self, session, parent=None):
        super().__init__("Severity curves", parent)
        self.setObjectName("dock_severity")
        self.session = session
        self.worker = None
        self.curves = None
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.target = QComboBox()
        self.target.addItem("Similarity to top match", "similarity")
        self.target.addItem("Liveness score", "liveness")
        self.region = QComboBox()
        self.region.addItem("Perturb face", "face")
        self.region.addItem("Perturb whole image", "image")
        self.compute_btn = QPushButton("Compute")
        self.compute_btn.clicked.connect(self.compute)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.setVisible(False)
        for combo in (self.target, self.region):  # may shrink on a small or 150 % screen (the list shows full names)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
        for wdg in (self.target, self.region, self.compute_btn, self.cancel_btn, self.progress):
            row.addWidget(wdg)
        row.addStretch(1)
        lay.addLayout(row)
        self.graphs = pg.GraphicsLayoutWidget()
        self.plots = {}
        for i, (kind, title) in enumerate(KINDS):
            p = self.graphs.addPlot(row=0, col=i)
            p.setTitle(title, size="9pt")
            p.setMenuEnabled(False)
            p.setMouseEnabled(False, False)
            p.hideButtons()
            p.showGrid(x=True, y=True, alpha=0.2)
            p.getAxis("left").enableAutoSIPrefix(False)
            p.getAxis("left").setWidth(52)
            p.setYRange(0, 1, padding=0.02)
            values = SEVERITY_SWEEPS[kind]  # the sweep's own range, also before anything is computed
            p.setXRange(min(values), max(values), padding=0.05)
            p.getAxis("bottom").setTickSpacing(*TICKS[kind])  # few labels: the noise plot is the narrowest
            self.plots[kind] = p
        lay.addWidget(self.graphs, 1)
        self.status = plain(QLabel("Computed on demand for the selected face (about 20 re-embeddings)."))
        self.status.setWordWrap(True)
        self.status.setObjectName("hint")
        self.export = ExportRow("severity-curves", self.graphs, self.table, self.status.setText)
        lay.addWidget(self.export)
        lay.addWidget(self.status)
        self.setWidget(w)
        session.face_selected.connect(self._reset)

    def _reset(self, *_):
        self.cancel()
        self.curves = None
        for p in self.plots.values():
            p.clear()
        self.status.setText("Computed on demand for the selected face (about 20 re-embeddings).")

    def compute(self) -> None:
        fr, res = self.session.face, self.session.result
        if fr is None:
            self.status.setText("Select a face first.")
            return
        target = self.target.currentData()
        face_id = fr.matches[0].face_id if fr.matches else None
        if target == "similarity" and face_id is None:
            self.status.setText("No gallery match to compare against.")
            return
        self.cancel()
        self.compute_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.progress.setVisible(True)
        self.progress.setValue(0)
        self.status.setText("Computing\u2026")
        self.worker = self.session.call("severity", res.sha256, fr.index, face_id, target=target, path=res.query, lane="explain",
                                        region=self.region.currentData(), on_result=self._ready,
                                        on_error=self._failed, on_progress=self._progress, on_finished=self._done)

    def cancel(self) -> None:
        if self.worker is not None and not self.worker.done:
            self.worker.cancel()

    def _progress(self, done, total, msg) -> None:
        self.progress.setMaximum(total)
        self.progress.setValue(done)
        self.status.setText(f"Computing\u2026 {msg}")

    def _done(self) -> None:
        self.compute_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        self.progress.setVisible(False)

    def _failed(self, exc) -> None:
        if getattr(exc, "code", "") == "cancelled":
            self.status.setText("Cancelled.")
        elif is_unavailable(exc):
            self.status.setText(f"Not available: {error_text(exc)}")
        else:
            self.status.setText(f"Failed: {error_text(exc)}")

    def table(self):
        """(header, rows) of the curves shown: kind, severity, value (and the unperturbed baseline)."""

        if self.curves is None:
            return None
        rows = [[kind, x, y] for kind, pts in self.curves.curves.items() for x, y in pts]
        return ["perturbation", "severity", self.curves.target, "baseline"], [r + [self.curves.baseline] for r in rows]

    def _ready(self, curves) -> None:
        self.curves = curves
        label = "similarity" if curves.target == "similarity" else "liveness score"
        for kind, p in self.plots.items():
            p.clear()
            p.setLabel("left", "similarity" if curves.target == "similarity" else "P(real)")
            pts = curves.curves.get(kind, [])
            if not pts:
                continue
            xs, ys = zip(*pts)
            # fixed scales: 0-1 (similarities of a face with itself under damage stay above 0; a curve that
            # falls below gets -1-1), so a change of 0.01 looks like 0.01 and plots compare with each other
            p.setYRange(-1 if min(ys) < 0 else 0, 1, padding=0.02)
            p.plot(xs, ys, pen=pg.mkPen("#4dabf7", width=2), symbol="o", symbolSize=6, symbolBrush="#4dabf7")
            p.addLine(y=curves.baseline, pen=pg.mkPen("#adb5bd", style=pg.QtCore.Qt.PenStyle.DashLine))
        self.status.setText(f"{label} vs severity ({curves.region}; baseline {curves.baseline:.3f}; "
                            f"occlusion averaged over 3 seeds; engine {curves.engine}).")
