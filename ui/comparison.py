"""The comparison window: query face and candidate face side by side at the same scale (aligned chips
and the full photos), zoom (wheel, +/-) and pan (drag) on both at once, the per-match heatmap off by
default with a toggle and a colour bar, and the candidate's other photos and metadata beside it.

Opened by a double-click on a candidate (Matches dock); everything comes from the service API:
``face_crops``, ``thumbnails``, ``person`` and ``explain_match``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (QCheckBox, QDialog, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView,
                               QGridLayout, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton,
                               QVBoxLayout, QWidget)

from fasfinder.results import overlay

from .qtutil import error_text, face_window, plain, to_pixmap

CHIP = 360  # both chips are drawn at this size: the same scale for query and candidate
PHOTO = 420


def colour_bar(width: int = 160, height: int = 14) -> np.ndarray:
    """The heatmap's colours, low (left) to high (right), as an RGB image."""

    ramp = np.repeat(np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :], height, axis=0)
    return overlay(np.zeros((height, width, 3), np.uint8), ramp, 1.0)


def resized(rgb: np.ndarray, side: int) -> np.ndarray:
    """``rgb`` scaled to ``side`` x ``side`` (nearest; chips are square), so both share one scale."""

    h, w = rgb.shape[:2]
    ys = (np.arange(side) * h / side).astype(int)
    xs = (np.arange(side) * w / side).astype(int)
    return np.ascontiguousarray(rgb[ys][:, xs])


class ZoomView(QGraphicsView):
    """One picture with wheel zoom and drag pan; ``partner`` views follow its zoom and scroll."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.item = QGraphicsPixmapItem()
        self.scene().addItem(self.item)
        self.partners: list[ZoomView] = []
        self.zoom = 1.0
        self.horizontalScrollBar().valueChanged.connect(lambda v: [p.horizontalScrollBar().setValue(v) for p in self.partners])
        self.verticalScrollBar().valueChanged.connect(lambda v: [p.verticalScrollBar().setValue(v) for p in self.partners])

    def set_image(self, rgb: np.ndarray | None) -> None:
        if rgb is None:
            return
        self.item.setPixmap(to_pixmap(rgb))
        self.scene().setSceneRect(self.item.boundingRect())

    def set_zoom(self, zoom: float, follow: bool = True) -> None:
        self.zoom = min(8.0, max(0.25, zoom))
        self.resetTransform()
        self.scale(self.zoom, self.zoom)
        if follow:
            for p in self.partners:
                p.set_zoom(self.zoom, follow=False)

    def wheelEvent(self, ev):  # noqa: N802
        self.set_zoom(self.zoom * (1.25 if ev.angleDelta().y() > 0 else 0.8))


class ComparisonWindow(QDialog):
    def __init__(self, session, result, face, match, parent=None):
        super().__init__(parent)
        self.setObjectName("comparison")
        self.setWindowTitle(f"Compare: query face {face.index + 1} and {match.label}")
        self.session, self.result, self.face, self.match = session, result, face, match
        self.crop: np.ndarray | None = None
        self.explained = None
        #: the candidate photo compared now: the matched one, or another photo of the person (clicked)
        self.shown_photo: str | None = None  # the candidate photo drawn in the lower right view
        self.compared = {"image_id": int(match.record_id), "face_id": int(match.face_id), "image": match.image,
                         "similarity": float(match.similarity)}
        y0, x0, y1, x1 = face_window(result.pixels.shape, face.box)
        self.q_chip = result.pixels[y0:y1, x0:x1]
        self.q_window = (y0, x0, y1, x1)
        self.q_view, self.c_view = ZoomView(), ZoomView()
        self.q_photo, self.c_photo = ZoomView(), ZoomView()
        for a, b in ((self.q_view, self.c_view), (self.q_photo, self.c_photo)):
            a.partners, b.partners = [b], [a]
        grid = QGridLayout()
        self.q_caption = QLabel(f"Query: {str(result.query).replace(chr(92), '/').rsplit('/', 1)[-1]}")
        self.q_caption.setToolTip(str(result.query))
        self.c_caption = QLabel(f"Candidate: {match.label}  (similarity {match.similarity:.3f})")
        for c in (self.q_caption, self.c_caption):
            c.setWordWrap(True)
        grid.addWidget(self.q_caption, 0, 0)
        grid.addWidget(self.c_caption, 0, 1)
        grid.addWidget(self.q_view, 1, 0)
        grid.addWidget(self.c_view, 1, 1)
        grid.addWidget(QLabel("Full photos"), 2, 0, 1, 2)
        grid.addWidget(self.q_photo, 3, 0)
        grid.addWidget(self.c_photo, 3, 1)
        grid.setRowStretch(1, 3)
        grid.setRowStretch(3, 2)
        controls = QHBoxLayout()
        self.heatmap = QCheckBox("Heatmap")
        self.heatmap.setChecked(False)
        self.heatmap.toggled.connect(self._draw_chips)
        self.bar = QLabel()
        self.bar.setPixmap(to_pixmap(colour_bar()))
        self.bar_caption = QLabel("0 (low) \u2192 1 (high) contribution to the match")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        for text, factor in (("Zoom in", 1.25), ("Zoom out", 0.8)):
            b = QPushButton(text)
            b.clicked.connect(lambda _=False, f=factor: self.q_view.set_zoom(self.q_view.zoom * f))
            controls.addWidget(b)
        fit = QPushButton("Fit")
        fit.clicked.connect(lambda: self.q_view.set_zoom(1.0))
        controls.addWidget(fit)
        controls.addWidget(self.heatmap)
        controls.addStretch(1)
        legend = QHBoxLayout()  # a row of its own: the window stays narrow enough for 150 % scaling
        legend.addWidget(self.bar)
        legend.addWidget(self.bar_caption, 1)
        self.bar_caption.setWordWrap(True)
        left = QVBoxLayout()
        left.addLayout(grid, 1)
        left.addLayout(controls)
        left.addLayout(legend)
        left.addWidget(self.status)
        side = QVBoxLayout()
        self.meta = QLabel("")
        self.meta.setWordWrap(True)
        self.meta.setObjectName("candidateMetadata")
        self.others = QListWidget()
        self.others.setObjectName("candidatePhotos")
        self.others.setIconSize(QSize(96, 96))  # a list: icon and file name per row, never overlapping
        self.others.setToolTip("Click a photo to compare the query face with it")
        self.others.itemClicked.connect(self._photo_clicked)
        side.addWidget(QLabel("Candidate"))
        side.addWidget(self.meta)
        photos_caption = QLabel("Photos of this person (click one to compare)")
        photos_caption.setWordWrap(True)
        side.addWidget(photos_caption)
        side.addWidget(self.others, 1)
        plain(self.q_caption, self.c_caption, self.bar_caption, self.status, self.meta)
        panel = QWidget()
        panel.setLayout(side)
        panel.setMinimumWidth(240)
        panel.setMaximumWidth(360)
        top = QHBoxLayout(self)
        top.addLayout(left, 1)
        top.addWidget(panel)
        self.bar.setVisible(False)
        self.bar_caption.setVisible(False)
        self.q_photo.set_image(result.pixels)
        self._draw_chips()
        self._load()

    # -- data -----------------------------------------------------------------------------------
    def _load(self) -> None:
        m = self.match
        self.session.call("face_crops", [m.face_id], on_result=self._got_crop)
        self._show_photo(m.image)
        self.session.call("person", m.person_id, on_result=self._got_person,
                          on_error=lambda e: self.meta.setText(f"Not in the gallery any more: {error_text(e)}"))

    def _got_crop(self, crops) -> None:
        self.crop = crops[0] if crops else None
        self._draw_chips()

    def _got_person(self, person) -> None:
        fields = [f"{k}: {v}" for k, v in sorted((person.metadata or {}).items())]
        self.meta.setText("\n".join([person.label, f"Case: {person.case_id or '(none)'}",
                                     f"{len(person.images)} photo(s) in the gallery", *fields]))
        matched = int(self.match.record_id)
        photos = sorted(person.images, key=lambda im: int(im["id"]) != matched)  # the matched photo first
        self.photos = photos
        for im in photos:
            name = str(im["path"]).replace("\\", "/").rsplit("/", 1)[-1]
            item = QListWidgetItem(f"{name}\n(the matched photo)" if int(im["id"]) == matched else name)
            item.setData(Qt.ItemDataRole.UserRole, int(im["id"]))
            self.others.addItem(item)
        self.others.setCurrentRow(0)
        if photos:
            self.session.call("thumbnails", [im["path"] for im in photos], 96, on_result=self._thumbs)

    def _thumbs(self, thumbs) -> None:
        for i, t in enumerate(thumbs):
            if t is not None and self.others.item(i) is not None:
                self.others.item(i).setIcon(to_pixmap(t))

    def _photo_clicked(self, item) -> None:
        self.compare_with(int(item.data(Qt.ItemDataRole.UserRole)))

    def compare_with(self, image_id: int) -> None:
        """Compare the query face with gallery photo ``image_id`` of the candidate: its face chip and full
        photo, and the score of its stored embedding against the query face (``compare_photo``)."""

        if image_id == self.compared["image_id"]:
            return
        self.status.setText("Comparing with the other photo\u2026")
        res = self.result
        self.session.call("compare_photo", res.sha256, self.face.index, image_id, path=res.query,
                          on_result=self._got_photo,
                          on_error=lambda e: self.status.setText(f"Cannot compare with that photo: {error_text(e)}"))

    def _got_photo(self, out: dict) -> None:
        self.compared = {k: out[k] for k in ("image_id", "face_id", "image", "similarity")}
        self.crop = out["crop"]
        self.explained = None  # the per-match maps belong to the photo compared
        matched = " (the matched photo)" if out["image_id"] == int(self.match.record_id) else ""
        self.c_caption.setText(f"Candidate: {self.match.label}  (similarity {out['similarity']:.3f}{matched})")
        self.status.setText(f"Compared with {str(out['image']).replace(chr(92), '/').rsplit('/', 1)[-1]}: "
                            f"similarity {out['similarity']:.3f}")
        self._show_photo(out["image"])
        self._draw_chips()

    def _show_photo(self, path: str) -> None:
        """The candidate's full photo ``path`` in the lower right view (``shown_photo`` once it is there)."""

        def shown(thumbs, path=path):
            if path == self.compared["image"]:
                self.c_photo.set_image(thumbs[0])
                self.shown_photo = path

        self.session.call("thumbnails", [path], PHOTO * 2, on_result=shown)

    # -- drawing --------------------------------------------------------------------------------
    def _draw_chips(self) -> None:
        on = self.heatmap.isChecked()
        self.bar.setVisible(on)
        self.bar_caption.setVisible(on)
        if on and self.explained is None:
            self.status.setText("Computing the per-match heatmaps\u2026")
            res, fr = self.result, self.face
            fid = self.compared["face_id"]
            self.session.call("explain_match", res.sha256, fr.index, fid, path=res.query,
                              on_result=lambda v, fid=fid: fid == self.compared["face_id"] and self._got_explained(v),
                              on_error=lambda e: self.status.setText(f"Heatmaps not available: {error_text(e)}"))
        q, c = self.q_chip, self.crop
        if on and self.explained is not None:
            y0, x0, y1, x1 = self.q_window
            q = overlay(q, self.explained.query.heatmap[y0:y1, x0:x1], 0.45)
            if c is not None:
                c = overlay(c, self.explained.gallery.heatmap, 0.45)
        side = min(CHIP, max(160, self.screen().availableGeometry().height() // 3))  # fits at 150 % too
        self.q_view.set_image(resized(q, side))
        if c is not None:
            self.c_view.set_image(resized(c, side))

    def _got_explained(self, value) -> None:
        self.explained = value
        self.status.setText(f"Per-match Grad-CAM++ ({value.query.layer}); cos = {value.query.score:.3f}")
        self._draw_chips()
