"""Hardening (issue 14, finding 5): labels, case ids, file names and error messages are shown as plain
text in the GUI, never rendered as HTML (pytest-qt, offscreen; a real ProcessHost on a tiny gallery)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fasfinder.settings import Settings

EVIL = '<img src=x><b style="font-size:40px;color:red">BIG</b>'
EVIL_FILE = "<b>q<i>.png"  # a file name that looks like HTML (no "/" in a name)
SLOW_MS = 180_000


def shown(text: str) -> str:
    """What Qt displays for a tooltip / auto-format label text: HTML-looking text is rendered as HTML."""

    from PySide6.QtGui import Qt, QTextDocument

    if not Qt.mightBeRichText(text):
        return text
    doc = QTextDocument()
    doc.setHtml(text)
    return doc.toPlainText()


def label_shows(label) -> str:
    from PySide6.QtCore import Qt

    return label.text() if label.textFormat() == Qt.TextFormat.PlainText else shown(label.text())


def test_plain_tip_round_trips(qtbot):
    from ui.qtutil import plain_tip

    for text in (EVIL, "a & b\n<i>second</i> line", "plain"):
        assert shown(plain_tip(text)) == text


def test_plain_label_is_one_normal_line(qtbot):
    """The rendered size: a plain-text label of EVIL is one normal-height line, the HTML one is 40 px tall."""

    from PySide6.QtWidgets import QLabel

    from ui.qtutil import plain

    rich, lit = QLabel(EVIL), plain(QLabel(EVIL))
    for w in (rich, lit):
        qtbot.addWidget(w)
    normal = QLabel("BIG").sizeHint().height()
    assert lit.sizeHint().height() <= normal + 2 < rich.sizeHint().height()
    assert label_shows(lit) == EVIL and label_shows(rich) != EVIL


@pytest.fixture(scope="module")
def evil_setup(tmp_path_factory):
    from PIL import Image
    from skimage import data

    from fasfinder.host import ProcessHost

    root = tmp_path_factory.mktemp("evil")
    photo = root / "enroll" / EVIL_FILE
    photo.parent.mkdir(parents=True)
    Image.fromarray(data.astronaut()).save(photo, format="PNG")
    query = root / f"query {EVIL_FILE}"
    Image.fromarray(data.astronaut()[:, ::-1].copy()).save(query, format="PNG")
    settings = replace(Settings(gallery=str(root / "gallery.db")), liveness=False)
    host = ProcessHost(settings)
    (res,) = host.call("enroll", [str(photo)], label=EVIL, case_id=EVIL)
    assert res.error is None, res.error
    yield {"host": host, "settings": settings, "photo": photo, "query": query}
    host.close()


@pytest.mark.slow
def test_labels_and_file_names_are_shown_literally(qtbot, evil_setup):
    from ui.main_window import MainWindow

    win = MainWindow(evil_setup["settings"], evil_setup["host"], offer_demo=False, restore_layout=False)
    qtbot.addWidget(win)
    win.show()
    try:
        # matches dock: the candidate list, its tooltip, the candidate caption
        win.open_query(str(evil_setup["query"]))
        qtbot.waitUntil(lambda: win.last_result is not None, timeout=SLOW_MS)
        assert win.last_result.error is None, win.last_result.error
        lst = win.matches.list
        qtbot.waitUntil(lambda: lst.count() >= 1, timeout=10_000)
        item = lst.item(0)
        assert EVIL in item.text() and f"case {EVIL}" in item.text()
        assert shown(item.toolTip()).startswith(EVIL + "\n")
        lst.setCurrentRow(0)
        qtbot.waitUntil(lambda: win.matches.c_caption.text() == EVIL, timeout=10_000)
        assert label_shows(win.matches.c_caption) == EVIL
        assert win.matches.c_caption.sizeHint().height() < 30  # one line of the normal font, no 40 px text

        # gallery dock: the person row (label, case id), its tooltip, the photo's tooltip
        win.gallery.refresh()
        tree = win.gallery.tree
        qtbot.waitUntil(lambda: tree.topLevelItemCount() == 1, timeout=10_000)
        top = tree.topLevelItem(0)
        assert top.text(0) == EVIL and top.text(1) == EVIL
        assert shown(top.toolTip(0)) == EVIL
        assert shown(top.child(0).toolTip(0)) == str(evil_setup["photo"].resolve())
        tree.setCurrentItem(top)
        qtbot.waitUntil(lambda: win.gallery.photos.count() == 1, timeout=10_000)
        assert shown(win.gallery.photos.item(0).toolTip()) == str(evil_setup["photo"].resolve())
        assert label_shows(win.gallery.summary).startswith("1 persons")

        # history dock: the query's tooltip and, once the file is gone, the status line quoting it
        win.history.refresh()
        hist = win.history.list
        qtbot.waitUntil(lambda: hist.count() >= 1, timeout=10_000)
        assert shown(hist.item(0).toolTip()).startswith(str(evil_setup["query"]) + "\n")
        assert EVIL in hist.item(0).text()
        Path(evil_setup["query"]).unlink()
        record = win.history._reopen_item(hist.item(0))  # the case record: the recorded results, the path quoted
        assert label_shows(record.header).startswith(f"{evil_setup['query']} (the photo is no longer at this path)")
        assert not record.again_btn.isEnabled()
        assert record.tree.topLevelItem(0).child(0).text(0) == f"1. {EVIL}"
        record.close()
    finally:
        win.session.pool.cancel_all()
        win.session.pool.wait_idle(timeout_ms=60_000, settle_ms=0)
