"""End to end through the service: a real photo enrolled on one workstation is found on another after sync."""

from __future__ import annotations

from dataclasses import replace

from fasfinder.service import FasFinder
from fasfinder.settings import Settings


def test_enrolled_on_one_workstation_found_on_the_other(office, tmp_path, astronaut_png, one_torch_thread):
    pg, db = office
    base = replace(Settings(), liveness=False)
    a = FasFinder(str(tmp_path / "a.db"), settings=replace(base, server=pg.url("alice", db)))
    (res,) = a.enroll([str(astronaut_png)], label="Eileen", case_id="C1")
    assert res.error is None
    assert a.sync()["pushed"] == 2 and a.status_text().endswith("0 pending")
    b = FasFinder(str(tmp_path / "b.db"), settings=replace(base, server=pg.url("vic", db)))  # a viewer
    assert b.sync()["pulled_images"] == 1
    best = max((f.matches[0] for f in b.search(str(astronaut_png)).faces if f.matches), key=lambda m: m.similarity)
    assert best.label == "Eileen" and best.similarity > 0.99  # the enrolled face, found on the other replica
    a.gallery.close(), b.gallery.close()
