"""Export PNG / CSV buttons of the analyst docks, and the heatmap colour bar."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from fasfinder.results import overlay

from .filedialogs import choose_save
from .qtutil import to_pixmap


def write_csv(path: str, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


class ExportRow(QWidget):
    """"Export PNG…" (a picture of ``target``) and "Export CSV…" (``table()`` -> (header, rows) or None)."""

    def __init__(self, name: str, target: QWidget, table: Callable[[], tuple[list[str], list[list]] | None],
                 status: Callable[[str], None], parent=None):
        super().__init__(parent)
        self.name, self.target, self.table, self.status = name, target, table, status
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.png_btn = QPushButton("Export PNG\u2026")
        self.png_btn.clicked.connect(lambda _c=False: self.export_png())
        self.csv_btn = QPushButton("Export CSV\u2026")
        self.csv_btn.clicked.connect(lambda _c=False: self.export_csv())
        lay.addWidget(self.png_btn)
        lay.addWidget(self.csv_btn)
        lay.addStretch(1)

    def export_png(self, path: str | None = None) -> str | None:
        path = path or choose_save(self, "Export a picture", f"{self.name}.png", "PNG image (*.png)")
        if not path:
            return None
        ok = self.target.grab().save(str(Path(path).with_suffix(".png")))
        self.status("Saved " + str(Path(path).with_suffix(".png")) if ok else f"Could not write {path}")
        return str(Path(path).with_suffix(".png")) if ok else None

    def export_csv(self, path: str | None = None) -> str | None:
        data = self.table()
        if data is None:
            self.status("Nothing to export yet.")
            return None
        path = path or choose_save(self, "Export the values", f"{self.name}.csv", "CSV table (*.csv)")
        if not path:
            return None
        path = str(Path(path).with_suffix(".csv"))
        try:
            write_csv(path, *data)
        except OSError as exc:
            self.status(f"Could not write {path}: {exc}")
            return None
        self.status(f"Saved {path}")
        return path


def colour_bar(width: int = 180, height: int = 12) -> QWidget:
    """The heatmap's colour scale (the very colours ``overlay`` paints): 0 = no attention, 1 = the most."""

    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    bar = QLabel()
    bar.setPixmap(to_pixmap(overlay(np.zeros((height, width, 3), np.uint8), ramp, alpha=1.0)))
    w = QWidget()
    lay = QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(QLabel("0 low"))
    lay.addWidget(bar)
    lay.addWidget(QLabel("1 high attention"))
    lay.addStretch(1)
    w.bar = bar
    return w
