"""The case record of a recorded query (History -> Reopen): the results as they were recorded, the case
worker's decisions with notes, "Search again now" as a separate action, and the report export (HTML
from the core's ``case_report``; PDF printed from that HTML by Qt)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPageSize, QPainter, QPdfWriter, QTextDocument
from PySide6.QtWidgets import (QComboBox, QDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout)

from .filedialogs import choose_save
from .qtutil import error_text, plain, plain_tip

ROLE = Qt.ItemDataRole.UserRole + 3
CHOICES = (("confirm", "Confirm: this is the person"), ("reject", "Reject: not the person"),
           ("unsure", "Unsure: needs more checking"))


def write_pdf(html: str, path: str) -> None:
    doc = QTextDocument()
    doc.setHtml(html)
    writer = QPdfWriter(str(path))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setResolution(150)
    writer.setTitle("FASFinder case report")
    doc.print_(writer)
    del writer  # the file is complete when the writer goes


def write_pdf_from_cli(html: str, path: str) -> None:
    """:func:`write_pdf` for the command line (registered by main.py): a windowless Qt application
    (the offscreen platform unless one is set) when none is running."""

    import os

    from PySide6.QtGui import QGuiApplication

    if QGuiApplication.instance() is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        global _cli_app
        _cli_app = QGuiApplication([])
    write_pdf(html, path)


_cli_app = None  # the command line's Qt application, kept while the process runs


def render_png(html: str, path: str, width: int = 1000) -> None:
    """The report as the PDF lays it out, painted into one PNG (to look at it without a PDF viewer)."""

    doc = QTextDocument()
    doc.setHtml(html)
    doc.setTextWidth(width)
    img = QImage(width, int(doc.size().height()) + 1, QImage.Format.Format_RGB32)
    img.fill(0xFFFFFF)
    painter = QPainter(img)
    doc.drawContents(painter)
    painter.end()
    img.save(str(path))


class CaseRecordDialog(QDialog):
    search_again = Signal(str)  # the query photo's path: run it on today's gallery (a new query)

    def __init__(self, session, entry: dict, parent=None):
        super().__init__(parent)
        self.session = session
        self.entry = entry
        self.setWindowTitle(f"Case record: query {entry['id']} \u2013 {Path(entry['query_path']).name}")
        self.resize(820, 520)
        lay = QVBoxLayout(self)
        self.header = plain(QLabel(""))
        self.header.setWordWrap(True)
        lay.addWidget(self.header)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Face / candidate", "Case", "Similarity", "Confidence", "Decision", "Note"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        lay.addWidget(self.tree, 1)
        row = QHBoxLayout()
        self.choice = QComboBox()
        for key, text in CHOICES:
            self.choice.addItem(text, key)
        self.note = QLineEdit()
        self.note.setPlaceholderText("Note (why; what was checked)")
        self.decide_btn = QPushButton("Record decision")
        self.decide_btn.clicked.connect(lambda _c=False: self.decide())
        row.addWidget(self.choice)
        row.addWidget(self.note, 1)
        row.addWidget(self.decide_btn)
        lay.addLayout(row)
        row = QHBoxLayout()
        self.again_btn = QPushButton("Search again now")
        self.again_btn.setToolTip("Run this photo on today's gallery as a new query (this record stays as it is)")
        self.again_btn.clicked.connect(lambda _c=False: self._again())
        self.again_btn.setEnabled(Path(entry["query_path"]).is_file())
        self.report_btn = QPushButton("Export report\u2026")
        self.report_btn.clicked.connect(lambda _c=False: self.export_report())
        close = QPushButton("Close")
        close.clicked.connect(lambda _c=False: self.reject())
        row.addWidget(self.again_btn)
        row.addWidget(self.report_btn)
        row.addStretch(1)
        row.addWidget(close)
        lay.addLayout(row)
        self.status = plain(QLabel(""))
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.show_entry(entry)

    def show_entry(self, entry: dict) -> None:
        self.entry = entry
        res = entry.get("results") or {}
        decided = {(d["face_index"], d["face_id"]): d for d in entry.get("decisions", [])}
        moved = "" if Path(entry["query_path"]).is_file() else " (the photo is no longer at this path)"
        self.header.setText(f"{entry['query_path']}{moved}\nSearched {entry['created_at'][:19].replace('T', ' ')} "
                            f"by {entry['user']} with {entry['engine']}. These are the results recorded then; "
                            "\u201cSearch again now\u201d runs a new query on today's gallery.")
        self.tree.clear()
        if res.get("error"):
            self.tree.addTopLevelItem(QTreeWidgetItem([f"Search failed: {res['error'].get('code')}"]))
        for fi, face in enumerate(res.get("faces") or []):
            live = face.get("liveness") or {}
            top = QTreeWidgetItem([f"Face {fi + 1}" + (f" \u2013 liveness {live.get('label')}" if live else "")])
            for m in face.get("matches") or []:
                d = decided.get((fi, int(m["face_id"])))
                conf = m.get("confidence")
                it = QTreeWidgetItem([f"{m['rank']}. {m['label']}", m.get("case_id") or "",
                                      f"{m['similarity']:.3f}", "" if conf is None else f"{100 * conf:.1f} %",
                                      d["decision"] if d else "", d["note"] if d else ""])
                it.setData(0, ROLE, (fi, m))
                it.setToolTip(0, plain_tip(m.get("image", "")))
                if d:
                    it.setToolTip(4, plain_tip(f"{d['decision']} by {d['user']} at {d['at']}"))
                top.addChild(it)
            if not face.get("matches"):
                top.addChild(QTreeWidgetItem(["no candidate at the time"]))
            self.tree.addTopLevelItem(top)
            top.setExpanded(True)
        first = self.tree.topLevelItem(0)
        if first is not None and first.childCount():
            self.tree.setCurrentItem(first.child(0))

    def selected(self):
        it = self.tree.currentItem()
        return it.data(0, ROLE) if it is not None else None

    def decide(self) -> None:
        sel = self.selected()
        if sel is None:
            self.status.setText("Select a candidate first.")
            return
        fi, m = sel
        self.session.call("decide", self.entry["id"], fi, m["face_id"], self.choice.currentData(), self.note.text(),
                          on_result=lambda _row: self._reload(f"Recorded: {self.choice.currentData()} "
                                                              f"{m['label']}."),
                          on_error=lambda exc: self.status.setText(f"Not recorded: {error_text(exc)}"))

    def _reload(self, msg: str) -> None:
        self.status.setText(msg)
        self.note.clear()
        self.session.call("query_record", self.entry["id"], on_result=lambda entry: self.show_entry(entry))
        self.session.history_changed.emit()

    def _again(self) -> None:
        """A new query of the same photo on today's gallery; what changed is listed here, the new result
        opens in the window (this record stays as it was)."""

        self.again_btn.setEnabled(False)
        self.status.setText("Searching again on today's gallery\u2026")
        self.session.call("search_again", self.entry["id"], on_result=self._compared,
                          on_error=lambda exc: self.status.setText(f"Not searched: {error_text(exc)}"))

    def _compared(self, out: dict) -> None:
        self.changes = out["changes"]
        text = "; ".join(out["changes"]) if out["changes"] else "the same candidates and scores as recorded"
        self.status.setText(f"Searched again (new query {out['query_id']}): {text}.")
        self.again_btn.setEnabled(True)
        self.session.history_changed.emit()
        self.search_again.emit(self.entry["query_path"])

    def export_report(self, path: str | None = None) -> None:
        """Write ``<name>.html`` and the same report as ``<name>.pdf``."""

        path = path or choose_save(self, "Export the case report", f"case-report-query-{self.entry['id']}.html",
                                   "HTML report (*.html)")
        if not path:
            return
        html_path = str(Path(path).with_suffix(".html"))
        self.session.call("case_report", self.entry["id"], html_path,
                          on_result=lambda out: self._exported(out, html_path),
                          on_error=lambda exc: self.status.setText(f"No report: {error_text(exc)}"))

    def _exported(self, out: dict, html_path: str) -> None:
        pdf = str(Path(html_path).with_suffix(".pdf"))
        write_pdf(out["html"], pdf)
        self.last_report = {"html": html_path, "pdf": pdf, "sha256": out["sha256"], "text": out["html"]}
        self.status.setText(f"Report written: {html_path} (sha256 {out['sha256'][:16]}\u2026) and {Path(pdf).name}")
