"""The central view: the query image with every face boxed, a liveness badge per face, click to select."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QGraphicsScene, QGraphicsSimpleTextItem, QGraphicsView

from .qtutil import to_pixmap

BOX = QColor("#39a0ff")
BOX_SELECTED = QColor("#ffd43b")
REAL = QColor("#2b8a3e")
SPOOF = QColor("#c92a2a")
UNCERTAIN = QColor("#e67700")  # liveness could not decide: a person should look
UNKNOWN = QColor("#495057")


class ImageView(QGraphicsView):
    face_clicked = Signal(int)
    files_dropped = Signal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setAcceptDrops(True)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setObjectName("imageView")
        self._boxes: list[QGraphicsRectItem] = []
        self._has_image = False
        self._message = "Drop a photo here, or File \u25b8 Open query (Ctrl+O)"
        self.show_message(self._message)

    # -- content ----------------------------------------------------------------------------
    def show_message(self, text: str) -> None:
        sc = self.scene()
        sc.clear()
        self._boxes = []
        self._has_image = False
        item = sc.addText(text)
        f = QFont()
        f.setPointSize(13)
        item.setFont(f)
        item.setDefaultTextColor(QColor("#adb5bd"))
        self._message = item
        self._wrap_message()
        self.resetTransform()

    def _wrap_message(self) -> None:
        """The message wraps at the view's width (a narrow window at 150 % scaling never scrolls it)."""

        item = getattr(self, "_message", None)
        if item is None or self._has_image:
            return
        try:
            if item.scene() is not self.scene():
                return
        except RuntimeError:  # the scene was cleared since: the item is gone
            self._message = None
            return
        item.setTextWidth(-1)
        if item.boundingRect().width() > self.viewport().width() - 16:
            item.setTextWidth(max(120, self.viewport().width() - 16))
        self.scene().setSceneRect(item.boundingRect())

    def showing_message(self) -> bool:
        """True when the view shows a message instead of a photo."""

        return not self._has_image

    def set_result(self, rgb, faces) -> None:
        """``faces``: the QueryResult's FaceResults (box + liveness)."""

        sc = self.scene()
        sc.clear()
        self._boxes = []
        pm = to_pixmap(rgb)
        sc.addPixmap(pm)
        sc.setSceneRect(QRectF(pm.rect()))
        self._has_image = True
        scale = max(pm.width(), pm.height()) / 600.0
        for fr in faces:
            x0, y0, x1, y1 = fr.box
            rect = sc.addRect(QRectF(x0, y0, x1 - x0, y1 - y0), QPen(BOX, max(2.0, 2.5 * scale)))
            rect.setData(0, fr.index)
            rect.setCursor(Qt.CursorShape.PointingHandCursor)
            rect.setToolTip(f"face {fr.index + 1}: click to select")
            self._boxes.append(rect)
            self._badge(fr, x0, y0, scale)
        self.fit()

    def _badge(self, fr, x0, y0, scale) -> None:
        lv = fr.liveness
        if lv is None:
            text, colour = f"{fr.index + 1} \u00b7 liveness n/a", UNKNOWN
        else:
            text = f"{fr.index + 1} \u00b7 {lv.label.upper()} {lv.score:.2f}"
            colour = {"real": REAL, "uncertain": UNCERTAIN}.get(lv.label, SPOOF)
        sc = self.scene()
        t = QGraphicsSimpleTextItem(text)
        f = QFont()
        f.setPointSizeF(max(8.0, 9.0 * scale))
        f.setBold(True)
        t.setFont(f)
        t.setBrush(QBrush(QColor("white")))
        br = t.boundingRect()
        pad = 3 * scale
        bg = sc.addRect(QRectF(0, 0, br.width() + 2 * pad, br.height() + 2 * pad), QPen(Qt.PenStyle.NoPen), QBrush(colour))
        by = y0 - br.height() - 2 * pad
        if by < 0:
            by = y0
        bg.setPos(x0, by)
        t.setParentItem(bg)
        t.setPos(pad, pad)
        bg.setData(0, fr.index)

    def select_face(self, index: int) -> None:
        for r in self._boxes:
            sel = r.data(0) == index
            pen = r.pen()
            pen.setColor(BOX_SELECTED if sel else BOX)
            r.setPen(pen)

    def fit(self) -> None:
        if self._has_image:
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    # -- events -----------------------------------------------------------------------------
    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        self.fit()
        self._wrap_message()

    def mousePressEvent(self, ev):  # noqa: N802
        if self._has_image:
            pos = self.mapToScene(ev.position().toPoint())
            for r in self._boxes:
                if r.sceneBoundingRect().contains(pos):
                    self.face_clicked.emit(int(r.data(0)))
                    return
        super().mousePressEvent(ev)

    def dragEnterEvent(self, ev):  # noqa: N802
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dragMoveEvent(self, ev):  # noqa: N802
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):  # noqa: N802
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.files_dropped.emit(paths)
            ev.acceptProposedAction()
