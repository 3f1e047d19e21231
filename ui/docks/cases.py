"""The Cases dock: the case list as its own view (the service's ``case_list``): every case id with its
persons, photos, recorded queries and last activity, a filter box, and per case "Search in this case"
(restricts the window's searches to it) and "Export case report" (the case file: HTML from the core's
``case_file_report``, the same report printed to PDF by Qt)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDockWidget, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from ..case_record import write_pdf
from ..filedialogs import choose_save
from ..qtutil import error_text, plain, plain_tip

COLUMNS = ("Case", "Persons", "Photos", "Queries", "Last activity")
ROLE = Qt.ItemDataRole.UserRole + 5


class CasesDock(QDockWidget):
    search_in = Signal(str)  # a case id: restrict the searches to it

    def __init__(self, session, parent=None):
        super().__init__("Cases", parent)
        self.setObjectName("dock_cases")
        self.session = session
        self.cases: list[dict] = []
        self.last_report: dict | None = None
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter cases by case ID or person\u2026")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(lambda _t: self._apply_filter())
        lay.addWidget(self.filter)
        self.tree = QTreeWidget()
        self.tree.setObjectName("caseList")
        self.tree.setRootIsDecorated(False)
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setSortingEnabled(True)
        self.tree.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        head = self.tree.header()
        for col in range(len(COLUMNS)):
            head.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        head.setStretchLastSection(True)
        head.setMinimumSectionSize(24)  # the counts' columns as narrow as their titles: "Last activity" stays in view
        self.tree.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.tree.itemDoubleClicked.connect(lambda *_: self.search_selected())
        lay.addWidget(self.tree, 1)
        self.details = plain(QLabel(""))  # the selected case in words (the columns may be cut in a narrow dock)
        self.details.setWordWrap(True)
        self.details.setObjectName("caseDetails")
        lay.addWidget(self.details)
        row = QHBoxLayout()
        self.search_btn = QPushButton("Search in this case")
        self.search_btn.setToolTip("Restrict the searches of this window to the persons of the selected case")
        self.search_btn.clicked.connect(lambda _c=False: self.search_selected())
        self.export_btn = QPushButton("Export case report\u2026")
        self.export_btn.setToolTip("Every recorded query of the case with its candidates and decisions, as HTML and PDF")
        self.export_btn.clicked.connect(lambda _c=False: self.export_selected())
        row.addWidget(self.search_btn)
        row.addWidget(self.export_btn)
        row.addStretch(1)
        lay.addLayout(row)
        self.status = plain(QLabel("Loading the cases\u2026"))  # quotes case ids and paths
        self.status.setWordWrap(True)
        self.status.setObjectName("hint")
        lay.addWidget(self.status)
        self.setWidget(w)
        self._update_buttons()
        session.gallery_changed.connect(self.refresh)
        session.history_changed.connect(self.refresh)

    # -- the list -------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.session.call("case_list", on_result=self._populate)

    def _populate(self, cases: list[dict]) -> None:
        keep = self.selected()
        self.cases = list(cases)
        self.tree.setSortingEnabled(False)
        self.tree.clear()
        for c in self.cases:
            when = c["last_activity"] or ""
            it = QTreeWidgetItem([c["case_id"], "", "", "", when[:10] or "\u2013"])  # the day; the time as a tip
            it.setToolTip(4, when[:19].replace("T", " ") + " UTC" if when else "no activity recorded")
            for col, key in ((1, "persons"), (2, "images"), (3, "queries")):
                it.setData(col, Qt.ItemDataRole.DisplayRole, int(c[key]))  # sorts as numbers
            it.setData(0, ROLE, c["case_id"])
            it.setToolTip(0, plain_tip(", ".join(c["labels"]) or "no person in the gallery has this case id"))
            self.tree.addTopLevelItem(it)
            if c["case_id"] == keep:
                self.tree.setCurrentItem(it)
        self.tree.setSortingEnabled(True)
        self.tree.header().setSortIndicatorShown(False)  # its room in every title pushed "Last activity" out
        n = len(self.cases)
        self.status.setText(f"{n} case{'s' if n != 1 else ''}" if n else
                            "No case yet: give persons a case ID (import dialog, Add person, Edit).")
        self._apply_filter()

    def _apply_filter(self) -> None:
        words = self.filter.text().lower().split()
        by_id = {c["case_id"]: c for c in self.cases}
        for i in range(self.tree.topLevelItemCount()):
            it = self.tree.topLevelItem(i)
            c = by_id.get(it.data(0, ROLE), {})
            text = " ".join([c.get("case_id", ""), *c.get("labels", [])]).lower()
            it.setHidden(not all(w in text for w in words))
        self._update_buttons()

    def shown_cases(self) -> list[str]:
        """The case ids the list shows now (after the filter), top to bottom."""

        items = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        return [it.data(0, ROLE) for it in items if not it.isHidden()]

    def select(self, case_id: str) -> None:
        for i in range(self.tree.topLevelItemCount()):
            if self.tree.topLevelItem(i).data(0, ROLE) == case_id:
                self.tree.setCurrentItem(self.tree.topLevelItem(i))

    def selected(self) -> str | None:
        it = self.tree.currentItem()
        return None if it is None or it.isHidden() else it.data(0, ROLE)

    def _update_buttons(self) -> None:
        case_id = self.selected()
        self.search_btn.setEnabled(case_id is not None)
        self.export_btn.setEnabled(case_id is not None)
        c = next((c for c in self.cases if c["case_id"] == case_id), None)
        if c is None:
            self.details.setText("Select a case.")
            return
        when = (c["last_activity"] or "")[:16].replace("T", " ")
        self.details.setText(f"{c['case_id']}: {c['persons']} person(s) ({', '.join(c['labels']) or 'none'}), "
                             f"{c['images']} photo(s), {c['queries']} recorded quer{'y' if c['queries'] == 1 else 'ies'}"
                             f", last activity {when or 'none'} UTC")

    # -- per case -------------------------------------------------------------------------------
    def search_selected(self) -> None:
        case_id = self.selected()
        if case_id:
            self.search_in.emit(case_id)

    def export_selected(self, html_path: str | None = None) -> None:
        """Write the selected case's file as ``<name>.html`` and the same report as ``<name>.pdf``."""

        case_id = self.selected()
        if not case_id:
            return
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in case_id)
        html_path = html_path or choose_save(self, "Export the case report", f"case-{safe}.html", "HTML page (*.html)")
        if not html_path:
            return
        html_path = str(Path(html_path).with_suffix(".html"))
        self.last_report = None
        self.status.setText(f"Writing the case report of {case_id}\u2026")
        self.session.call("case_file_report", case_id, html_path, on_result=lambda out: self._written(html_path, out),
                          on_error=lambda e: self.status.setText(f"No case report: {error_text(e)}"))

    def _written(self, html_path: str, out: dict) -> None:
        pdf = str(Path(html_path).with_suffix(".pdf"))
        try:
            write_pdf(out["html"], pdf)
        except OSError as exc:  # pragma: no cover - QPdfWriter reports no errors; a write failure shows here
            self.status.setText(f"HTML written, no PDF: {exc}")
            return
        self.last_report = {"html": html_path, "pdf": pdf, "sha256": out["sha256"], "queries": out["queries"]}
        self.status.setText(f"Case report of {out['case_id']} ({len(out['queries'])} recorded queries): "
                            f"{html_path} and {Path(pdf).name}")
