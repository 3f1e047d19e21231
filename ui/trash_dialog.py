"""The trash: deleted persons / photos and merges, restorable until the ``trash_days`` setting purges them."""

from __future__ import annotations

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout)

from .qtutil import confirm, plain, plain_tip

ROLE = 256 + 7


class TrashDialog(QDialog):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Trash")
        self.resize(720, 380)
        lay = QVBoxLayout(self)
        self.hint = QLabel("Deleted persons and photos can be restored here until they are purged.")
        self.hint.setWordWrap(True)
        plain(self.hint)
        lay.addWidget(self.hint)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["What", "Deleted", "By", "Purged after"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3):
            self.tree.header().setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setRootIsDecorated(False)
        lay.addWidget(self.tree, 1)
        row = QHBoxLayout()
        self.restore_btn = QPushButton("Restore")
        self.restore_btn.clicked.connect(lambda _c=False: self.restore_selected())
        self.purge_btn = QPushButton("Delete for good\u2026")
        self.purge_btn.clicked.connect(lambda _c=False: self.purge_selected())
        row.addWidget(self.restore_btn)
        row.addWidget(self.purge_btn)
        row.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        row.addWidget(close)
        lay.addLayout(row)
        self.entries: list[dict] = []
        self.refresh()

    def refresh(self) -> None:
        self.session.call("trash", on_result=self._show)

    def _show(self, entries) -> None:
        self.entries = entries
        self.tree.clear()
        for e in entries:
            it = QTreeWidgetItem([e["what"], e["deleted_at"][:19].replace("T", " "), e["user"],
                                  (e["purge_after"] or "kept")[:10]])
            it.setData(0, ROLE, e)
            it.setToolTip(0, plain_tip(e["what"]))
            self.tree.addTopLevelItem(it)
        if entries:
            self.tree.setCurrentItem(self.tree.topLevelItem(0))
        self.hint.setText(f"{len(entries)} item(s) in the trash. Restore brings a person or photo back with the "
                          "same record; items are deleted for good after the retention period (trash_days in "
                          "settings.json, default 30 days).")

    def _selected(self):
        it = self.tree.currentItem()
        return it.data(0, ROLE) if it is not None else None

    def restore_selected(self) -> None:
        e = self._selected()
        if e is not None:
            self.session.call("restore", e["id"], on_result=lambda _r: self._done(f"Restored {e['what']}."))

    def purge_selected(self, ask: bool = True) -> None:
        e = self._selected()
        if e is None:
            return
        if ask and not confirm(self, "Delete for good", f"Delete {e['what']} for good? This cannot be undone."):
            return
        self.session.call("purge_trash", e["id"], on_result=lambda _r: self._done(f"Deleted {e['what']} for good."))

    def _done(self, msg: str) -> None:
        self.session.message.emit(msg, 6000)
        self.session.gallery_changed.emit()
        self.refresh()
