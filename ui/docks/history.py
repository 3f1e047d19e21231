"""History dock: past queries; double-click (or Reopen) opens the case record with the results as they
were recorded (decisions, report); "Search again now" there runs the photo as a new query."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDockWidget, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from ..case_record import CaseRecordDialog
from ..qtutil import plain, plain_tip

ROLE = Qt.ItemDataRole.UserRole + 1


def summary(entry: dict) -> str:
    res = entry.get("results") or {}
    faces = res.get("faces") or []
    tops = [f["matches"][0] for f in faces if f.get("matches")]
    top = f"{tops[0]['label']} ({tops[0]['similarity']:.2f})" if tops else ("error" if res.get("error") else "no match")
    when = entry["created_at"][:16].replace("T", " ")
    return f"{Path(entry['query_path']).name}\n{when} \u00b7 {len(faces)} face(s) \u00b7 {top}"


class HistoryDock(QDockWidget):
    reopen = Signal(str)

    def __init__(self, session, parent=None):
        super().__init__("History", parent)
        self.setObjectName("dock_history")
        self.session = session
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        self.list = QListWidget()
        self.list.itemDoubleClicked.connect(self._reopen_item)
        lay.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.reopen_btn = QPushButton("Reopen")
        self.reopen_btn.clicked.connect(lambda _c=False: self._reopen_item(self.list.currentItem()))
        row.addWidget(self.reopen_btn)
        row.addStretch(1)
        lay.addLayout(row)
        self.status = QLabel("")
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        plain(self.status)  # quotes file names and labels: never HTML
        self.setWidget(w)
        session.history_changed.connect(self.refresh)
        session.gallery_changed.connect(self.refresh)

    def refresh(self) -> None:
        self.session.call("history", 100, on_result=self._populate)

    def _populate(self, entries) -> None:
        self.list.clear()
        for e in entries:
            item = QListWidgetItem(summary(e))
            item.setData(ROLE, e)
            item.setToolTip(plain_tip(f"{e['query_path']}\nby {e['user']} with {e['engine']}"))
            self.list.addItem(item)
        self.status.setText(f"{len(entries)} past queries" if entries else "No queries yet.")

    def _reopen_item(self, item):
        if item is None:
            return None
        self.record = CaseRecordDialog(self.session, item.data(ROLE), self)
        self.record.search_again.connect(self.reopen.emit)
        self.record.open()
        return self.record
