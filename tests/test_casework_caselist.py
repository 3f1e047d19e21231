"""Issue 17, the case list as its own view (pytest-qt, offscreen, real models and LFW faces through
LocalHost): the Cases dock lists every case id with persons, photos, recorded queries and last activity;
its filter filters; "Search in this case" restricts the search; "Export case report" writes the case
file as HTML and PDF whose text holds the case id, the candidates and the sha256s; the ``case-report``
CLI writes the same HTML. Also the comparison view's "other photos": clicking one compares the query
face with that photo (score from its stored embedding)."""

from __future__ import annotations

import json

import pytest

from tests.casework_util import lfw_gallery, lfw_photos, main_window, pdf_text

MS = 180_000
PERSONS = {"Colin_Powell": "MP-0142", "Tony_Blair": "MP-0142", "George_W_Bush": "MP-0150"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    settings, host = lfw_gallery(tmp_path_factory.mktemp("caselist"), PERSONS, 3)
    # two recorded queries: one of Colin Powell (case MP-0142), one restricted to case MP-0150
    res = host.call("search", str(lfw_photos("Colin_Powell")[5]))
    host.call("decide", res.query_id, 0, res.faces[0].persons[0].face_id, "confirm", "same ears")
    host.call("search", str(lfw_photos("George_W_Bush")[5]), case_ids=["MP-0150"])
    yield settings, host, res
    host.close()


def test_case_list_counts_persons_photos_queries(setup):
    _, host, res = setup
    rows = {c["case_id"]: c for c in host.call("case_list")}
    assert set(rows) == {"MP-0142", "MP-0150"}
    a, b = rows["MP-0142"], rows["MP-0150"]
    assert (a["persons"], a["images"], b["persons"], b["images"]) == (2, 6, 1, 3)
    assert sorted(a["labels"]) == ["Colin Powell", "Tony Blair"]
    assert a["queries"] >= 1 and b["queries"] >= 1  # the Powell search lists MP-0142 candidates
    decision_at = host.call("query_record", res.query_id)["decisions"][0]["at"]
    assert a["last_activity"] >= decision_at  # the decision is the newest activity of that case
    assert res.query_id in host.call("case_file_report", "MP-0142")["queries"]
    with pytest.raises(Exception) as err:
        host.call("case_file_report", "no-such-case")
    assert getattr(err.value, "code", "") == "not_in_gallery"


def test_cases_dock_lists_filters_searches_and_exports(qtbot, setup, tmp_path):
    settings, host, res = setup
    with main_window(qtbot, settings, host) as win:
        dock = win.cases
        qtbot.waitUntil(lambda: dock.tree.topLevelItemCount() == 2, timeout=MS)
        first = dock.tree.topLevelItem(0)
        assert [first.text(c) for c in range(4)] == ["MP-0142", "2", "6", str(dock.cases[0]["queries"])]
        dock.filter.setText("bush")  # a person's name finds the case
        assert dock.shown_cases() == ["MP-0150"]
        dock.filter.setText("0142")
        assert dock.shown_cases() == ["MP-0142"]
        dock.filter.setText("")
        assert dock.shown_cases() == ["MP-0142", "MP-0150"]
        # search in this case: the filter of the window is set, the next search compares with it only
        qtbot.waitUntil(lambda: win.gallery.case_filter.combo.count() == 3, timeout=MS)
        dock.select("MP-0150")
        dock.search_btn.click()
        assert win.gallery.case_filter.case_ids() == ["MP-0150"]
        win.open_query(str(lfw_photos("Colin_Powell")[6]))
        qtbot.waitUntil(lambda: win.session.result is not None and win.matches.list.count() >= 1, timeout=MS)
        rows = [win.matches.list.item(i).text() for i in range(win.matches.list.count())]
        assert all("George W Bush" in r for r in rows), rows
        # export the case file: HTML and PDF with the case id, the candidates and their photos' sha256
        dock.select("MP-0142")
        dock.export_selected(str(tmp_path / "case.html"))
        qtbot.waitUntil(lambda: dock.last_report is not None or "No case report" in dock.status.text(), timeout=MS)
        out = dock.last_report
        assert out is not None, dock.status.text()
        html = (tmp_path / "case.html").read_text(encoding="utf-8")
        text = pdf_text(out["pdf"])
        entry = host.call("query_record", res.query_id)
        top = entry["results"]["faces"][0]["matches"][0]
        sha = next(im["sha256"] for im in host.call("person", top["person_id"]).images if im["id"] == top["record_id"])
        for needle in ("MP-0142", "Colin Powell", "Tony Blair", entry["query_sha256"], sha, "confirm", "same ears"):
            assert needle in html, needle
        flat = "".join(text.split())  # the PDF breaks long sha256s over lines
        for needle in ("MP-0142", "ColinPowell", entry["query_sha256"], sha, "confirm", "sameears"):
            assert needle in flat, needle


def test_case_report_cli_writes_the_case_file(setup, tmp_path, capsys):
    from fasfinder import cli

    settings, _host, res = setup
    out = tmp_path / "cli-case.html"
    assert cli.main(["case-report", "MP-0142", str(out), "--db", settings.gallery, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["case_id"] == "MP-0142" and res.query_id in printed["queries"]
    assert "Case file \u2013 MP-0142" in out.read_text(encoding="utf-8")
    assert cli.main(["case-report", "nope", str(tmp_path / "x.html"), "--db", settings.gallery]) != 0


def test_case_report_pdf_needs_the_programs_renderer(setup, tmp_path, capsys, monkeypatch):
    """Without main.py's Qt renderer (a library user of fasfinder.cli) --pdf is a typed error; the HTML is written."""

    from fasfinder import cli, report

    settings, _host, _res = setup
    monkeypatch.setattr(report, "_pdf_renderer", None)
    out = tmp_path / "lib.html"
    assert cli.main(["case-report", "MP-0142", str(out), "--pdf", str(tmp_path / "lib.pdf"), "--db", settings.gallery,
                     "--json"]) == 1
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"]["code"] == "bad_argument"
    assert out.is_file() and not (tmp_path / "lib.pdf").exists()
