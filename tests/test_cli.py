"""Command-line contract of docs/BENCHMARKS.md section 1: JSON lines, exit codes, error objects."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO


def run(*args, timeout=300):
    proc = subprocess.run([sys.executable, "main.py", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, [json.loads(x) for x in proc.stdout.splitlines() if x.strip()], proc.stderr


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, astronaut):
    from PIL import Image

    root = tmp_path_factory.mktemp("cli")
    folder = root / "photos" / "case-0042"
    folder.mkdir(parents=True)
    Image.fromarray(astronaut).save(folder / "a.png")
    Image.fromarray(astronaut[:, ::-1]).save(folder / "b.jpg")
    (folder / "notes.jpg").write_text("not an image")
    return root


@pytest.mark.slow
def test_enroll_search_history_audit(gallery):
    db = gallery / "g.db"
    code, lines, err = run("enroll", gallery / "photos", gallery / "photos" / "case-0042" / "notes.jpg",
                           "--db", db, "--json", "--case-id", "K-17")
    assert code == 0, err
    assert "Traceback" not in err
    by_name = {ln["path"].rsplit("/", 1)[-1]: ln for ln in lines}
    assert by_name["a.png"]["label"] == "case-0042" and by_name["a.png"]["record_id"] and by_name["a.png"]["faces"] >= 1
    assert by_name["b.jpg"]["record_id"] and by_name["b.jpg"]["error"] is None
    assert by_name["notes.jpg"]["error"]["code"] == "unsupported_format" and by_name["notes.jpg"]["record_id"] is None

    code, lines, err = run("enroll", gallery / "photos" / "case-0042" / "a.png", "--db", db, "--json")
    assert code == 0 and lines[0]["error"]["code"] == "duplicate"

    code, lines, err = run("search", gallery / "photos" / "case-0042" / "a.png", "--db", db, "--json", "--top", "5")
    assert code == 0, err
    (obj,) = lines
    (person,) = max(obj["faces"], key=lambda f: f["matches"][0]["similarity"])["matches"]  # one person, two photos
    assert person["label"] == "case-0042" and person["rank"] == 1 and len(person["photos"]) == 2
    assert set(person) >= {"rank", "person_id", "label", "case_id", "similarity", "confidence", "photos"}
    assert {"in_gallery", "threshold", "fpir"} <= set(obj["faces"][0]["decision"]) and "quality" in obj["faces"][0]
    code, lines, err = run("search", gallery / "photos" / "case-0042" / "a.png", "--db", db, "--json", "--top", "5",
                           "--by", "photo")
    assert code == 0, err
    (obj,) = lines
    assert obj["error"] is None and obj["query"].endswith("a.png")
    face = max(obj["faces"], key=lambda f: f["matches"][0]["similarity"])
    assert len(face["box"]) == 4 and "liveness" in face
    m = face["matches"]
    assert [x["rank"] for x in m] == list(range(1, len(m) + 1)) and len(m) == 2  # two faces enrolled
    assert m[0]["label"] == "case-0042" and m[0]["case_id"] == "K-17" and m[0]["similarity"] > 0.99
    assert set(m[0]) >= {"rank", "label", "record_id", "image", "similarity", "confidence"}

    code, lines, _ = run("history", "--db", db, "--json")
    assert code == 0 and lines and lines[0]["query"].endswith("a.png")
    code, lines, _ = run("audit", "--db", db, "--json")
    actions = [ln["action"] for ln in lines]
    assert code == 0 and "image.enroll" in actions and "search" in actions and all(ln["user"] for ln in lines)


def test_usage_errors_exit_2():
    code, _, err = run("search")
    assert code == 2 and "usage" in err.lower()
    code, _, err = run("frobnicate")
    assert code == 2


def test_command_failure_exits_1_with_json_error(tmp_path):
    bad_db = tmp_path / "not_a_db.db"
    bad_db.write_text("garbage that is not sqlite" * 100)
    code, lines, _ = run("audit", "--db", bad_db, "--json")
    assert code == 1 and lines[0]["error"]["code"] == "gallery_error"
    code, lines, _ = run("search", REPO / "main.py", "--db", tmp_path / "x.db", "--engine", "nope", "--json")
    assert code == 1 and lines[0]["error"]["code"] == "unknown_engine"
    code, lines, _ = run("eval", "lfw", "--lfw", tmp_path, "--json")
    assert code == 1 and lines[0]["error"]["code"] == "bad_argument"


def test_engines_lists_the_reference_engine():
    code, lines, _ = run("engines", "--json")
    names = {ln["name"]: ln for ln in lines}
    assert code == 0 and names["dlib-resnet"]["dim"] == 128
    assert names["dlib-resnet"]["card"]["files"][0]["sha256"]
