"""Settings dialog: gallery location, engine, detector, thresholds, liveness (stored per user)."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLineEdit, QPushButton, QSpinBox, QWidget)

from fasfinder.settings import Settings


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, engines: list, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)
        self.settings = settings
        form = QFormLayout(self)
        self.gallery = QLineEdit(settings.gallery)
        browse = QPushButton("Browse\u2026")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.gallery, 1)
        row.addWidget(browse)
        holder = QWidget()
        holder.setLayout(row)
        form.addRow("Gallery file", holder)
        self.engine = QComboBox()
        for name, desc in [(e.name, e.description) for e in engines] or [(settings.engine, "")]:
            self.engine.addItem(name, name)
            self.engine.setItemData(self.engine.count() - 1, desc, 3)  # tooltip role
        self.engine.setCurrentIndex(max(0, self.engine.findData(settings.engine)))
        form.addRow("Recognition engine", self.engine)
        self.detector = QComboBox()
        self.detector.addItem("HOG (fast)", "hog")
        self.detector.addItem("CNN (MMOD, slower, finds more faces)", "cnn")
        self.detector.setCurrentIndex(max(0, self.detector.findData(settings.detector)))
        form.addRow("Face detector", self.detector)
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 50)
        self.top_k.setValue(settings.top_k)
        form.addRow("Candidates per face", self.top_k)
        self.open_set = QDoubleSpinBox()
        self.open_set.setRange(0.0, 1.0)
        self.open_set.setDecimals(3)
        self.open_set.setSingleStep(0.005)
        self.open_set.setSpecialValueText("engine card (FPIR 1 % on CelebA)")
        self.open_set.setValue(settings.open_set_threshold or 0.0)
        self.open_set.setToolTip("Score the best candidate must reach for \"in the gallery\". The engine card's "
                                 "threshold is chosen for 1 % false alarms on people not enrolled, by gallery size.")
        form.addRow("In-gallery threshold", self.open_set)
        self.max_mp = QSpinBox()
        self.max_mp.setRange(1, 500)
        self.max_mp.setSuffix(" MP")
        self.max_mp.setValue(max(1, settings.max_pixels // 1_000_000))
        form.addRow("Largest image accepted", self.max_mp)
        self.flip = QCheckBox("Mirror test-time augmentation for embeddings")
        self.flip.setChecked(settings.flip)
        form.addRow("", self.flip)
        self.liveness = QCheckBox("Check liveness (FAS model) on every face")
        self.liveness.setChecked(settings.liveness)
        form.addRow("", self.liveness)
        self.refuse = QCheckBox("Refuse to enroll faces judged spoof")
        self.refuse.setChecked(settings.refuse_spoof)
        form.addRow("", self.refuse)
        self.all_faces = QCheckBox("Enroll every face of an image (not only the largest)")
        self.all_faces.setChecked(settings.enroll_all_faces)
        form.addRow("", self.all_faces)
        # office server (issue 19): no password field -- it comes from $FASFINDER_SERVER_PASSWORD or an owner-only file
        self.server = QLineEdit(settings.server)
        self.server.setPlaceholderText("postgresql://user@host/fasfinder?sslmode=verify-full (empty: no server)")
        form.addRow("Office server", self.server)
        self.server_password_file = QLineEdit(settings.server_password_file)
        self.server_password_file.setPlaceholderText("file readable by you only (else $FASFINDER_SERVER_PASSWORD)")
        form.addRow("Server password file", self.server_password_file)
        self.server_case = QLineEdit(settings.server_case)
        form.addRow("Case for persons without one", self.server_case)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        box.accepted.connect(self.accept)
        box.rejected.connect(self.reject)
        form.addRow(box)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Gallery file", self.gallery.text(), "Gallery (*.db)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.gallery.setText(path)

    def result_settings(self) -> Settings:
        return replace(self.settings, gallery=self.gallery.text().strip() or self.settings.gallery,
                       engine=self.engine.currentData(), detector=self.detector.currentData(),
                       top_k=self.top_k.value(), open_set_threshold=self.open_set.value() or None,
                       max_pixels=self.max_mp.value() * 1_000_000,
                       flip=self.flip.isChecked(), liveness=self.liveness.isChecked(),
                       refuse_spoof=self.refuse.isChecked(), enroll_all_faces=self.all_faces.isChecked(),
                       server=self.server.text().strip(),
                       server_password_file=self.server_password_file.text().strip(),
                       server_case=self.server_case.text().strip())
