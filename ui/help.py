"""The Help menu's texts (shortcuts, licences, about) and the first-start guidance."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

SHORTCUTS = """Ctrl+O\tOpen a query photo (or drop a photo on the window)
Ctrl+I\tImport a folder (or drop a folder): the import dialog shows what will be created
Ctrl+N\tAdd a person (form: name, case ID, date missing, notes, fields)
Delete\tDelete the selected person or photo (asks; Undo and the Trash bring it back)
Alt+Right / Alt+Left\tNext / previous face of the query
F5\tRefresh the gallery
Ctrl+,\tSettings
F1\tThis list
Ctrl+Q\tQuit"""

LICENCES = """FASFinder bundles third-party models; each model card (models/*.card.json) names its source and licence.
- dlib's 68-point landmark model (the 10 face regions) was trained on iBUG 300-W, whose licence EXCLUDES
  COMMERCIAL USE; dlib's ResNet descriptor, 5-point model and CNN detector are CC0.
- Libraries: Qt for Python (PySide6, LGPL-3.0), pyqtgraph (MIT), PyTorch (BSD-3-Clause), dlib (BSL-1.0),
  FAISS (MIT), OpenCV (Apache-2.0), NumPy, scikit-learn, scikit-image (BSD), Pillow (MIT-CMU),
  sqlite-utils (Apache-2.0), SQLCipher (BSD-style), cryptography (Apache-2.0 / BSD).
- LFW is used for evaluation only; confidence calibration uses CelebA."""

ABOUT = """FASFinder 0.1.0 \u2013 offline face search for missing-person cases.
Every face gets an advisory liveness check; explanations (Grad-CAM++) show what a match rests on.
A match is a lead for a trained person to check, never an identification on its own.
Nothing leaves this computer: the models are installed with the program."""

TEXTS = {"shortcuts": ("Keyboard shortcuts", SHORTCUTS), "licences": ("Licences", LICENCES), "about": ("About", ABOUT)}


def help_box(parent, topic: str) -> QMessageBox:
    title, text = TEXTS[topic]
    box = QMessageBox(QMessageBox.Icon.Information, title, text, QMessageBox.StandardButton.Close, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.open()
    return box


def first_start(parent) -> str | None:
    """The empty-gallery guidance: ``"import"``, ``"demo"`` (a separate demo gallery) or None (later)."""

    box = QMessageBox(QMessageBox.Icon.Information, "Your gallery is empty",
                      "Start by importing the photos of your missing persons (one folder per person, or a "
                      "folder you sort in the import dialog), or add a person by hand (Gallery \u2192 Add "
                      "person). A sighting can only be searched against persons in the gallery.\n\n"
                      "To try FASFinder first, open the demo gallery: a separate file (demo.db) with an "
                      "astronaut photo and a few public LFW persons. Nothing goes into your gallery.",
                      QMessageBox.StandardButton.NoButton, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    imp = box.addButton("Import photos\u2026", QMessageBox.ButtonRole.AcceptRole)
    demo = box.addButton("Try the demo gallery", QMessageBox.ButtonRole.ActionRole)
    box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
    box.exec()
    clicked = box.clickedButton()
    return "import" if clicked is imp else "demo" if clicked is demo else None
