"""A scripted walk through the casework workflow in the real window, with numbered screenshots.

First start (the empty-gallery guidance), import a folder through the import dialog (one person per
subfolder, a case id), add a person with the form, search a photo, open the comparison view (and compare
with another photo of the candidate), reopen
the query from the history and record decisions (reject with a note, confirm with a note), search
again, export the report (HTML + PDF), the case list with its case file export (HTML + PDF; page 1 rendered
to ``case_file_report_page1.png``), delete a person and undo. Liveness is on (the shipped settings). Each step grabs the whole screen
(dialogs included) into ``<out>/walk_<tag>_<NN>_<step>.png``.

Run under Xvfb (LFW persons from ../shared/data/lfw; evaluation data, only enrolled and searched):

    xvfb-run -a -s "-screen 0 1440x900x24" python bench/walk_casework.py --tag 1440x900
    QT_SCALE_FACTOR=1.5 xvfb-run -a -s "-screen 0 1440x900x24" python bench/walk_casework.py --tag 150pct
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LFW = ROOT / ".." / "shared" / "data" / "lfw" / "images_deepfunneled"
PERSONS = ("Colin_Powell", "Tony_Blair", "George_W_Bush")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--tag", default="1440x900")
    args = ap.parse_args()
    if not LFW.is_dir():
        print("../shared/data/lfw is absent: the walk needs real faces", file=sys.stderr)
        return 2
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from fasfinder.host import LocalHost
    from fasfinder.settings import Settings
    from ui.help import first_start
    from ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv)
    work = Path(tempfile.mkdtemp(prefix="fasfinder-walk-"))
    settings = Settings(gallery=str(work / "gallery.db"))  # the shipped defaults: liveness on
    host = LocalHost(settings)
    win = MainWindow(settings, host, offer_demo=False, restore_layout=False)
    win.save_layout = lambda: None
    geo = app.primaryScreen().availableGeometry()
    win.resize(geo.width(), geo.height())
    win.move(geo.topLeft())
    win.clamp_to_screen()
    win.show()
    step = [0]
    args.out.mkdir(parents=True, exist_ok=True)

    def wait(cond, timeout=300.0, what=""):
        end = time.monotonic() + timeout
        while not cond():
            app.processEvents()
            time.sleep(0.02)
            if time.monotonic() > end:
                raise TimeoutError(f"step {step[0]}: waited {timeout:.0f} s for {what}")
        for _ in range(20):
            app.processEvents()
            time.sleep(0.01)

    def shot(name: str) -> None:
        step[0] += 1
        for _ in range(30):
            app.processEvents()
            time.sleep(0.01)
        path = args.out / f"walk_{args.tag}_{step[0]:02d}_{name}.png"
        raw = path.with_suffix(".raw.png")
        app.primaryScreen().grabWindow(0).save(str(raw))
        from PIL import Image  # a 256-colour palette keeps the screenshots small

        with Image.open(raw) as im:
            im.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
        raw.unlink()
        print(path.name, flush=True)

    def answer_modal(name: str, button) -> None:
        """Screenshot the next modal box and press ``button`` (a StandardButton or a button text)."""

        def poll():
            box = app.activeModalWidget()
            if not isinstance(box, QMessageBox):
                QTimer.singleShot(50, poll)
                return
            shot(name)
            if isinstance(button, str):
                target = next(b for b in box.buttons() if b.text().startswith(button))
            else:
                target = box.button(button)
            target.click()

        QTimer.singleShot(50, poll)

    wait(lambda: "loading" not in win.gallery.summary.text().lower(), what="the gallery summary")
    # 1. first start: the empty-gallery guidance
    answer_modal("first_start", "Later")
    first_start(win)
    # 2. import a folder through the import dialog: one person per subfolder, a case id
    folder = work / "missing_persons"
    for name in PERSONS:
        (folder / name).mkdir(parents=True)
        for p in sorted((LFW / name).glob("*.jpg"))[:3]:
            shutil.copy(p, folder / name / p.name)
    dlg = win.gallery.import_folder(str(folder))
    wait(lambda: dlg.ok.isEnabled(), what="the import preview")
    dlg.modes.button(1).setChecked(True)
    dlg.case.setText("MP-2026-0142")
    wait(lambda: dlg.ok.isEnabled() and dlg.plan["mode"] == "subfolders", what="the per-subfolder preview")
    shot("import_dialog")
    dlg.accept()
    wait(lambda: win.gallery.tree.topLevelItemCount() == 3, what="three imported persons")
    shot("imported")
    # 3. add a person with the form
    form = win.gallery.add_person()
    form.label.setText("Anna Berg")
    form.case.setText("MP-2026-0150")
    form.notes.setPlainText("Last seen at the ferry terminal, red jacket")
    form.fields.add_row("height", "172 cm")
    shot("add_person")
    form._accept()
    wait(lambda: win.gallery.tree.topLevelItemCount() == 4, what="the added person")
    # 4. search a photo
    query = sorted((LFW / "Colin_Powell").glob("*.jpg"))[6]
    win.open_query(str(query))
    wait(lambda: win.session.result is not None and win.matches.list.count() >= 1, what="the matches")
    shot("search")
    # 5. the comparison view (double-click on the top candidate)
    win.matches.list.itemDoubleClicked.emit(win.matches.list.item(0))
    cmp = win.matches.comparison
    wait(lambda: cmp.crop is not None and not cmp.c_photo.item.pixmap().isNull(), what="the comparison")
    shot("comparison")
    cmp.heatmap.setChecked(True)
    wait(lambda: cmp.explained is not None or "not available" in cmp.status.text(), what="the heatmaps")
    shot("comparison_heatmap")
    free = app.primaryScreen().availableGeometry()
    print(f"comparison {cmp.width()}x{cmp.height()} (minimum {cmp.minimumSizeHint().width()}x"
          f"{cmp.minimumSizeHint().height()}) on a free area of {free.width()}x{free.height()}", flush=True)
    # 5b. click another photo of the candidate: the query face is compared with that photo
    cmp.heatmap.setChecked(False)
    wait(lambda: cmp.others.count() >= 2, what="the candidate's photos")
    other = cmp.others.item(1)
    cmp.others.setCurrentItem(other)
    cmp.others.itemClicked.emit(other)
    wait(lambda: cmp.compared["image_id"] != cmp.match.record_id, what="the other photo")
    wait(lambda: cmp.shown_photo == cmp.compared["image"], what="its full photo")
    shot("comparison_other_photo")
    cmp.close()
    # 6. reopen from the history and decide: reject the top candidate, confirm the second, with notes
    wait(lambda: win.history.list.count() >= 1, what="the history")
    rec = win.history._reopen_item(win.history.list.item(0))
    wait(lambda: rec.tree.topLevelItemCount() >= 1, what="the case record")
    for row, (choice, note) in enumerate(((1, "not him: different ear shape"), (0, "same scar on the chin"))):
        face = rec.tree.topLevelItem(0)  # the tree is rebuilt after each decision
        if face.childCount() <= row:
            break
        rec.tree.setCurrentItem(face.child(row))
        rec.choice.setCurrentIndex(choice)
        rec.note.setText(note)
        rec.status.setText("")
        rec.decide()
        wait(lambda: rec.status.text().startswith("Recorded"), what="the recorded decision")
    shot("decided")
    # 7. search again now: the rejected candidate is listed last, greyed
    rec.again_btn.click()
    wait(lambda: bool(getattr(rec, "changes", None) is not None and "Searched again" in rec.status.text()),
         what="search again")
    wait(lambda: win.session.result is not None and win.matches.list.count() >= 1, what="the new matches")
    shot("searched_again")
    # 8. export the report (HTML and PDF)
    rec.export_report(str(work / "report.html"))
    wait(lambda: getattr(rec, "last_report", None) is not None or "No report" in rec.status.text(), what="the report")
    shot("report_exported")
    rec.close()
    # 9. the case list: every case with persons, photos, queries; export the case file (HTML and PDF)
    cases = win.cases
    cases.raise_()
    wait(lambda: cases.tree.topLevelItemCount() >= 2, what="the case list")
    cases.select("MP-2026-0142")
    cases.export_selected(str(work / "case.html"))
    wait(lambda: cases.last_report is not None or "No case report" in cases.status.text(), what="the case report")
    shot("case_list")
    if cases.last_report is not None:
        import pypdfium2 as pdfium

        doc = pdfium.PdfDocument(cases.last_report["pdf"])
        doc[0].render(scale=1.5).to_pil().convert("RGB").save(args.out / "case_file_report_page1.png", optimize=True)
        doc.close()
    print("status bar:", win.status_info.text(), flush=True)
    win.gallery.raise_()
    # 10. delete a person (asked, naming what goes) and undo
    tree = win.gallery.tree
    item = next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount()) if tree.topLevelItem(i).text(0) == "Tony Blair")
    tree.setCurrentItem(item)
    answer_modal("delete_asks", QMessageBox.StandardButton.Yes)
    win.gallery.delete_selected()
    wait(lambda: win.gallery.undo_row.isVisible(), what="the undo row")
    shot("deleted_undo_offered")
    win.gallery.undo_btn.click()
    wait(lambda: tree.topLevelItemCount() == 4, what="the restored person")
    shot("undone")
    win.session.pool.cancel_all()
    win.session.pool.wait_idle(timeout_ms=60_000, settle_ms=0)
    win.close()
    host.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
