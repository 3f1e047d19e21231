"""Two workstations syncing through one real PostgreSQL server, the conflict rules, offline work."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fasfinder.errors import ServerUnavailable
from fasfinder.gallery import Gallery
from fasfinder.server import replica

from .gallery_fakes import unit_vectors
from .server_helpers import DIM, content, enroll, faiss_consistent, server_content, sync


def _conflicts(gallery: Gallery) -> list[str]:
    with gallery.snapshot() as conn:
        return [r[0] for r in conn.execute("SELECT rule FROM sync_conflicts ORDER BY id")]


def _top(gallery: Gallery, queries: np.ndarray) -> list[list[tuple]]:
    hits = gallery.search("test", queries, k=5, audit=False)
    return [[(h.label, round(h.similarity, 5)) for h in row] for row in hits]


def test_two_workstations_2x500_concurrent_one_offline(office, tmp_path):
    pg, db = office
    a, b = Gallery(tmp_path / "a.db"), Gallery(tmp_path / "b.db")

    def workstation_a():  # online: syncs every 100 enrollments while B works offline
        for i in range(500):
            enroll(a, f"A-person-{i % 120}", f"a-{i}")
            if i % 100 == 99:
                sync(a, pg, db, "alice")

    t = threading.Thread(target=workstation_a)
    t.start()
    for i in range(500):  # offline: no sync until the end
        enroll(b, f"B-person-{i % 80}", f"b-{i}")
    t.join()
    assert replica.status(b)["attached"] is False  # b never talked to the server until now
    sync(b, pg, db, "bob")
    sync(a, pg, db, "alice")
    union = server_content(pg, db)
    assert len(union) == 1000 and len({r[2] for r in union}) == 1000  # 1000 photos, none twice
    assert content(a) == union == content(b)
    assert a.counts() == b.counts() == {"persons": 200, "images": 1000, "faces": 1000}
    assert faiss_consistent(a) and faiss_consistent(b)
    queries = unit_vectors(np.random.default_rng(7), 20, dim=DIM)
    assert _top(a, queries) == _top(b, queries)
    assert replica.status(a)["pending"] == replica.status(b)["pending"] == 0
    # a second sync changes nothing (idempotent)
    before = content(a)
    report = sync(a, pg, db, "alice")
    assert report.pushed == 0 and content(a) == before
    a.close(), b.close()


def test_updates_and_deletions_reach_the_other_replica(office, tmp_path):
    pg, db = office
    a, b = Gallery(tmp_path / "a.db"), Gallery(tmp_path / "b.db")
    for i in range(6):
        enroll(a, f"P{i}", f"img-{i}")
    sync(a, pg, db, "alice"), sync(b, pg, db, "bob")
    pid = {r.label: r.person_id for r in a.persons()}
    a.update_person(pid["P0"], metadata={"height_cm": 171})
    a.delete_person(pid["P1"])
    a.delete_image(a.person(pid["P2"]).images[0]["id"])
    sync(a, pg, db, "alice"), sync(b, pg, db, "bob")
    labels_b = {r.label: r for r in b.persons()}
    assert labels_b["P0"].metadata == {"height_cm": 171}
    assert "P1" not in labels_b
    assert labels_b["P2"].images == []
    assert content(a) == content(b) == server_content(pg, db)
    assert faiss_consistent(b)


def test_conflict_same_photo_enrolled_twice(office, tmp_path):
    pg, db = office
    a, b = Gallery(tmp_path / "a.db"), Gallery(tmp_path / "b.db")
    enroll(a, "Anna", "same-photo")
    enroll(b, "Anne", "same-photo")  # the same file, another label, enrolled offline in the other office
    sync(a, pg, db, "alice")
    sync(b, pg, db, "bob")
    assert _conflicts(b) == ["same_photo_enrolled_twice"]
    sync(a, pg, db, "alice")
    # the first to reach the server keeps the photo; b's copy now belongs to Anna, once
    assert content(a) == content(b) == server_content(pg, db)
    assert [(r[0], r[2][:6]) for r in content(b)] == [("Anna", content(a).pop()[2][:6])]


def test_conflict_same_person_in_two_offices_is_merged(office, tmp_path):
    pg, db = office
    a, b = Gallery(tmp_path / "a.db"), Gallery(tmp_path / "b.db")
    enroll(a, "Carla", "carla-1")
    enroll(b, "Carla", "carla-2")
    sync(a, pg, db, "alice"), sync(b, pg, db, "bob"), sync(a, pg, db, "alice")
    assert _conflicts(b) == ["same_person_merged"]
    assert len(a.persons()) == len(b.persons()) == 1 and len(a.persons()[0].images) == 2
    assert content(a) == content(b) == server_content(pg, db)


def test_conflict_record_edited_in_two_places(office, tmp_path):
    pg, db = office
    a, b = Gallery(tmp_path / "a.db"), Gallery(tmp_path / "b.db")
    enroll(a, "Dora", "dora-1")
    sync(a, pg, db, "alice"), sync(b, pg, db, "bob")
    pa, pb = a.persons()[0].person_id, b.persons()[0].person_id
    a.update_person(pa, metadata={"last_seen": "Lyon"})
    b.update_person(pb, metadata={"last_seen": "Paris"})
    sync(a, pg, db, "alice")
    report = sync(b, pg, db, "bob")  # based on the old version: refused, kept as a conflict
    assert [c["rule"] for c in report.conflicts] == ["edited_in_two_places"]
    assert report.conflicts[0]["refused_metadata"] == {"last_seen": "Paris"}
    assert a.persons()[0].metadata == b.persons()[0].metadata == {"last_seen": "Lyon"}
    b.update_person(pb, metadata={"last_seen": "Paris"})  # edited again on top of the winner: accepted
    sync(b, pg, db, "bob"), sync(a, pg, db, "alice")
    assert a.persons()[0].metadata == {"last_seen": "Paris"}


def test_conflict_person_deleted_while_another_office_enrolled(office, tmp_path):
    pg, db = office
    a, b = Gallery(tmp_path / "a.db"), Gallery(tmp_path / "b.db")
    enroll(a, "Emil", "emil-1")
    sync(a, pg, db, "alice"), sync(b, pg, db, "bob")
    a.delete_person(a.persons()[0].person_id)
    sync(a, pg, db, "alice")
    enroll(b, "Emil", "emil-2")  # b had not heard of the delete: enrolls a new photo of Emil
    sync(b, pg, db, "bob")
    assert _conflicts(b) == ["enrolled_while_deleted"]
    sync(a, pg, db, "alice")
    # the new photo wins: Emil is back with that photo only; the deleted photo stays deleted
    for g in (a, b):
        (emil,) = g.persons()
        assert emil.label == "Emil" and [im["path"] for im in emil.images] == ["/photos/emil-2.jpg"]
    assert content(a) == content(b) == server_content(pg, db)


def test_server_stopped_mid_session_search_still_works(office, tmp_path):
    pg, db = office
    a = Gallery(tmp_path / "a.db")
    for i in range(20):
        enroll(a, f"S{i}", f"s-{i}")
    sync(a, pg, db, "alice")
    q = unit_vectors(np.random.default_rng(3), 3, dim=DIM)
    before = _top(a, q)
    pg.stop()
    try:
        enroll(a, "Offline", "offline-1")  # work goes on
        with pytest.raises(ServerUnavailable) as err:
            sync(a, pg, db, "alice")
        assert err.value.code == "server_unavailable"
        assert _top(a, q)[0][0][0] == before[0][0][0]  # search answers from the replica
        assert replica.status(a)["pending"] == 2  # the person and its photo wait for the server
    finally:
        pg.restart()
    sync(a, pg, db, "alice")
    assert replica.status(a)["pending"] == 0 and content(a) == server_content(pg, db)


def test_decisions_made_offline_reach_the_other_workstation(office, tmp_path):
    pg, db = office
    a, b = Gallery(tmp_path / "a.db"), Gallery(tmp_path / "b.db")
    enroll(a, "Fay", "fay-1")
    sync(a, pg, db, "alice"), sync(b, pg, db, "bob")
    did = replica.record_decision(b, person_id=b.persons()[0].person_id, verdict="confirmed match", note="tattoo")
    assert replica.status(b)["pending"] == 1
    sync(b, pg, db, "bob")
    sync(a, pg, db, "alice")
    with a.snapshot() as conn:
        rows = conn.execute("SELECT uuid, verdict, note, created_by FROM sync_decisions").fetchall()
    assert [tuple(r) for r in rows] == [(did, "confirmed match", "tattoo", "bob")]
    assert replica.status(b)["pending"] == 0


def test_a_cancelled_sync_resumes_without_loss(office, tmp_path):
    from fasfinder.errors import Cancelled
    from fasfinder.operations import CancelToken
    from fasfinder.server.connection import ServerConfig
    from fasfinder.server.sync import Sync

    pg, db = office
    a, b = Gallery(tmp_path / "a.db"), Gallery(tmp_path / "b.db")
    for i in range(60):
        enroll(a, f"Q{i % 12}", f"q-{i}")
    sync(a, pg, db, "alice")
    token = CancelToken()
    seen = []

    def progress(done, total, message):
        seen.append((message, done))
        if message == "pull images":
            token.cancel()  # the user presses Cancel after the first batch of photos

    with pytest.raises(Cancelled):
        Sync(b, ServerConfig(pg.url("bob", db)), batch=10, progress=progress, cancel=token).run()
    assert 0 < b.counts()["images"] < 60  # part of the pull is in, the cursor has not moved
    sync(b, pg, db, "bob")
    assert content(b) == content(a) == server_content(pg, db) and faiss_consistent(b)
