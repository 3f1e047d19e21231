"""Gallery dock: persons (cases) with their photos; search; import a folder through the import dialog
(progress + cancel); add, edit, merge; delete into the trash with Undo."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (QDockWidget, QHBoxLayout, QHeaderView, QInputDialog, QLabel, QLineEdit,
                               QListView, QListWidget, QListWidgetItem, QProgressBar, QPushButton, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from ..case_filter import CaseFilter
from ..filedialogs import choose_folder
from ..import_dialog import ImportDialog
from ..person_dialog import PersonDialog
from ..qtutil import confirm as ask, error_text, plain, plain_tip, reveal, to_pixmap
from ..trash_dialog import TrashDialog

ROLE = Qt.ItemDataRole.UserRole + 1


class GalleryDock(QDockWidget):
    import_finished = Signal(object)  # list of EnrollResult (or the exception)

    def __init__(self, session, parent=None):
        super().__init__("Gallery", parent)
        self.setObjectName("dock_gallery")
        self.session = session
        self.records = []
        self.import_worker = None
        self.import_dialog: ImportDialog | None = None
        self.last_import = None
        self.last_skipped: list[dict] = []  # the plan's skipped files of the last import
        self.undo_entry: dict | None = None  # the trash entry of this session's last delete or merge
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        self.summary = QLabel("Gallery: loading\u2026")
        self.summary.setObjectName("dockHeader")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.case_filter = CaseFilter(session)
        lay.addWidget(self.case_filter)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search name, case ID, notes\u2026")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)
        self._search_timer.timeout.connect(self.apply_filter)
        self.search.textChanged.connect(lambda *_: self._search_timer.start())
        lay.addWidget(self.search)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Person / photo", "Case", "Photos"])
        hdr = self.tree.header()
        hdr.setStretchLastSection(False)
        # names are never cut off: the name column fits its longest entry (the tree scrolls sideways)
        hdr.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.tree.currentItemChanged.connect(self._on_current)
        self.tree.itemDoubleClicked.connect(lambda *_: self.edit_selected())
        lay.addWidget(self.tree, 3)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.tree, activated=self.delete_selected,
                  context=Qt.ShortcutContext.WidgetShortcut)
        self.photos = QListWidget()
        self.photos.setViewMode(QListView.ViewMode.IconMode)
        self.photos.setIconSize(QSize(72, 72))
        self.photos.setFixedHeight(100)
        self.photos.setFlow(QListView.Flow.LeftToRight)
        self.photos.setWrapping(False)
        self.photos.setResizeMode(QListView.ResizeMode.Adjust)
        lay.addWidget(self.photos)
        # clicked(bool) would pass checked=False into a keyword parameter: every button takes no argument
        self.import_btn = self._button("Import folder\u2026", self.choose_folder)
        self.add_btn = self._button("Add person\u2026", self.add_person)
        self.edit_btn = self._button("Edit\u2026", self.edit_selected)
        self.merge_btn = self._button("Merge into\u2026", self.merge_selected)
        self.delete_btn = self._button("Delete", self.delete_selected)
        self.trash_btn = self._button("Trash\u2026", self.open_trash)
        for row_buttons in ((self.import_btn, self.add_btn, self.edit_btn),
                            (self.merge_btn, self.delete_btn, self.trash_btn)):
            btns = QHBoxLayout()
            for b in row_buttons:
                btns.addWidget(b)
            lay.addLayout(btns)
        urow = QHBoxLayout()
        self.undo_text = QLabel("")
        self.undo_text.setWordWrap(True)
        self.undo_btn = self._button("Undo", self.undo)
        urow.addWidget(self.undo_text, 1)
        urow.addWidget(self.undo_btn)
        urow.setContentsMargins(0, 0, 0, 0)
        self.undo_row = QWidget()
        self.undo_row.setLayout(urow)
        self.undo_row.setVisible(False)
        lay.addWidget(self.undo_row)
        prow = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        self.cancel_btn = self._button("Cancel", self.cancel_import)
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
        plain(self.summary, self.progress_text, self.undo_text)  # file names, labels and error messages: never HTML
        self.setWidget(w)
        session.gallery_changed.connect(self.refresh)

    def _button(self, text: str, slot) -> QPushButton:
        b = QPushButton(text)
        b.clicked.connect(lambda _checked=False: slot())
        return b

    # -- listing -------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.session.call("persons", on_result=self._populate)
        self.case_filter.refresh()

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
        if self.search.text().strip():
            self.apply_filter()

    def apply_filter(self) -> None:
        """Show only the persons the full-text search (``find_persons``) finds for the search box's words."""

        text = self.search.text()
        if not text.strip():
            self._show_only(None)
            return
        self.session.call("find_persons", text, on_result=lambda ids, text=text: self._filtered(text, ids))

    def _filtered(self, text: str, ids) -> None:
        if text == self.search.text():
            self._show_only(set(ids))

    def _show_only(self, ids: set | None) -> None:
        shown = 0
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            hide = ids is not None and item.data(0, ROLE)[1].person_id not in ids
            item.setHidden(hide)
            shown += not hide
        self.summary.setText(f"{len(self.records)} persons \u00b7 {sum(len(r.images) for r in self.records)} photos"
                             + ("" if ids is None else f" \u00b7 {shown} shown"))

    def visible_labels(self) -> list[str]:
        return [self.tree.topLevelItem(i).text(0) for i in range(self.tree.topLevelItemCount())
                if not self.tree.topLevelItem(i).isHidden()]

    def _selected(self):
        item = self.tree.currentItem()
        return item.data(0, ROLE) if item is not None else None

    def _selected_record(self):
        data = self._selected()
        if data is None:
            return None
        return data[1] if data[0] == "person" else data[2]

    def _selected_person_id(self):
        rec = self._selected_record()
        return rec.person_id if rec is not None else None

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

    def _record(self, label: str):
        return next((r for r in self.records if r.label == label), None)

    # -- editing -------------------------------------------------------------------------------
    def add_person(self) -> PersonDialog:
        dlg = PersonDialog(None, self, labels={r.label for r in self.records})
        dlg.accepted.connect(lambda: self.session.call("add_person", **dlg.values,
                                                       on_result=lambda _v: self._changed(
                                                           f"Added {dlg.values['label']}.")))
        dlg.open()
        return dlg

    def edit_selected(self) -> PersonDialog | None:
        rec = self._selected_record()
        if rec is None:
            return None
        dlg = PersonDialog(rec, self, labels={r.label for r in self.records} - {rec.label})
        dlg.accepted.connect(lambda: self._edited(rec, dlg.values))
        dlg.open()
        return dlg

    def _edited(self, rec, values: dict) -> None:
        other = self._record(values["label"]) if values["label"] != rec.label else None
        if other is not None:  # renaming onto an existing person is a merge, asked for
            self.merge_into(rec, other)
            return
        self.session.call("update_person", rec.person_id, **values, on_result=lambda _v: self._changed("Saved."))

    def merge_selected(self) -> None:
        rec = self._selected_record()
        if rec is None:
            return
        others = [r.label for r in self.records if r.person_id != rec.person_id]
        if not others:
            self.session.message.emit("There is no other person to merge into.", 4000)
            return
        dlg = QInputDialog(self)
        dlg.setWindowTitle("Merge")
        dlg.setLabelText(f"Merge \u201c{rec.label}\u201d into:")
        dlg.setComboBoxItems(others)
        plain(*dlg.findChildren(QLabel))  # the labels are the user's text: never HTML
        if dlg.exec() == QInputDialog.DialogCode.Accepted and dlg.textValue():
            self.merge_into(rec, self._record(dlg.textValue()))

    def merge_into(self, rec, target) -> None:
        if not ask(self, "Merge persons",
                   f"Move the {len(rec.images)} photo(s) of \u201c{rec.label}\u201d to \u201c{target.label}\u201d "
                   f"and remove \u201c{rec.label}\u201d? (Undo and the Trash can split them again.)"):
            return
        self.session.call("merge_persons", rec.person_id, target.person_id,
                          on_result=lambda r: self._undoable(r["trash_id"],
                                                             f"Merged {rec.label} into {target.label}."))

    def delete_selected(self) -> None:
        data = self._selected()
        if data is None:
            return
        if data[0] == "person":
            rec = data[1]
            case = f" (case {rec.case_id})" if rec.case_id else ""
            what = f"the person \u201c{rec.label}\u201d{case} and their {len(rec.images)} photo(s)"
            method, key = "delete_person", rec.person_id
        else:
            what = f"the photo {Path(data[1]['path']).name} of \u201c{data[2].label}\u201d"
            method, key = "delete_image", data[1]["id"]
        if not ask(self, "Delete", f"Delete {what} from the gallery?\n\nIt goes to the Trash: Undo brings it "
                                   "back; it is deleted for good after the retention period."):
            return
        kind = "person" if method == "delete_person" else "image"
        self.session.call(method, key, on_result=lambda _v: self.session.call(
            "trash", on_result=lambda entries: self._deleted(kind, key, what, entries)))

    def _deleted(self, kind: str, key: int, what: str, entries) -> None:
        entry = next((e for e in entries if e["kind"] == kind and e["ref_id"] == key), None)
        self._undoable(entry["id"] if entry else None, f"Deleted {what}.")

    def _undoable(self, trash_id, msg: str) -> None:
        self.undo_entry = {"id": trash_id, "text": msg} if trash_id is not None else None
        self.undo_text.setText(msg)
        self.undo_row.setVisible(self.undo_entry is not None)
        self._changed(msg)
        if self.undo_entry is not None:
            QTimer.singleShot(0, lambda: reveal(self.undo_row))  # a low dock (150 %) scrolls to the Undo

    def undo(self) -> None:
        if self.undo_entry is None:
            return
        entry, self.undo_entry = self.undo_entry, None
        self.undo_row.setVisible(False)
        self.session.call("restore", entry["id"], on_result=lambda r: self._changed(f"Restored {r['what']}."))

    def open_trash(self) -> TrashDialog:
        dlg = TrashDialog(self.session, self)
        dlg.open()
        return dlg

    def _changed(self, msg: str) -> None:
        self.session.message.emit(msg, 4000)
        self.session.gallery_changed.emit()

    # -- import --------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = choose_folder(self, "Import a folder of photos")
        if folder:
            self.import_folder(folder)

    def import_folder(self, folder: str, into: str | None = None) -> ImportDialog:
        """The import dialog for ``folder`` (dropped or chosen): nothing is enrolled before it is accepted."""

        dlg = ImportDialog(self.session, folder, [r.label for r in self.records], self, into=into)
        dlg.accepted.connect(lambda: self._import_plan(dlg))
        self.import_dialog = dlg
        dlg.open()
        return dlg

    def _import_plan(self, dlg: ImportDialog) -> None:
        if dlg.plan is None:
            return
        self.last_skipped = list(dlg.plan["skipped"])
        self.start_import("import_plan", dlg.plan, title=f"Importing {Path(dlg.folder).name}")

    def seed_demo(self) -> None:
        self.last_skipped = []
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
        failed = [{"path": r.path, "code": r.error.get("code", ""), "message": r.error.get("message", "")}
                  for r in results if r.error is not None]
        skipped = self.last_skipped + failed
        cancelled = self.import_worker is not None and self.import_worker.cancelled
        text = f"{'Cancelled' if cancelled else 'Done'}: {ok} photos enrolled"
        if skipped:
            text += f", {len(skipped)} skipped:"
            for s in skipped[:8]:
                reason = s["message"].split(": ", 1)[-1] if s["message"] else s["code"]
                text += f"\n\u2022 {Path(s['path']).name}: {reason} [{s['code']}]"
            if len(skipped) > 8:
                text += f"\n\u2026 and {len(skipped) - 8} more"
        self.progress_text.setText(text if skipped else text + ".")
        self.session.message.emit(text.split("\n")[0], 8000)
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
