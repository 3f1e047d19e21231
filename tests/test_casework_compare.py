"""Issue 17 in the window (pytest-qt, offscreen, real models and LFW faces through LocalHost): the case
list restricts a search, a rejected candidate is shown last and greyed (never the top proposal) when
the same photo is searched again, and a double-click opens the comparison window (same-scale chips,
full photos, synced zoom, heatmap off by default with a colour bar, the candidate's other photos and
metadata). ``FASFINDER_SCREENSHOTS=DIR`` saves the comparison window as PNG (docs/screenshots/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.casework_util import lfw_gallery, lfw_photos, main_window

MS = 180_000
PERSONS = {"Colin_Powell": "case-A", "Tony_Blair": "case-A", "George_W_Bush": "case-B"}
photos = lfw_photos


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    settings, host = lfw_gallery(tmp_path_factory.mktemp("compare"), PERSONS, 3,
                                 {"Colin_Powell": {"last seen": "ferry terminal"}})
    yield settings, host
    host.close()


@pytest.fixture
def win(qtbot, setup):
    with main_window(qtbot, *setup) as w:
        qtbot.waitUntil(lambda: w.gallery.case_filter.combo.count() == 3, timeout=MS)
        yield w


def search(qtbot, win, path) -> list[str]:
    win.session.set_result(None)
    win.open_query(str(path))
    qtbot.waitUntil(lambda: win.session.result is not None and win.matches.list.count() >= 1, timeout=MS)
    return [win.matches.list.item(i).text() for i in range(win.matches.list.count())]


def test_case_filter_restricts_the_search(qtbot, win):
    combo = win.gallery.case_filter.combo
    assert combo.itemText(0) == "All cases" and combo.itemText(2).startswith("case-B (1 person, 3 photos)")
    win.gallery.case_filter.select("case-B")
    rows = search(qtbot, win, photos("Colin_Powell")[5])
    assert all("George W Bush" in r for r in rows), rows
    win.gallery.case_filter.select(None)
    assert "Colin Powell" in search(qtbot, win, photos("Colin_Powell")[5])[0]


def test_rejected_candidate_is_listed_last_and_greyed(qtbot, win, setup):
    _, host = setup
    query = photos("Colin_Powell")[6]
    assert "Colin Powell" in search(qtbot, win, query)[0]
    res = win.session.result
    host.call("decide", res.query_id, 0, res.faces[0].persons[0].face_id, "reject", "wrong person")
    rows = search(qtbot, win, query)
    assert "Colin Powell" not in rows[0] and rows[-1].startswith("Rejected before: Colin Powell")
    assert not win.matches.list.item(len(rows) - 1).flags()  # not selectable


def test_double_click_opens_the_comparison_window(qtbot, win):
    search(qtbot, win, photos("Colin_Powell")[7])
    lst = win.matches.list
    item = lst.item(0)
    assert "Colin Powell" in item.text()
    lst.itemDoubleClicked.emit(item)
    cmp = win.matches.comparison
    free = cmp.screen().availableGeometry()
    assert cmp is not None and cmp.isVisible() and cmp.width() >= min(1000, free.width() - 10)
    assert cmp.width() <= free.width() and cmp.height() <= free.height()  # never larger than the screen
    assert not cmp.heatmap.isChecked() and not cmp.bar.isVisible()  # heatmap off by default
    qtbot.waitUntil(lambda: cmp.crop is not None and cmp.others.count() == 3 and "Case: case-A" in cmp.meta.text(),
                    timeout=MS)
    assert "last seen: ferry terminal" in cmp.meta.text()
    q, c = cmp.q_view.item.pixmap(), cmp.c_view.item.pixmap()
    assert q.size() == c.size() and q.width() >= 160  # the same scale
    qtbot.waitUntil(lambda: not cmp.c_photo.item.pixmap().isNull(), timeout=MS)
    cmp.q_view.set_zoom(2.0)
    assert cmp.c_view.zoom == 2.0  # zoom follows on both sides
    cmp.q_view.set_zoom(1.0)
    cmp.heatmap.setChecked(True)
    assert cmp.bar.isVisible()
    qtbot.waitUntil(lambda: cmp.explained is not None or "not available" in cmp.status.text(), timeout=MS)
    folder = os.environ.get("FASFINDER_SCREENSHOTS")
    if folder:
        cmp.grab().save(str(Path(folder) / "comparison.png"))
    cmp.close()


def test_clicking_another_photo_compares_with_it(qtbot, win, setup):
    _, host = setup
    query = photos("Colin_Powell")[8]
    search(qtbot, win, query)
    lst = win.matches.list
    lst.itemDoubleClicked.emit(lst.item(0))
    cmp = win.matches.comparison
    qtbot.waitUntil(lambda: cmp.crop is not None and cmp.others.count() == 3, timeout=MS)
    assert "matched photo" in cmp.others.item(0).text()
    first_crop, first = cmp.crop, dict(cmp.compared)
    other = cmp.others.item(2)
    image_id = int(other.data(Qt.ItemDataRole.UserRole))
    assert image_id != first["image_id"]
    cmp.others.itemClicked.emit(other)
    qtbot.waitUntil(lambda: cmp.compared["image_id"] == image_id, timeout=MS)
    # the score a search by photo gives that photo (the same stored embedding against the same query face)
    by_photo = host.call("search", str(query), by="photo", top_k=50, record=False)
    expected = next(m.similarity for m in by_photo.faces[0].matches if m.record_id == image_id)
    assert abs(cmp.compared["similarity"] - expected) < 1e-4, (cmp.compared, expected)
    assert cmp.compared["face_id"] != first["face_id"] and cmp.crop is not first_crop
    assert f"{expected:.3f}" in cmp.c_caption.text()
    qtbot.waitUntil(lambda: cmp.shown_photo == cmp.compared["image"], timeout=MS)  # its full photo
    # and back to the matched photo: its score is the one the candidate list showed
    cmp.others.itemClicked.emit(cmp.others.item(0))
    qtbot.waitUntil(lambda: cmp.compared["image_id"] == first["image_id"], timeout=MS)
    assert abs(cmp.compared["similarity"] - first["similarity"]) < 1e-4
    cmp.close()


def test_comparison_window_fits_960x600(qtbot, win):
    from PySide6.QtCore import QRect

    from ui.qtutil import fit_to_screen

    search(qtbot, win, photos("Colin_Powell")[7])
    win.matches.list.itemDoubleClicked.emit(win.matches.list.item(0))
    cmp = win.matches.comparison
    qtbot.waitUntil(lambda: cmp.crop is not None and cmp.others.count() == 3, timeout=MS)
    fit_to_screen(cmp, 1280, 800, QRect(0, 0, 960, 600))
    for heatmap in (False, True):  # the colour bar and its caption must not widen the window
        cmp.heatmap.setChecked(heatmap)
        hint = cmp.minimumSizeHint()
        assert hint.width() <= 960 and hint.height() <= 560, (heatmap, hint)
        assert cmp.width() <= 960 and cmp.height() <= 560
    cmp.close()
