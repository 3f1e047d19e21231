"""The case record (issue 17): decisions with notes survive a restart and are audited, History's
Reopen shows the results as recorded (not re-run on today's gallery), the report (HTML from the
core, PDF printed by Qt) holds the candidates and the hashes; CLI ``decide`` / ``report`` / ``history``.
``FASFINDER_SCREENSHOTS=DIR`` saves the dialog and the report page as PNG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fasfinder import perturb
from tests.casework_util import pdf_text, save_png, two_person_gallery
from tests.conftest import REPO

MS = 120_000


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A gallery with two persons and one recorded search of a brightened astronaut."""

    root = tmp_path_factory.mktemp("record")
    settings, host, astro = two_person_gallery(root, case_id="MP-1")
    query = save_png(perturb.brightness(astro, 1.1), root / "sighting.png")
    res = host.call("analyze", str(query), record=True)
    assert res.error is None and res.query_id is not None and res.faces[0].matches
    host.close()
    return {"root": root, "settings": settings, "query_id": res.query_id, "sha256": res.sha256,
            "top": res.faces[0].matches[0], "matches": [m for f in res.faces for m in f.matches]}


def test_decision_survives_a_restart_and_is_audited(recorded):
    from fasfinder.errors import BadArgument, NotFoundInGallery
    from fasfinder.host import LocalHost

    top = recorded["top"]
    host = LocalHost(recorded["settings"])
    row = host.call("decide", recorded["query_id"], 0, top.face_id, "confirm", "same scar above the left eye")
    assert row["decision"] == "confirm" and row["user"]
    with pytest.raises(BadArgument):
        host.call("decide", recorded["query_id"], 0, top.face_id, "maybe")
    with pytest.raises(NotFoundInGallery):
        host.call("decide", 999_999, 0, top.face_id, "reject")
    host.close()
    host = LocalHost(recorded["settings"])  # a restart: a new service on the same gallery file
    try:
        entry = next(e for e in host.call("history") if e["id"] == recorded["query_id"])
        (d,) = entry["decisions"]
        assert (d["face_id"], d["decision"], d["note"]) == (top.face_id, "confirm", "same scar above the left eye")
        audit = next(r for r in host.call("audit_log", 20) if r["action"] == "decision.record")
        assert audit["details"]["decision"] == "confirm" and audit["details"]["query_id"] == recorded["query_id"]
        assert host.call("audit_verify")["ok"]
    finally:
        host.close()


def pdf_page_png(pdf_path, png_path):
    """Page 1 of the exported PDF rendered by pdfium (pypdfium2) to a PNG; asserts it is not blank:
    ink on the page (dark pixels for the text) and colour (the candidates' face crops)."""

    import numpy as np
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf_path))
    try:
        image = doc[0].render(scale=1.5).to_pil().convert("RGB")
    finally:
        doc.close()
    image.save(png_path)
    px = np.asarray(image).astype(np.int16)
    dark = (px.max(axis=2) < 100).mean()
    coloured = (px.max(axis=2) - px.min(axis=2) > 40).mean()
    assert image.width > 800 and dark > 0.002 and coloured > 0.002, (image.size, dark, coloured)
    return image


def test_reopen_shows_the_recorded_results_and_exports_the_report(qtbot, recorded, tmp_path):
    from fasfinder.host import LocalHost
    from ui.case_record import render_png
    from ui.main_window import MainWindow

    host = LocalHost(recorded["settings"])
    win = MainWindow(recorded["settings"], host, offer_demo=False, restore_layout=False)
    qtbot.addWidget(win)
    win.show()
    try:
        # today's gallery no longer holds the recorded top candidate (deleted into the trash)
        people = {p.label: p for p in host.call("persons")}
        host.call("delete_person", people[recorded["top"].label].person_id)
        qtbot.waitUntil(lambda: win.history.list.count() >= 1, timeout=MS)
        before = host.call("counts")
        dlg = win.history._reopen_item(win.history.list.item(0))
        assert dlg is not None and dlg.entry["id"] == recorded["query_id"]
        cand = dlg.tree.topLevelItem(0).child(0)
        assert cand.text(0) == f"1. {recorded['top'].label}"  # as recorded, although deleted since
        assert cand.text(2) == f"{recorded['top'].similarity:.3f}"
        assert host.call("counts") == before and len(host.call("history")) == 1  # nothing was searched again
        dlg.tree.setCurrentItem(dlg.tree.topLevelItem(0).child(1))
        dlg.choice.setCurrentIndex(1)  # reject
        dlg.note.setText("different ear shape")
        dlg.decide()
        qtbot.wait(3000)
        assert dlg.status.text().startswith("Recorded"), dlg.status.text()
        qtbot.waitUntil(lambda: any(d["decision"] == "reject" for d in dlg.entry["decisions"]), timeout=MS)
        qtbot.waitUntil(lambda: dlg.tree.topLevelItem(0).child(1).text(4) == "reject", timeout=MS)
        assert dlg.tree.topLevelItem(0).child(1).text(5) == "different ear shape"
        if os.environ.get("FASFINDER_SCREENSHOTS"):
            dlg.grab().save(str(Path(os.environ["FASFINDER_SCREENSHOTS"]) / "case_record.png"))
        dlg.export_report(str(tmp_path / "report.html"))
        qtbot.waitUntil(lambda: getattr(dlg, "last_report", None) is not None or "No report" in dlg.status.text(),
                        timeout=MS)
        assert getattr(dlg, "last_report", None) is not None, dlg.status.text()
        rep = dlg.last_report
        text = Path(rep["html"]).read_text(encoding="utf-8")
        assert recorded["sha256"] in text and "Eileen Collins" in text and "Mirror Case" in text
        assert "different ear shape" in text and "reject" in text and "(no longer in the gallery)" in text
        kept = [m for m in recorded["matches"] if m.label != recorded["top"].label]
        assert kept and text.count("data:image/jpeg;base64,") == len(kept)  # crops of the candidates still there
        import hashlib

        assert hashlib.sha256(Path(rep["html"]).read_bytes()).hexdigest() == rep["sha256"]
        pdf = Path(rep["pdf"]).read_bytes()
        assert pdf.startswith(b"%PDF") and len(pdf) > 5000
        from pypdf import PdfReader

        pdf_raw = "".join(page.extract_text() for page in PdfReader(rep["pdf"]).pages)
        squeezed = "".join(pdf_raw.split())  # hashes may wrap across lines in their table cell
        assert recorded["sha256"] in squeezed and "EileenCollins" in squeezed and "MirrorCase" in squeezed
        assert "earshape" in squeezed and "reject" in pdf_raw  # (Qt sets "ff" as a ligature glyph)
        page = pdf_page_png(rep["pdf"], tmp_path / "report_pdf_page1.png")
        if os.environ.get("FASFINDER_SCREENSHOTS"):
            render_png(text, str(Path(os.environ["FASFINDER_SCREENSHOTS"]) / "case_report_page.png"))
            page.save(Path(os.environ["FASFINDER_SCREENSHOTS"]) / "report_pdf_page1.png")
        # "Search again now" is the separate action: a new query, and what changed against the record
        n_history = len(host.call("history"))
        with qtbot.waitSignal(win.history.reopen, timeout=MS):
            dlg.again_btn.click()
        assert len(host.call("history")) == n_history + 1
        gone = f"face 1: {recorded['top'].label} is no longer a candidate"
        assert gone in dlg.changes and gone in dlg.status.text()
    finally:
        win.close()
        host.call("restore", host.call("trash")[0]["id"])
        host.close()


def test_cli_decide_report_and_history_json(recorded, tmp_path):
    env = dict(os.environ, FASFINDER_HOST="local")

    def cli(*args):
        out = subprocess.run([sys.executable, "main.py", *map(str, args), "--db", recorded["settings"].gallery,
                              "--json"], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
        return out.returncode, [json.loads(ln) for ln in out.stdout.splitlines() if ln.strip()], out.stderr

    code, lines, err = cli("decide", recorded["query_id"], recorded["top"].face_id, "--decision", "unsure",
                           "--note", "photo too dark")
    assert code == 0 and lines[0]["decision"] == "unsure", err
    code, lines, err = cli("history")
    entry = next(e for e in lines if e["id"] == recorded["query_id"])
    assert code == 0 and any(d["decision"] == "unsure" and d["note"] == "photo too dark" for d in entry["decisions"])
    code, lines, err = cli("report", recorded["query_id"], tmp_path / "r.html", "--pdf", tmp_path / "r.pdf")
    assert code == 0 and lines[0]["sha256"] and (tmp_path / "r.html").is_file(), err
    assert "photo too dark" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert lines[0]["pdf"] == str(tmp_path / "r.pdf") and len(lines[0]["pdf_sha256"]) == 64
    text = "".join(pdf_text(tmp_path / "r.pdf").split())  # the PDF breaks long sha256s over lines
    assert "phototoodark" in text and recorded["sha256"] in text
    code, lines, err = cli("decide", recorded["query_id"], recorded["top"].face_id, "--decision", "maybe")
    assert code == 2
