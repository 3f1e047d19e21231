"""Timeline dock: the face tracks of a searched video as bars over time; clicking one shows its frames and matches.

A bar per track (green: in the gallery, labelled with the top person; grey: no reliable match), on
its own row. The selected track's best faces (thumbnails with their times), its person list with the
open-set decision and liveness are shown below; "Enroll track as…" adds its best faces to a person.
"""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDockWidget, QHBoxLayout, QInputDialog, QLabel, QListWidget, QProgressBar, QPushButton,
                               QVBoxLayout, QWidget)

from ..filedialogs import choose_file
from ..qtutil import error_text, plain, to_pixmap

VIDEO_FILTER = "Videos (*.mp4 *.m4v *.mov *.avi *.mkv *.webm *.mpg *.mpeg *.wmv *.3gp *.ts *.mts);;All files (*)"
IN_GALLERY, UNKNOWN, SELECTED = (46, 160, 67), (150, 150, 150), (255, 170, 0)


def mmss(t: float) -> str:
    return f"{int(t // 60)}:{t % 60:04.1f}"


class TimelineDock(QDockWidget):
    video_searched = Signal(object)  # the VideoResult

    def __init__(self, session, parent=None):
        super().__init__("Video timeline", parent)
        self.setObjectName("dock_timeline")
        self.session = session
        self.result = None
        self.selected = None
        self.worker = None
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.open_btn = QPushButton("Open video\u2026")
        self.open_btn.clicked.connect(self.choose_video)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setVisible(False)
        self.status = plain(QLabel("Open a video (mp4, avi, mkv, mov) to see who appears when."))
        for wdg in (self.open_btn, self.cancel_btn, self.progress):
            row.addWidget(wdg)
        self.status.setWordWrap(True)  # a long status wraps instead of widening the dock past a small screen
        row.addWidget(self.status, 1)
        lay.addLayout(row)
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.hideButtons()
        self.plot.showGrid(x=True, alpha=0.2)
        self.plot.setLabel("bottom", "time (s)")
        self.plot.getAxis("left").setStyle(showValues=False)
        self.plot.scene().sigMouseClicked.connect(self._clicked)
        lay.addWidget(self.plot, 2)
        detail = QHBoxLayout()
        self.frames = QHBoxLayout()
        frames_box = QWidget()
        frames_box.setLayout(self.frames)
        detail.addWidget(frames_box, 1)
        self.matches = QListWidget()
        self.matches.setObjectName("timeline_matches")
        detail.addWidget(self.matches, 1)
        lay.addLayout(detail, 1)
        self.enroll_btn = QPushButton("Enroll track as\u2026")
        self.enroll_btn.setEnabled(False)
        self.enroll_btn.clicked.connect(self.enroll_track)
        lay.addWidget(self.enroll_btn, 0, Qt.AlignmentFlag.AlignLeft)
        self.setWidget(w)

    # -- searching ------------------------------------------------------------------------------
    def choose_video(self) -> None:
        path = choose_file(self, "Open a video", VIDEO_FILTER)
        if path:
            self.open_video(path)

    def open_video(self, path: str) -> None:
        self.cancel()
        self.path = str(path)
        self.open_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.progress.setVisible(True)
        self.progress.setValue(0)
        self.status.setText(f"Searching {Path(path).name}\u2026")
        self.worker = self.session.call("search_video", self.path, on_result=self.show_result, on_error=self._failed,
                                        on_progress=self._progress, on_finished=self._done)

    def cancel(self) -> None:
        if self.worker is not None and not self.worker.done:
            self.worker.cancel()

    def _progress(self, done, total, msg) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)

    def _done(self) -> None:
        self.open_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        self.progress.setVisible(False)

    def _failed(self, exc) -> None:
        self.status.setText(f"Failed: {error_text(exc)}")

    # -- drawing --------------------------------------------------------------------------------
    def show_result(self, result) -> None:
        self.result = result
        self.plot.clear()
        self._clear_detail()
        if result.error:
            self.status.setText(f"{Path(result.query).name}: {error_text(result.error)} [{result.error['code']}]")
            return
        known = sum(1 for t in result.tracks if t.decision is not None and t.decision.in_gallery)
        warn = f" \u00b7 {result.warnings[0]}" if result.warnings else ""
        self.status.setText(f"{Path(result.query).name}: {len(result.tracks)} tracks, {known} in the gallery, "
                            f"{result.video['duration_s']:.0f} s at {result.rate:g} frames/s{warn}")
        self._bars = []
        for row, t in enumerate(result.tracks):
            self._bars.append(self._bar(row, t, selected=False))
        self.plot.setXRange(0, max(result.video["duration_s"], 1.0), padding=0.02)
        self.plot.setYRange(-0.7, max(len(result.tracks), 1) - 0.3, padding=0)
        self.video_searched.emit(result)
        if result.tracks:
            self.select_track(0)

    def _bar(self, row: int, t, selected: bool):
        inside = t.decision is not None and t.decision.in_gallery
        colour = SELECTED if selected else IN_GALLERY if inside else UNKNOWN
        end = max(t.end_s, t.start_s + 0.5 / (self.result.rate or 2.0))
        bar = pg.BarGraphItem(x0=[t.start_s], x1=[end], y=[row], height=0.7, brush=pg.mkBrush(*colour),
                              pen=pg.mkPen(30, 30, 30))
        self.plot.addItem(bar)
        name = t.persons[0].label if inside and t.persons else "unknown"
        text = pg.TextItem(f"#{t.track} {name}", color=(20, 20, 20), anchor=(0, 0.5))
        text.setPos(t.start_s, row)
        self.plot.addItem(text)
        return bar, text

    def _clicked(self, ev) -> None:
        if self.result is None or not self.result.tracks:
            return
        p = self.plot.getPlotItem().vb.mapSceneToView(ev.scenePos())
        row = int(round(p.y()))
        if 0 <= row < len(self.result.tracks):
            t = self.result.tracks[row]
            if t.start_s - 1.0 <= p.x() <= t.end_s + 1.0:
                self.select_track(row)

    def select_track(self, row: int) -> None:
        tracks = self.result.tracks
        if self.selected is not None and self.selected < len(tracks):
            for item in self._bars[self.selected]:
                self.plot.removeItem(item)
            self._bars[self.selected] = self._bar(self.selected, tracks[self.selected], selected=False)
        for item in self._bars[row]:
            self.plot.removeItem(item)
        self._bars[row] = self._bar(row, tracks[row], selected=True)
        self.selected = row
        self._show_detail(tracks[row])

    def _clear_detail(self) -> None:
        self.selected = None
        while self.frames.count():
            item = self.frames.takeAt(0)
            widget = item.widget()
            if widget is not None:
                widget.setParent(None)  # gone from the dock now, not at the next deferred delete
                widget.deleteLater()
        self.matches.clear()
        self.enroll_btn.setEnabled(False)

    def _show_detail(self, t) -> None:
        keep = self.selected
        self._clear_detail()
        self.selected = keep
        for thumb, when in zip(t.thumbnails, t.best_times):
            lab = QLabel()
            lab.setPixmap(to_pixmap(thumb, 96))
            cap = plain(QLabel(mmss(when)))
            box = QVBoxLayout()
            box.addWidget(lab)
            box.addWidget(cap)
            holder = QWidget()
            holder.setLayout(box)
            self.frames.addWidget(holder)
        self.frames.addStretch(1)
        d = t.decision
        verdict = "in the gallery" if d is not None and d.in_gallery else "no reliable match in the gallery"
        live = f", liveness {t.liveness.label} ({t.liveness.score:.2f})" if t.liveness is not None else ""
        self.matches.addItem(f"Track {t.track}: {mmss(t.start_s)}\u2013{mmss(t.end_s)}, {t.faces} faces, {verdict}{live}")
        for m in t.persons:
            conf = f", confidence {m.confidence:.2f}" if m.confidence is not None else ""
            self.matches.addItem(f"#{m.rank} {m.label}  similarity {m.similarity:.3f}{conf}")
        self.enroll_btn.setEnabled(True)

    # -- enrollment -----------------------------------------------------------------------------
    def enroll_track(self) -> None:
        if self.result is None or self.selected is None:
            return
        t = self.result.tracks[self.selected]
        guess = t.persons[0].label if t.persons and t.decision is not None and t.decision.in_gallery else ""
        label, ok = QInputDialog.getText(self, "Enroll track", f"Add the {len(t.thumbnails)} best faces of track "
                                         f"{t.track} to the person:", text=guess)
        if ok and label.strip():
            self.session.call("enroll_video", self.result.query, t.track, label=label.strip(), rate=self.result.rate,
                              on_result=self._enrolled)

    def _enrolled(self, results) -> None:
        bad = [r for r in results if r.error]
        self.status.setText(f"Enrolled {len(results) - len(bad)} face(s)" + (f", {len(bad)} failed" if bad else ""))
        self.session.gallery_changed.emit()
