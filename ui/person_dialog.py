"""The person form (Add person / Edit): name, case id, date missing, notes and free fields (no JSON)."""

from __future__ import annotations

from PySide6.QtCore import QDate
from PySide6.QtWidgets import (QCheckBox, QDateEdit, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QPlainTextEdit, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from .qtutil import plain

#: Metadata keys the form shows as their own fields (everything else is a free field).
DATE_KEY, NOTES_KEY = "date_missing", "notes"


class FieldsTable(QWidget):
    """Free metadata fields as a two-column table (name, value) with Add / Remove."""

    def __init__(self, fields: dict, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Field", "Value"])
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(110)
        lay.addWidget(self.table)
        row = QHBoxLayout()
        self.add_btn = QPushButton("Add field")
        self.add_btn.clicked.connect(lambda _c=False: self.add_row())
        self.remove_btn = QPushButton("Remove field")
        self.remove_btn.clicked.connect(lambda _c=False: self.table.removeRow(max(self.table.currentRow(), 0))
                                        if self.table.rowCount() else None)
        row.addWidget(self.add_btn)
        row.addWidget(self.remove_btn)
        row.addStretch(1)
        lay.addLayout(row)
        for k, v in fields.items():
            self.add_row(str(k), v if isinstance(v, str) else str(v))

    def add_row(self, key: str = "", value: str = "") -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        self.table.setItem(r, 0, QTableWidgetItem(key))
        self.table.setItem(r, 1, QTableWidgetItem(value))

    def values(self) -> tuple[dict, str | None]:
        """(fields, problem): a field needs a name and names must differ."""

        out = {}
        for r in range(self.table.rowCount()):
            key = (self.table.item(r, 0).text() if self.table.item(r, 0) else "").strip()
            value = (self.table.item(r, 1).text() if self.table.item(r, 1) else "").strip()
            if not key and not value:
                continue
            if not key:
                return {}, f"The field in row {r + 1} has a value but no name."
            if key in out or key in (DATE_KEY, NOTES_KEY):
                return {}, f"There are two fields called \u201c{key}\u201d."
            out[key] = value
        return out, None


class PersonDialog(QDialog):
    """Add a person (``record=None``) or edit one; ``values`` holds label, case_id and metadata on accept."""

    def __init__(self, record=None, parent=None, *, labels: set[str] | None = None):
        super().__init__(parent)
        self.record = record
        self.labels = set(labels or ())  # other persons' labels: an existing one is a merge, asked for by the caller
        meta = dict(record.metadata or {}) if record is not None else {}
        self.setWindowTitle(f"Edit {record.label}" if record is not None else "Add person")
        self.setMinimumWidth(460)
        form = QFormLayout(self)
        self.label = QLineEdit(record.label if record is not None else "")
        self.label.setPlaceholderText("Full name as in the case file")
        self.case = QLineEdit((record.case_id or "") if record is not None else "")
        self.case.setPlaceholderText("e.g. MP-2026-0142")
        self.has_date = QCheckBox("known")
        self.date = QDateEdit()
        self.date.setCalendarPopup(True)
        self.date.setDisplayFormat("yyyy-MM-dd")
        d = QDate.fromString(str(meta.pop(DATE_KEY, "")), "yyyy-MM-dd")
        self.has_date.setChecked(d.isValid())
        self.date.setDate(d if d.isValid() else QDate.currentDate())
        self.date.setEnabled(d.isValid())
        self.has_date.toggled.connect(self.date.setEnabled)
        drow = QHBoxLayout()
        drow.addWidget(self.has_date)
        drow.addWidget(self.date, 1)
        self.notes = QPlainTextEdit(str(meta.pop(NOTES_KEY, "")))
        self.notes.setPlaceholderText("Description, circumstances, contacts\u2026")
        self.notes.setMaximumHeight(90)
        self.fields = FieldsTable(meta)
        form.addRow("Name", self.label)
        form.addRow("Case ID", self.case)
        form.addRow("Date missing", drow)
        form.addRow("Notes", self.notes)
        form.addRow("Other fields", self.fields)
        self.error = QLabel("")
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        plain(self.error)  # quotes the user's text
        form.addRow(self.error)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        box.accepted.connect(self._accept)
        box.rejected.connect(self.reject)
        form.addRow(box)
        self.values: dict = {}

    def _accept(self) -> None:
        label = " ".join(self.label.text().split())
        if not label:
            self.error.setText("The name cannot be empty.")
            return
        fields, problem = self.fields.values()
        if problem:
            self.error.setText(problem)
            return
        meta = dict(fields)
        if self.has_date.isChecked():
            meta[DATE_KEY] = self.date.date().toString("yyyy-MM-dd")
        if self.notes.toPlainText().strip():
            meta[NOTES_KEY] = self.notes.toPlainText().strip()
        self.values = {"label": label, "case_id": self.case.text().strip(), "metadata": meta}
        self.accept()
