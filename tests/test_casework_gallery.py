"""Soft delete (trash, undo, purge after the retention period), merge, new persons and the person
search of the gallery (issue 17, safe edits); real SQLite + FAISS, synthetic faces and vectors."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from fasfinder.errors import GalleryError, NotFoundInGallery
from fasfinder.gallery import Gallery
from tests.gallery_fakes import RGB, fake_face, unit_vectors

DIM = 8


def _add(g: Gallery, i: int, label: str, vec: np.ndarray, case_id: str | None = None, metadata=None) -> int:
    return g.add_image(label=label, path=f"/photos/img{i}.png", sha256=f"sha{i}", width=64, height=64, rgb=RGB,
                       faces=[fake_face()], embeddings={"e": vec[None]}, case_id=case_id, metadata=metadata)


@pytest.fixture
def gallery(tmp_path):
    rng = np.random.default_rng(7)
    vecs = unit_vectors(rng, 4, dim=DIM)
    g = Gallery(tmp_path / "g.db")
    for i, label in enumerate(["Anna Berg", "Anna Berg", "Carl Dahl", "Eva Fisk"]):
        _add(g, i, label, vecs[i], case_id=f"C-{label[0]}", metadata={"notes": f"seen near {label.split()[1]}"})
    yield g, vecs
    g.close()


def _top(g: Gallery, vec) -> list[str]:
    return [h.label for h in g.search("e", vec[None], k=4, audit=False)[0]]


def test_person_delete_goes_to_trash_and_restore_brings_it_back(gallery):
    g, vecs = gallery
    anna = next(p for p in g.persons() if p.label == "Anna Berg")
    assert g.delete_person(anna.person_id) == 2
    assert "Anna Berg" not in [p.label for p in g.persons()]
    assert "Anna Berg" not in _top(g, vecs[0])  # out of the index too
    (entry,) = g.trash()
    assert entry["kind"] == "person" and entry["label"] == "Anna Berg" and "2 photo(s)" in entry["what"]
    assert entry["purge_after"] is not None
    back = g.restore(entry["id"])
    assert back["faces"] == 2 and g.trash() == []
    restored = g.person(anna.person_id)  # same id, same photos
    assert [im["id"] for im in restored.images] == [im["id"] for im in anna.images]
    assert restored.metadata == anna.metadata and restored.case_id == "C-A"
    assert _top(g, vecs[0])[0] == "Anna Berg"
    actions = [r["action"] for r in g.audit_log()]
    assert actions[:2] == ["person.restore", "person.delete"]
    assert g.verify_audit()["ok"]
    g.flush()
    check = g.verify_index("e")
    assert check["consistent"] and check["index_faces"] == check["sqlite_faces"] == 4, check


def test_restore_survives_a_reopen_and_the_index_is_consistent(tmp_path, gallery):
    g, vecs = gallery
    img = g.person(g.find_persons("Carl")[0]).images[0]
    g.delete_image(img["id"])
    path = g.path
    g.close()
    g2 = Gallery(path)
    try:
        (entry,) = g2.trash()
        assert entry["kind"] == "image" and entry["label"] == "Carl Dahl"
        g2.restore(entry["id"])
        assert _top(g2, vecs[2])[0] == "Carl Dahl"
        assert g2.counts() == {"persons": 3, "images": 4, "faces": 4}
    finally:
        g2.close()


def test_restore_conflicts_are_typed_errors_and_change_nothing(gallery):
    g, vecs = gallery
    eva = g.find_persons("Eva")[0]
    g.delete_person(eva)
    (entry,) = g.trash()
    _add(g, 9, "Eva Fisk", vecs[3] * -1)  # a new person with the same label
    with pytest.raises(GalleryError) as err:
        g.restore(entry["id"])
    assert err.value.code == "restore_conflict"
    assert len(g.trash()) == 1  # still there, nothing half-restored
    with pytest.raises(NotFoundInGallery):
        g.restore(12345)


def test_purge_after_the_retention_period(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "g.db"
    with Gallery(path, trash_days=30) as g:
        _add(g, 0, "Old", unit_vectors(rng, dim=DIM)[0])
        _add(g, 1, "Recent", unit_vectors(rng, dim=DIM)[0])
        g.delete_person(g.find_persons("Old")[0])
        g.delete_person(g.find_persons("Recent")[0])
    conn = sqlite3.connect(path)  # the "Old" delete happened 31 days ago
    conn.execute("UPDATE trash SET deleted_at = '2000-01-01T00:00:00.000+00:00' WHERE label = 'Old'")
    conn.commit()
    conn.close()
    with Gallery(path, trash_days=30) as g:
        assert [e["label"] for e in g.trash()] == ["Recent"]
        purge = g.audit_log(1)[0]
        assert purge["action"] == "trash.purge" and purge["details"]["by"] == "retention"
        assert purge["details"]["retention_days"] == 30 and len(purge["details"]["trash_ids"]) == 1
        assert g.purge_trash(g.trash()[0]["id"]) == 1 and g.trash() == []
        assert g.verify_audit()["ok"]


def test_merge_moves_photos_and_is_undone_from_the_trash(gallery):
    g, vecs = gallery
    carl, eva = g.find_persons("Carl")[0], g.find_persons("Eva")[0]
    out = g.merge_persons(eva, carl)
    assert out["images_moved"] == 1 and out["label"] == "Carl Dahl"
    assert len(g.person(carl).images) == 2 and "Eva Fisk" not in [p.label for p in g.persons()]
    assert _top(g, vecs[3])[0] == "Carl Dahl"
    (entry,) = g.trash()
    assert entry["kind"] == "merge" and "into 'Carl Dahl'" in entry["what"]
    g.restore(entry["id"])
    assert len(g.person(carl).images) == 1 and len(g.person(eva).images) == 1
    assert _top(g, vecs[3])[0] == "Eva Fisk"
    with pytest.raises(GalleryError):
        g.merge_persons(carl, carl)


def test_add_person_then_photos_go_into_it_and_duplicates_are_refused(gallery):
    g, vecs = gallery
    pid = g.add_person("Gus Holm", case_id="C-9", metadata={"date_missing": "2026-11-02"})
    assert g.person(pid).images == [] and g.person(pid).metadata == {"date_missing": "2026-11-02"}
    with pytest.raises(GalleryError) as err:
        g.add_person("Gus Holm")
    assert err.value.code == "duplicate"
    _add(g, 20, "Gus Holm", -vecs[0])
    assert len(g.person(pid).images) == 1


def test_person_search_uses_full_text_on_label_case_and_metadata(gallery):
    g, _ = gallery
    names = lambda q: [g.person(i).label for i in g.find_persons(q)]
    assert names("ann") == ["Anna Berg"]  # word prefix
    assert names("C-D") == ["Carl Dahl"]  # case id
    assert names("near fisk") == ["Eva Fisk"]  # metadata words
    assert names("") == ["Anna Berg", "Carl Dahl", "Eva Fisk"]
    assert names("zzz") == []
    g.update_person(g.find_persons("Eva")[0], label="Eva Lund")
    assert names("lund") == ["Eva Lund"] and names('"') == names("")  # kept in sync; quotes are harmless
    assert g._records.db.sql["persons"].detect_fts() == "persons_fts"


def test_what_changed_names_new_gone_and_moved_candidates():
    from fasfinder.report import what_changed

    m = lambda fid, label, s: {"face_id": fid, "label": label, "similarity": s}
    old = {"faces": [{"matches": [m(1, "A", 0.90), m(2, "B", 0.80), m(3, "C", 0.70)]}]}
    new = {"faces": [{"matches": [m(1, "A", 0.905), m(2, "B", 0.60), m(4, "D", 0.95)]}, {"matches": []}]}
    assert what_changed(old, new) == ["2 face(s) found now, 1 recorded", "face 1: B similarity 0.800 -> 0.600",
                                      "face 1: new candidate D (similarity 0.950)", "face 1: C is no longer a candidate"]
    assert what_changed(old, old) == []
