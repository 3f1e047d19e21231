"""Small Qt helpers: numpy RGB <-> QPixmap, face crops for display, error text, plain-text display.

User data (labels, case ids, file names, metadata, error messages that quote them) is shown as
plain text everywhere: Qt renders a QLabel, a tooltip or a message box whose text merely *looks*
like HTML as HTML, so a label ``<img src=...>`` would show a local picture. :func:`plain` sets a
label to plain text, :func:`plain_tip` escapes a tooltip, :func:`confirm` asks in a plain-text box.
Item-view texts (QListWidgetItem, QTreeWidgetItem) and window titles are plain text in Qt already.
"""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QApplication, QFrame, QLabel, QMessageBox, QScrollArea, QSizePolicy, QWidget


def to_qimage(rgb: np.ndarray) -> QImage:
    arr = np.ascontiguousarray(rgb[..., :3] if rgb.ndim == 3 else np.stack([rgb] * 3, -1)).astype(np.uint8, copy=False)
    h, w = arr.shape[:2]
    img = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return img.copy()  # own the pixels (arr may go away)


def to_pixmap(rgb: np.ndarray, max_side: int | None = None) -> QPixmap:
    pm = QPixmap.fromImage(to_qimage(rgb))
    if max_side and max(pm.width(), pm.height()) > max_side:
        pm = pm.scaled(max_side, max_side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return pm


def face_window(shape, box, margin: float = 1.6) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1): a square around the face box, ``margin`` x its size, clipped to the image."""

    h, w = shape[:2]
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(x1 - x0, y1 - y0) * margin / 2
    return max(0, int(cy - half)), max(0, int(cx - half)), min(h, int(cy + half)), min(w, int(cx + half))


def plain(*labels: QLabel) -> QLabel:
    """Show these labels' text literally, never as HTML; returns the first (for chaining)."""

    for label in labels:
        label.setTextFormat(Qt.TextFormat.PlainText)
    return labels[0]


def plain_tip(text: str) -> str:
    """A tooltip that shows ``text`` literally: escaped into rich text (line breaks kept)."""

    return "<p style='white-space:pre'>" + html.escape(str(text)).replace("\n", "<br>") + "</p>"


def confirm(parent, title: str, text: str) -> bool:
    """Yes/No question with the text shown literally (QMessageBox.question would render HTML)."""

    box = QMessageBox(QMessageBox.Icon.Question, title, text,
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    return box.exec() == QMessageBox.StandardButton.Yes


def error_text(exc) -> str:
    """One line for people from an exception or a service error dict."""

    if isinstance(exc, dict):
        return exc.get("message") or exc.get("code") or "error"
    msg = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return msg


def is_unavailable(exc) -> bool:
    """True for 'this model/feature is not installed' errors (shown as a state, not an error)."""

    from fasfinder.errors import ModelError

    return isinstance(exc, (ModelError, ImportError)) or getattr(exc, "code", "") in ("model_missing", "model_integrity")


class ImageLabel(QLabel):
    """A QLabel that shows an RGB array scaled to fit (keeps the aspect ratio on resize)."""

    def __init__(self, placeholder: str = "", min_side: int = 120, parent=None):
        super().__init__(parent)
        self._rgb = None
        self._placeholder = placeholder
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(min_side, min_side)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setWordWrap(True)
        self.setObjectName("imageLabel")
        self.setTextFormat(Qt.TextFormat.PlainText)  # placeholders may quote file names or errors
        self.clear_image(placeholder)

    def set_image(self, rgb: np.ndarray | None) -> None:
        self._rgb = rgb
        if rgb is None:
            self.clear_image(self._placeholder)
            return
        self._pix = QPixmap.fromImage(to_qimage(rgb))
        self._rescale()

    def clear_image(self, text: str = "") -> None:
        self._rgb = None
        self._pix = None
        self.setPixmap(QPixmap())
        self.setText(text)

    def _rescale(self) -> None:
        if self._pix is None:
            return
        self.setPixmap(self._pix.scaled(max(1, self.width() - 4), max(1, self.height() - 4),
                                        Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        self._rescale()


def fit_to_screen(widget, width: int, height: int, free=None) -> None:
    """Resize ``widget`` to ``width`` x ``height``, never beyond the free area ``free`` (a QRect; default:
    the widget's screen's), leaving room for the window frame and title bar (150 % scaling)."""

    if free is None:
        screen = widget.screen() or QApplication.primaryScreen()
        free = screen.availableGeometry() if screen is not None else None
    if free is None:
        widget.resize(width, height)
        return
    widget.resize(min(width, free.width()), min(height, free.height() - 40))


class _VerticalScroll(QScrollArea):
    """Scrolls up and down only: as wide as its widget needs (nothing is cut off at the side), but it may
    be much lower than the widget (a small screen, 150 % scaling) and then scrolls. The widget gets the
    viewport's width and the larger of the viewport's height and its own *minimum* height for that width
    (QScrollArea's own resizing uses the preferred height of a layout with wrapped labels: a chart would
    scroll although it fits)."""

    MIN_HEIGHT = 80

    def setWidget(self, widget) -> None:  # noqa: N802
        super().setWidget(widget)
        widget.installEventFilter(self)

    def eventFilter(self, obj, ev):  # noqa: N802
        if obj is self.widget() and ev.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the widget's minimum width changed: the dock follows
            self._fit()
        return super().eventFilter(obj, ev)

    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        self._fit()

    def minimumSizeHint(self):  # noqa: N802
        inner = self.widget().minimumSizeHint() if self.widget() is not None else super().minimumSizeHint()
        bar = self.verticalScrollBar().sizeHint().width()
        return inner.__class__(inner.width() + bar + 2 * self.frameWidth(), min(inner.height(), self.MIN_HEIGHT))

    def content_height(self, width: int | None = None) -> int:
        """The height the widget needs at ``width`` (default: the viewport's) to show without scrolling."""

        w = self.widget()
        if w is None:
            return 0
        width = max(width or self.viewport().width(), w.minimumSizeHint().width())
        lay = w.layout()
        need = w.minimumSizeHint().height()
        if lay is not None and lay.hasHeightForWidth():
            need = max(need, lay.totalMinimumHeightForWidth(width))
        return need + 2 * self.frameWidth()

    def _fit(self) -> None:
        w = self.widget()
        if w is None:
            return
        width = max(self.viewport().width(), w.minimumSizeHint().width())
        w.resize(width, max(self.viewport().height(), self.content_height(width) - 2 * self.frameWidth()))


def scrollable(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area that sizes it and scrolls up and down only: a dock holding
    it keeps the widget's minimum width but can be lower than its minimum height (a small screen, 150 %
    scaling) and scrolls instead of being cut off or pushing the window beyond the screen."""

    area = _VerticalScroll()
    area.setObjectName(f"scroll_{widget.objectName() or type(widget).__name__}")
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(widget)
    return area


def reveal(widget: QWidget) -> None:
    """Scroll the scroll area that holds ``widget`` (a dock's contents, :func:`scrollable`) until it shows."""

    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parentWidget()
    if parent is not None:
        parent.ensureWidgetVisible(widget, 0, 8)
