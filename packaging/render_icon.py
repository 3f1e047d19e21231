"""Render resources/icons/app.svg to a square PNG (for the .deb, and for PyInstaller's .ico/.icns).

    python packaging/render_icon.py OUT.png [SIDE]

Uses Qt's SVG renderer on a QImage (no window, no display needed).
"""

from __future__ import annotations

import sys
from pathlib import Path

SVG = Path(__file__).resolve().parent.parent / "resources" / "icons" / "app.svg"


def render(out: Path, side: int = 256, svg: Path = SVG) -> Path:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"render_icon: {svg} is not a valid SVG")
    image = QImage(side, side, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(out)):
        raise SystemExit(f"render_icon: cannot write {out}")
    return out


if __name__ == "__main__":
    render(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 256)
