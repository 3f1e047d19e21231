"""A sync killed with kill -9 at random points resumes without loss or duplicates."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fasfinder.gallery import Gallery
from fasfinder.server import replica

from .server_helpers import content, enroll, faiss_consistent, server_content, sync

ROOT = Path(__file__).resolve().parents[1]


def _child(gallery: Path, url: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "tests.sync_child", str(gallery), url, "25"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow  # about 50 s: 21 processes
def test_kill_9_at_random_points_of_a_sync(office, tmp_path):
    pg, db = office
    other = Gallery(tmp_path / "other.db")  # another workstation has put 600 photos on the server
    for i in range(600):
        enroll(other, f"O{i % 150}", f"o-{i}")
    sync(other, pg, db, "alice")
    mine = tmp_path / "mine.db"
    g = Gallery(mine)  # this workstation holds 150 offline enrollments to push
    for i in range(150):
        enroll(g, f"M{i % 30}", f"m-{i}")
    g.close()
    rng = random.Random(20)
    killed_mid_sync = rounds = 0
    window = 1.2  # the kill comes uniformly within this many seconds after the child is ready
    phases: list[tuple] = []  # (outbox entries left, images in the replica) after each kill
    while killed_mid_sync < 20:
        rounds += 1
        assert rounds <= 60, f"only {killed_mid_sync} kills landed inside a sync"
        for i in range(20):  # new work on both sides each round: something to push and to pull
            enroll(other, f"O{i}", f"o-{rounds}-{i}")
        sync(other, pg, db, "alice")
        with Gallery(mine) as g:
            for i in range(5):
                enroll(g, f"M{i}", f"m-{rounds}-{i}")
        child = _child(mine, pg.url("bob", db))
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, window))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            killed_mid_sync += 1
        else:  # the sync was over before the kill: on a faster machine, aim inside a shorter sync
            window = max(0.05, window * 0.7)
        child.wait()
        child.stdout.close()
        with Gallery(mine) as look, look.snapshot() as conn:  # where the kill landed
            phases.append((conn.execute("SELECT COUNT(*) FROM sync_outbox").fetchone()[0] if conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'sync_outbox'").fetchone() else None,
                conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]))
    total = 600 + 150 + rounds * 25
    assert any(p[0] for p in phases) and any(p[0] == 0 and p[1] < total for p in phases), phases  # push and pull
    g = Gallery(mine)
    report = sync(g, pg, db, "bob")  # the resume
    sync(other, pg, db, "alice")
    union = server_content(pg, db)
    assert len(union) == total and len({r[2] for r in union}) == total  # 0 lost, 0 duplicated on the server
    assert content(g) == union == content(other)
    assert g.counts()["images"] == total and g.counts()["faces"] == total  # 0 duplicated in the replica
    assert faiss_consistent(g) and faiss_consistent(other)
    assert replica.status(g)["pending"] == 0 and report.conflicts == []
    print(f"kills inside the sync: {killed_mid_sync}/{rounds}; (outbox left, replica images) after each: {phases}")
