"""Issue 17: a rejected candidate is not proposed again for that photo, and case ids are first-class
(the case list, a search restricted to cases), through the service and the CLI, on real LFW faces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.casework_util import lfw_gallery, lfw_photos

PERSONS = {"Colin_Powell": "case-A", "Tony_Blair": "case-A", "George_W_Bush": "case-B", "Donald_Rumsfeld": "case-B"}
ROOT = Path(__file__).resolve().parents[1]
photos = lfw_photos


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    settings, host = lfw_gallery(tmp_path_factory.mktemp("cases"), PERSONS, 2)
    host.close()
    from fasfinder.service import FasFinder

    ff = FasFinder(settings=settings)
    yield ff, settings
    ff.close()


def top_labels(res, face=0) -> list[str]:
    return [m.label for m in res.faces[face].persons]


def test_a_rejected_candidate_is_not_proposed_again_for_the_same_photo(gallery):
    ff, _ = gallery
    query = photos("Colin_Powell")[3]
    first = ff.search(query, top_k=3)
    assert first.error is None and top_labels(first)[0] == "Colin Powell", top_labels(first)
    top = first.faces[0].persons[0]
    ff.decide(first.query_id, 0, top.face_id, "reject", "not him: the ears differ")
    again = ff.search(query, top_k=3)  # the same photo searched again
    assert "Colin Powell" not in top_labels(again)
    assert [r["label"] for r in again.faces[0].rejected] == ["Colin Powell"]
    assert again.to_dict()["faces"][0]["rejected"][0]["person_id"] == top.person_id
    redo = ff.search_again(first.query_id)  # "Search again now"
    assert "Colin Powell" not in [m["label"] for m in redo["results"]["faces"][0]["matches"]]
    assert "face 1: Colin Powell left out (rejected for this photo)" in redo["changes"]
    other = ff.search(photos("Colin_Powell")[4], top_k=3)  # another photo: no decision, still proposed
    assert top_labels(other)[0] == "Colin Powell"
    ff.decide(again.query_id, 0, top.face_id, "unsure", "second look")  # a later unsure lifts the reject
    assert top_labels(ff.search(query, top_k=3))[0] == "Colin Powell"


def test_case_list_and_a_search_restricted_to_cases(gallery):
    ff, _ = gallery
    listed = {c["case_id"]: c for c in ff.cases()}
    assert set(listed) == {"case-A", "case-B"}
    assert sorted(p["label"] for p in listed["case-B"]["persons"]) == ["Donald Rumsfeld", "George W Bush"]
    assert listed["case-A"]["images"] == 4 and listed["case-A"]["faces"] == 4
    query = photos("Colin_Powell")[5]
    in_b = ff.search(query, top_k=5, case_ids=["case-B"])
    assert in_b.error is None and set(top_labels(in_b)) <= {"Donald Rumsfeld", "George W Bush"}
    assert top_labels(ff.search(query, top_k=5, case_ids=["case-A"]))[0] == "Colin Powell"
    assert set(top_labels(ff.search(query, top_k=5, case_ids=["case-A", "case-B"]))) == {n.replace("_", " ") for n in PERSONS}
    assert ff.search(query, case_ids=["no-such-case"]).faces[0].persons == []
    bad = ff.search(query, case_ids=[""])
    assert bad.error is not None and bad.error["code"] == "bad_argument"


def test_cli_cases_json_and_search_case(gallery):
    _, settings = gallery
    base = [sys.executable, str(ROOT / "main.py")]

    def cli(*args):
        out = subprocess.run([*base, *args, "--db", settings.gallery, "--json"], capture_output=True, text=True,
                             cwd=ROOT, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    cases = cli("cases")
    assert [c["case_id"] for c in cases] == ["case-A", "case-B"]
    hits = cli("search", str(photos("Colin_Powell")[5]), "--case", "case-B", "--no-liveness")
    labels = {m["label"] for m in hits[0]["faces"][0]["matches"]}
    assert labels and labels <= {"Donald Rumsfeld", "George W Bush"}
