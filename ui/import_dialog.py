"""The import dialog of a dropped or chosen folder: how its photos become persons, with a preview.

The plan (what will be created, what is skipped and why) comes from the ``plan_import`` operation;
the dialog only shows it and hands the accepted plan to the ``import_plan`` operation (gallery dock).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHeaderView, QLabel,
                               QLineEdit, QRadioButton, QSplitter, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from .person_dialog import FieldsTable
from .qtutil import error_text, fit_to_screen, plain, plain_tip

MODES = (("one", "All photos are one person"),
         ("subfolders", "One person per sub-folder"),
         ("unknowns", "Each photo is a separate unknown person"))


def nice_label(name: str) -> str:
    return " ".join(name.replace("_", " ").split())


class ImportDialog(QDialog):
    planned = Signal(object)  # the plan shown (after every change of the options)

    def __init__(self, session, folder: str, labels: list[str], parent=None, *, into: str | None = None):
        super().__init__(parent)
        self.session = session
        self.folder = str(folder)
        self.plan: dict | None = None
        self._gen = 0
        self.setWindowTitle(f"Import {Path(folder).name}")
        fit_to_screen(self, 760, 620)
        lay = QVBoxLayout(self)
        head = QLabel(f"Folder: {folder}")
        head.setWordWrap(True)
        plain(head)
        lay.addWidget(head)
        form = QFormLayout()
        self.modes = QButtonGroup(self)
        mode_box = QWidget()
        mlay = QVBoxLayout(mode_box)
        mlay.setContentsMargins(0, 0, 0, 0)
        has_sub = any(p.is_dir() for p in Path(folder).iterdir()) if Path(folder).is_dir() else False
        for i, (key, text) in enumerate(MODES):
            rb = QRadioButton(text)
            rb.setProperty("mode", key)
            self.modes.addButton(rb, i)
            mlay.addWidget(rb)
        self.modes.button(1 if has_sub and into is None else 0).setChecked(True)
        self.modes.idToggled.connect(lambda *_: self._changed())
        form.addRow("Photos", mode_box)
        self.label = QComboBox()
        self.label.setEditable(True)
        self.label.addItems(sorted(labels))
        self.label.setEditText(into or nice_label(Path(folder).name))
        self.label.lineEdit().setPlaceholderText("Name of the person (an existing one adds the photos to it)")
        self.label.editTextChanged.connect(lambda *_: self._changed())
        form.addRow("Person", self.label)
        self.case = QLineEdit()
        self.case.setPlaceholderText("Case ID for the new persons (optional)")
        self.case.textChanged.connect(lambda *_: self._changed())
        form.addRow("Case ID", self.case)
        self.fields = FieldsTable({})
        self.fields.table.setMaximumHeight(110)
        self.fields.table.itemChanged.connect(lambda *_: self._changed())
        form.addRow("Fields", self.fields)
        lay.addLayout(form)
        split = QSplitter(Qt.Orientation.Vertical)
        self.preview = QTreeWidget()
        self.preview.setHeaderLabels(["Will create / add to", "Photos"])
        self.preview.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.skipped = QTreeWidget()
        self.skipped.setHeaderLabels(["Skipped file", "Reason"])
        self.skipped.header().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        split.addWidget(self.preview)
        split.addWidget(self.skipped)
        lay.addWidget(split, 1)
        self.status = QLabel("Reading the folder\u2026")
        self.status.setWordWrap(True)
        plain(self.status)
        lay.addWidget(self.status)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Import")
        self.ok.setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.refresh_preview)
        self.refresh_preview()

    @property
    def mode(self) -> str:
        return self.modes.checkedButton().property("mode")

    def _changed(self) -> None:
        self.ok.setEnabled(False)
        self._timer.start()

    def options(self) -> dict:
        fields, _problem = self.fields.values()
        return {"mode": self.mode, "label": self.label.currentText().strip() or None,
                "case_id": self.case.text().strip() or None, "metadata": fields or None}

    def refresh_preview(self) -> None:
        self._gen += 1
        gen = self._gen
        opts = self.options()
        self.label.setEnabled(opts["mode"] != "unknowns")
        self.status.setText("Reading the folder\u2026")
        self.session.call("plan_import", self.folder, opts.pop("mode"), **opts,
                          on_result=lambda plan, gen=gen: self._show(gen, plan),
                          on_error=lambda exc, gen=gen: self._failed(gen, exc))

    def _failed(self, gen, exc) -> None:
        if gen == self._gen:
            self.plan = None
            self.status.setText(f"Cannot import this folder: {error_text(exc)}")

    def _show(self, gen, plan) -> None:
        if gen != self._gen:
            return
        self.plan = plan
        self.preview.clear()
        self.skipped.clear()
        n = 0
        for p in plan["persons"]:
            tag = "adds to the existing person" if p["existing"] else "new person"
            top = QTreeWidgetItem([f"{p['label']}  ({tag})", str(len(p["files"]))])
            top.setToolTip(0, plain_tip(p["label"]))
            for f in p["files"]:
                child = QTreeWidgetItem([Path(f).name, ""])
                child.setToolTip(0, plain_tip(f))
                top.addChild(child)
            self.preview.addTopLevelItem(top)
            n += len(p["files"])
        for s in plan["skipped"]:
            reason = s["message"].removeprefix(f"{s['path']}: ")
            it = QTreeWidgetItem([Path(s["path"]).name, f"{reason} [{s['code']}]"])
            it.setToolTip(0, plain_tip(s["path"]))
            it.setToolTip(1, plain_tip(s["message"]))
            self.skipped.addTopLevelItem(it)
        new = sum(1 for p in plan["persons"] if not p["existing"])
        self.status.setText(f"{n} photo(s) into {len(plan['persons'])} person(s) ({new} new); "
                            f"{len(plan['skipped'])} file(s) skipped. Photos without a face are reported after "
                            "the import.")
        self.ok.setText(f"Import {n} photo(s)")
        self.ok.setEnabled(n > 0)
        self.planned.emit(plan)
