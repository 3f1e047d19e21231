"""Gallery dock: persons (cases) with their photos; import a folder (progress + cancel); edit; delete."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QDockWidget, QFileDialog, QFormLayout, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QListView, QListWidget, QListWidgetItem, QPlainTextEdit,
                               QProgressBar, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from ..qtutil import confirm as ask, error_text, plain, plain_tip, to_pixmap

ROLE = Qt.ItemDataRole.UserRole + 1


class PersonDialog(QDialog):
    def __init__(self, record, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Edit {record.label}")
        form = QFormLayout(self)
        self.label = QLineEdit(record.label)
        self.case = QLineEdit(record.case_id or "")
        self.meta = QPlainTextEdit(json.dumps(record.metadata or {}, indent=2, ensure_ascii=False))
        self.meta.setMinimumHeight(100)
        form.addRow("Label", self.label)
        form.addRow("Case ID", self.case)
        form.addRow("Metadata (JSON)", self.meta)
        self.error = QLabel("")
        self.error.setObjectName("error")
        plain(self.error)  # quotes the user's metadata
        form.addRow(self.error)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        box.accepted.connect(self._accept)
        box.rejected.connect(self.reject)
        form.addRow(box)

    def _accept(self):
        try:
            meta = json.loads(self.meta.toPlainText() or "{}")
            if not isinstance(meta, dict):
                raise ValueError("metadata must be a JSON object")
        except ValueError as exc:
            self.error.setText(f"Metadata: {exc}")
            return
        if not self.label.text().strip():
            self.error.setText("The label cannot be empty.")
            return
        self.values = {"label": self.label.text().strip(), "case_id": self.case.text().strip(), "metadata": meta}
        self.accept()


class GalleryDock(QDockWidget):
    import_finished = Signal(object)  # list of EnrollResult (or the exception)

    def __init__(self, session, parent=None):
        super().__init__("Gallery", parent)
        self.setObjectName("dock_gallery")
        self.session = session
        self.records = []
        self.import_worker = None
        self.last_import = None
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        self.summary = QLabel("Gallery: loading\u2026")
        self.summary.setObjectName("dockHeader")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Person / photo", "Case", "Photos"])
        hdr = self.tree.header()
        hdr.setStretchLastSection(False)
        hdr.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        hdr.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.tree.currentItemChanged.connect(self._on_current)
        self.tree.itemDoubleClicked.connect(lambda *_: self.edit_selected())
        lay.addWidget(self.tree, 3)
        self.photos = QListWidget()
        self.photos.setViewMode(QListView.ViewMode.IconMode)
        self.photos.setIconSize(QSize(72, 72))
        self.photos.setFixedHeight(100)
        self.photos.setFlow(QListView.Flow.LeftToRight)
        self.photos.setWrapping(False)
        self.photos.setResizeMode(QListView.ResizeMode.Adjust)
        lay.addWidget(self.photos)
        btns = QHBoxLayout()
        self.import_btn = QPushButton("Import folder\u2026")
        self.import_btn.clicked.connect(self.choose_folder)
        self.edit_btn = QPushButton("Edit\u2026")
        self.edit_btn.clicked.connect(self.edit_selected)
        self.delete_btn = QPushButton("Delete")
        # clicked(bool) would pass checked=False into ``confirm`` and delete without asking
        self.delete_btn.clicked.connect(lambda _checked=False: self.delete_selected())
        for b in (self.import_btn, self.edit_btn, self.delete_btn):
            btns.addWidget(b)
        lay.addLayout(btns)
        prow = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel_import)
        prow.addWidget(self.progress, 1)
        prow.addWidget(self.cancel_btn)
        self.progress_row = QWidget()
        self.progress_row.setLayout(prow)
        prow.setContentsMargins(0, 0, 0, 0)
        self.progress_row.setVisible(False)
        lay.addWidget(self.progress_row)
        self.progress_text = QLabel("")
        self.progress_text.setObjectName("hint")
        self.progress_text.setWordWrap(True)
        lay.addWidget(self.progress_text)
        plain(self.summary, self.progress_text)  # file names, labels and error messages: never HTML
        self.setWidget(w)
        session.gallery_changed.connect(self.refresh)

    # -- listing -------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.session.call("persons", on_result=self._populate)

    def _populate(self, records) -> None:
        self.records = records
        current = self._selected_person_id()
        self.tree.clear()
        n_img = 0
        for rec in records:
            top = QTreeWidgetItem([rec.label, rec.case_id or "", str(len(rec.images))])
            top.setData(0, ROLE, ("person", rec))
            top.setToolTip(0, plain_tip(rec.label))
            for im in rec.images:
                child = QTreeWidgetItem([Path(im["path"]).name, "", ""])
                child.setData(0, ROLE, ("image", im, rec))
                child.setToolTip(0, plain_tip(im["path"]))
                top.addChild(child)
            n_img += len(rec.images)
            self.tree.addTopLevelItem(top)
            if rec.person_id == current:
                self.tree.setCurrentItem(top)
        self.summary.setText(f"{len(records)} persons \u00b7 {n_img} photos")

    def _selected_person_id(self):
        item = self.tree.currentItem()
        if item is None:
            return None
        data = item.data(0, ROLE)
        return data[1].person_id if data[0] == "person" else data[2].person_id

    def _on_current(self, item, _prev=None) -> None:
        self.photos.clear()
        if item is None:
            return
        data = item.data(0, ROLE)
        rec = data[1] if data[0] == "person" else data[2]
        paths = [im["path"] for im in rec.images][:12]
        for p in paths:
            it = QListWidgetItem(Path(p).name[:14])
            it.setToolTip(plain_tip(p))
            self.photos.addItem(it)
        pid = rec.person_id
        self.session.call("thumbnails", paths, 96, on_result=lambda th, pid=pid: self._thumbs(pid, th))

    def _thumbs(self, pid, thumbs) -> None:
        if self._selected_person_id() != pid:
            return
        for i, th in enumerate(thumbs):
            it = self.photos.item(i)
            if it is not None and th is not None:
                it.setIcon(QIcon(to_pixmap(th)))

    # -- editing -------------------------------------------------------------------------------
    def edit_selected(self) -> None:
        item = self.tree.currentItem()
        if item is None:
            return
        data = item.data(0, ROLE)
        rec = data[1] if data[0] == "person" else data[2]
        dlg = PersonDialog(rec, self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            self.session.call("update_person", rec.person_id, **dlg.values,
                              on_result=lambda _v: self._changed("Saved."))

    def delete_selected(self, confirm: bool = True) -> None:
        item = self.tree.currentItem()
        if item is None:
            return
        data = item.data(0, ROLE)
        if data[0] == "person":
            what, method, key = f"the person \u201c{data[1].label}\u201d and all their photos", "delete_person", data[1].person_id
        else:
            what, method, key = f"the photo {Path(data[1]['path']).name}", "delete_image", data[1]["id"]
        if confirm and not ask(self, "Delete", f"Delete {what} from the gallery?"):
            return
        self.session.call(method, key, on_result=lambda _v: self._changed("Deleted."))

    def _changed(self, msg: str) -> None:
        self.session.message.emit(msg, 4000)
        self.session.gallery_changed.emit()

    # -- import --------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a folder (one sub-folder per person)")
        if folder:
            self.import_folder(folder)

    def import_folder(self, folder: str, label_from: str = "parent") -> None:
        self.start_import("enroll", [folder], label_from=label_from, title=f"Importing {Path(folder).name}")

    def seed_demo(self) -> None:
        self.start_import("seed_demo", title="Adding the demo gallery")

    def start_import(self, method: str, *args, title: str = "Importing", **kwargs) -> None:
        if self.import_worker is not None and not self.import_worker.done:
            self.session.message.emit("An import is already running.", 4000)
            return
        self.progress.setRange(0, 0)
        self.progress_row.setVisible(True)
        self.cancel_btn.setEnabled(True)
        self.import_btn.setEnabled(False)
        self.progress_text.setText(f"{title}\u2026")
        self._title = title
        self.import_worker = self.session.call(method, *args, **kwargs, on_result=self._imported,
                                               on_error=self._import_failed, on_progress=self._progress,
                                               on_finished=self._import_done)

    def cancel_import(self) -> None:
        if self.import_worker is not None:
            self.import_worker.cancel()
            self.cancel_btn.setEnabled(False)
            self.progress_text.setText("Cancelling after the current photo\u2026")

    def _progress(self, done, total, msg) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        if self.cancel_btn.isEnabled():
            self.progress_text.setText(f"{self._title}: {Path(msg).name if '/' in msg else msg}")

    def _imported(self, results) -> None:
        self.last_import = results
        ok = sum(1 for r in results if r.error is None)
        dup = sum(1 for r in results if r.error and r.error.get("code") == "duplicate")
        bad = len(results) - ok - dup
        cancelled = self.import_worker is not None and self.import_worker.cancelled
        text = f"{'Cancelled' if cancelled else 'Done'}: {ok} photos enrolled"
        if dup:
            text += f", {dup} already in the gallery"
        if bad:
            text += f", {bad} skipped (no face or unreadable)"
        self.progress_text.setText(text + ".")
        self.session.message.emit(text, 8000)
        self.import_finished.emit(results)

    def _import_failed(self, exc) -> None:
        self.last_import = exc
        self.progress_text.setText(f"Import failed: {error_text(exc)}")
        self.session.report_error(exc)
        self.import_finished.emit(exc)

    def _import_done(self) -> None:
        self.progress_row.setVisible(False)
        self.import_btn.setEnabled(True)
        self.session.gallery_changed.emit()
