"""The case list as a filter: a combo box of the gallery's case ids (persons, photos) that restricts
the searches of the window to one case, or searches all of them (the service's ``cases`` operation)."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

ALL_CASES = "All cases"


class CaseFilter(QWidget):
    """"Search in: [All cases | case (n persons, m photos) ...]"; :meth:`case_ids` is what a search uses."""

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.cases: list[dict] = []
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        caption = QLabel("Search in:")
        self.combo = QComboBox()
        self.combo.setObjectName("caseFilter")
        self.combo.setToolTip("Restrict searches to the persons of one case (the case list of the gallery)")
        self.combo.addItem(ALL_CASES, None)
        lay.addWidget(caption)
        lay.addWidget(self.combo, 1)

    def refresh(self) -> None:
        self.session.call("cases", on_result=self._populate)

    def _populate(self, cases: list[dict]) -> None:
        keep = self.combo.currentData()
        self.cases = list(cases)
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem(ALL_CASES, None)
        for c in self.cases:
            n = len(c["persons"])
            self.combo.addItem(f"{c['case_id']} ({n} person{'s' if n != 1 else ''}, {c['images']} photos)", c["case_id"])
            self.combo.setItemData(self.combo.count() - 1, ", ".join(p["label"] for p in c["persons"]), 3)  # tooltip
        index = self.combo.findData(keep) if keep is not None else 0
        self.combo.setCurrentIndex(max(0, index))
        self.combo.blockSignals(False)

    def select(self, case_id: str | None) -> None:
        self.combo.setCurrentIndex(max(0, self.combo.findData(case_id)) if case_id else 0)

    def case_ids(self) -> list[str] | None:
        """The selected case as a one-item list, or None for all cases."""

        case_id = self.combo.currentData()
        return [case_id] if case_id else None
