"""Casework in the window (issue 17; pytest-qt, offscreen, real models and SQLite through LocalHost):
delete asks and undoes, the Delete key, a dropped folder opens the import dialog with a preview and
the skipped files, import into an existing person, Add person (form, no JSON), merge with undo, the
search box. ``FASFINDER_SCREENSHOTS=DIR`` saves the dialogs as PNG (docs/screenshots/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fasfinder import perturb
from tests.casework_util import main_window, save_png, two_person_gallery

MS = 120_000


def _shot(widget, name: str) -> None:
    folder = os.environ.get("FASFINDER_SCREENSHOTS")
    if folder:
        widget.grab().save(str(Path(folder) / name))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("casework")
    settings, host, astro = two_person_gallery(root)
    yield {"root": root, "host": host, "settings": settings, "astro": astro}
    host.close()


@pytest.fixture
def win(qtbot, setup):
    with main_window(qtbot, setup["settings"], setup["host"]) as w:
        qtbot.waitUntil(lambda: w.gallery.tree.topLevelItemCount() >= 2, timeout=MS)
        yield w


def _select(qtbot, win, label: str):
    tree = win.gallery.tree
    qtbot.waitUntil(lambda: label in [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())],
                    timeout=MS)
    item = next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount()) if tree.topLevelItem(i).text(0) == label)
    tree.setCurrentItem(item)
    return item


def _labels(host) -> list[str]:
    return [p.label for p in host.call("persons")]


def _answer(monkeypatch, yes: bool) -> list[str]:
    import ui.docks.gallery as dock

    asked: list[str] = []
    monkeypatch.setattr(dock, "ask", lambda *a, **k: asked.append(a[-1]) or yes)
    return asked


def test_delete_key_asks_naming_what_goes_and_undo_restores(qtbot, win, setup, monkeypatch):
    from PySide6.QtCore import Qt

    host = setup["host"]
    before = host.call("counts")
    asked = _answer(monkeypatch, True)
    _select(qtbot, win, "Mirror Case")
    win.gallery.tree.setFocus()
    qtbot.keyClick(win.gallery.tree, Qt.Key.Key_Delete)
    assert asked and "\u201cMirror Case\u201d and their 1 photo(s)" in asked[0] and "Undo" in asked[0]
    qtbot.waitUntil(lambda: win.gallery.undo_row.isVisible(), timeout=MS)
    assert "Mirror Case" not in _labels(host) and host.call("counts")["faces"] == before["faces"] - 1
    assert host.call("trash")[0]["label"] == "Mirror Case"
    _shot(win.gallery, "gallery_undo.png")
    win.gallery.undo_btn.click()
    qtbot.waitUntil(lambda: "Mirror Case" in _labels(host), timeout=MS)
    assert host.call("counts") == before and host.call("trash") == []
    actions = [r["action"] for r in host.call("audit_log", 5)]
    assert "person.restore" in actions and "person.delete" in actions
    assert host.call("audit_verify")["ok"]


def test_dropped_folder_opens_the_import_dialog_with_preview_and_skipped_files(qtbot, win, setup):
    host, astro, root = setup["host"], setup["astro"], setup["root"]
    drop = root / "sightings_2026"
    for i in range(3):
        save_png(perturb.brightness(astro, 0.85 + 0.05 * i)[4 * i:, 4 * i:], drop / f"cam_{i}.png")
    (drop / "notes.txt").write_text("seen at the station")
    save_png(astro, drop / "again.png")  # the same content as an enrolled photo
    before = host.call("counts")
    win._dropped([str(drop)])
    dlg = win.gallery.import_dialog
    assert dlg is not None and dlg.isVisible() and host.call("counts") == before
    qtbot.waitUntil(lambda: dlg.ok.isEnabled(), timeout=MS)
    assert dlg.mode == "one" and dlg.plan["persons"][0]["label"] == "sightings 2026"  # underscores read as spaces
    skipped = {Path(s["path"]).name: s["code"] for s in dlg.plan["skipped"]}
    assert skipped == {"notes.txt": "unsupported_format", "again.png": "duplicate"}
    assert dlg.skipped.topLevelItemCount() == 2
    dlg.modes.button(2).setChecked(True)  # each photo a separate unknown
    dlg.case.setText("MP-17")
    qtbot.waitUntil(lambda: dlg.ok.isEnabled() and dlg.plan["mode"] == "unknowns", timeout=MS)
    assert sorted(p["label"] for p in dlg.plan["persons"]) == ["Unknown cam 0", "Unknown cam 1", "Unknown cam 2"]
    assert dlg.preview.topLevelItemCount() == 3 and dlg.ok.text() == "Import 3 photo(s)"
    _shot(dlg, "import_dialog.png")
    with qtbot.waitSignal(win.gallery.import_finished, timeout=MS) as done:
        dlg.accept()
    assert all(r.error is None for r in done.args[0]), [r.error for r in done.args[0]]
    text = win.gallery.progress_text.text()
    assert "3 photos enrolled, 2 skipped" in text and "notes.txt" in text and "again.png" in text
    people = {p.label: p for p in host.call("persons")}
    assert people["Unknown cam 1"].case_id == "MP-17" and people["Unknown cam 1"].metadata == {"unknown": True}
    for label in ("Unknown cam 0", "Unknown cam 1", "Unknown cam 2"):
        host.call("delete_person", people[label].person_id)


def test_add_person_form_then_import_into_that_person(qtbot, win, setup):
    from PySide6.QtCore import QDate

    host, astro, root = setup["host"], setup["astro"], setup["root"]
    dlg = win.gallery.add_person()
    dlg.label.setText("  Anna   Berg ")
    dlg.case.setText("MP-2026-0142")
    dlg.has_date.setChecked(True)
    dlg.date.setDate(QDate(2026, 11, 2))
    dlg.notes.setPlainText("Last seen at the ferry terminal")
    dlg.fields.add_row("height", "172 cm")
    dlg.fields.add_row("", "no name")
    _shot(dlg, "add_person.png")
    dlg._accept()
    assert dlg.isVisible() and "no name" in dlg.error.text()  # a value without a field name is refused
    dlg.fields.table.removeRow(1)
    dlg._accept()
    qtbot.waitUntil(lambda: "Anna Berg" in _labels(host), timeout=MS)
    anna = next(p for p in host.call("persons") if p.label == "Anna Berg")
    assert anna.case_id == "MP-2026-0142" and anna.images == []
    assert anna.metadata == {"date_missing": "2026-11-02", "notes": "Last seen at the ferry terminal",
                             "height": "172 cm"}
    folder = root / "more_of_anna"
    save_png(perturb.brightness(astro, 1.2)[10:, 10:], folder / "x.png")
    qtbot.waitUntil(lambda: "Anna Berg" in win.gallery.visible_labels(), timeout=MS)
    imp = win.gallery.import_folder(str(folder), into="Anna Berg")
    qtbot.waitUntil(lambda: imp.ok.isEnabled(), timeout=MS)
    assert imp.plan["persons"][0]["label"] == "Anna Berg" and imp.plan["persons"][0]["existing"]
    with qtbot.waitSignal(win.gallery.import_finished, timeout=MS):
        imp.accept()
    anna = next(p for p in host.call("persons") if p.label == "Anna Berg")
    assert len(anna.images) == 1 and _labels(host).count("Anna Berg") == 1
    # the search box: sqlite-utils full text over name, case id and the fields
    for text, expected in (("ferry", ["Anna Berg"]), ("MP-2026", ["Anna Berg"]), ("eil", ["Eileen Collins"]),
                           ("", None)):
        win.gallery.search.setText(text)
        if expected is None:
            qtbot.waitUntil(lambda: len(win.gallery.visible_labels()) == win.gallery.tree.topLevelItemCount())
        else:
            qtbot.waitUntil(lambda expected=expected: win.gallery.visible_labels() == expected, timeout=MS)
    host.call("delete_person", anna.person_id)


def test_rename_onto_an_existing_person_asks_to_merge_and_undo_splits(qtbot, win, setup, monkeypatch):
    host = setup["host"]
    asked = _answer(monkeypatch, True)
    _select(qtbot, win, "Mirror Case")
    dlg = win.gallery.edit_selected()
    dlg.label.setText("Eileen Collins")
    dlg._accept()
    qtbot.waitUntil(lambda: "Mirror Case" not in _labels(host), timeout=MS)
    assert asked and "Move the 1 photo(s) of \u201cMirror Case\u201d to \u201cEileen Collins\u201d" in asked[0]
    eileen = next(p for p in host.call("persons") if p.label == "Eileen Collins")
    assert len(eileen.images) == 2
    qtbot.waitUntil(lambda: win.gallery.undo_row.isVisible(), timeout=MS)
    win.gallery.undo_btn.click()
    qtbot.waitUntil(lambda: "Mirror Case" in _labels(host), timeout=MS)
    assert len(next(p for p in host.call("persons") if p.label == "Eileen Collins").images) == 1
    # answering No merges nothing
    asked = _answer(monkeypatch, False)
    _select(qtbot, win, "Mirror Case")
    win.gallery.merge_into(win.gallery._selected_record(), win.gallery._record("Eileen Collins"))
    assert asked and "Mirror Case" in _labels(host)


def test_trash_dialog_restores_and_purge_asks(qtbot, win, setup, monkeypatch):
    import ui.trash_dialog as trash_dialog

    host = setup["host"]
    mirror = next(p for p in host.call("persons") if p.label == "Mirror Case")
    host.call("delete_image", mirror.images[0]["id"])
    host.call("delete_person", mirror.person_id)
    dlg = win.gallery.open_trash()
    qtbot.waitUntil(lambda: dlg.tree.topLevelItemCount() >= 2, timeout=MS)
    _shot(dlg, "trash_dialog.png")
    asked: list[str] = []
    monkeypatch.setattr(trash_dialog, "confirm", lambda *a: asked.append(a[-1]) or False)
    n = len(host.call("trash"))
    dlg.purge_selected()
    assert asked and "for good" in asked[0] and len(host.call("trash")) == n  # No: nothing purged
    dlg.restore_selected()  # newest first: the (now empty) person
    qtbot.waitUntil(lambda: "Mirror Case" in _labels(host), timeout=MS)
    qtbot.waitUntil(lambda: dlg.tree.topLevelItemCount() == n - 1, timeout=MS)
    dlg.tree.setCurrentItem(dlg.tree.topLevelItem(0))
    dlg.restore_selected()  # then its photo
    qtbot.waitUntil(lambda: len(next(p for p in host.call("persons") if p.label == "Mirror Case").images) == 1,
                    timeout=MS)


def test_unreadable_file_after_a_search_clears_the_photo_without_a_traceback(qtbot, win, setup, capfd):
    import sys

    root = setup["root"]
    good = save_png(perturb.brightness(setup["astro"], 1.1), root / "query.png")
    win.open_query(str(good))
    qtbot.waitUntil(lambda: win.last_result is not None and win.last_result.error is None, timeout=MS)
    qtbot.waitUntil(lambda: win.matches.list.count() >= 1, timeout=MS)
    win.session.pool.wait_idle(timeout_ms=MS, settle_ms=200)
    seen = []
    old_hook = sys.excepthook
    sys.excepthook = lambda *exc: seen.append(exc)  # what Qt prints for an exception in a slot
    try:
        bad = root / "broken.jpg"
        bad.write_bytes(b"not a JPEG at all")
        win.open_query(str(bad))
        qtbot.waitUntil(lambda: win.banner.isVisible(), timeout=MS)
        win.session.pool.wait_idle(timeout_ms=MS, settle_ms=300)
        qtbot.wait(300)
    finally:
        sys.excepthook = old_hook
    assert not seen, seen
    assert "AttributeError" not in capfd.readouterr().err
    assert win.view.showing_message(), "the previous photo must not stay under the error banner"
    assert win.matches.list.count() == 0


def test_long_names_are_not_cut_off_in_the_gallery_tree(qtbot, win, setup):
    host = setup["host"]
    name = "Maria-Magdalena Alexandrescu-Vasilescu von Hohenzollern"
    pid = host.call("add_person", name, "MP-2026-000123")
    try:
        win.session.gallery_changed.emit()
        item = _select(qtbot, win, name)
        tree = win.gallery.tree
        assert tree.columnWidth(0) >= tree.fontMetrics().horizontalAdvance(item.text(0))
        assert tree.textElideMode().name == "ElideNone"
    finally:
        host.call("delete_person", pid)
