"""Helpers of the server tests: a pytest fixture for the real PostgreSQL, replicas, fake enrollments."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest

from fasfinder.gallery import Gallery
from fasfinder.server.connection import ServerConfig
from fasfinder.server.sync import Sync

from .gallery_fakes import RGB, fake_face, unit_vectors
from .pg_server import PgServer, pg_bin

DIM = 128
_dbs = itertools.count()


@pytest.fixture(scope="module")
def pg_server():
    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (scripts/bootstrap.sh installs the Debian package postgresql)")
    server = PgServer(port=54300 + (hash(__name__) % 90)).start()
    yield server
    server.cleanup()


@pytest.fixture
def office(pg_server):
    """(PgServer, database name) of a fresh office database."""

    db = f"office{next(_dbs)}"
    pg_server.office(db)
    return pg_server, db


def enroll(gallery: Gallery, label: str, key: str, *, case_id: str | None = "C1", seed: int | None = None) -> int:
    """One image (sha256 of ``key``) with one face and a random 128-d embedding, through Gallery.add_image."""

    rng = np.random.default_rng(seed if seed is not None else int(hashlib.sha256(key.encode()).hexdigest()[:8], 16))
    return gallery.add_image(label=label, path=f"/photos/{key}.jpg", sha256=hashlib.sha256(key.encode()).hexdigest(),
                             width=64, height=64, rgb=RGB, faces=[fake_face()],
                             embeddings={"test": unit_vectors(rng, dim=DIM)}, case_id=case_id)


def sync(gallery: Gallery, pg: PgServer, db: str, user: str, **kw):
    return Sync(gallery, ServerConfig(pg.url(user, db)), **kw).run()


def content(gallery: Gallery) -> set[tuple]:
    """(label, case, sha256, vector bytes) of every stored face: what two replicas must agree on."""

    with gallery.snapshot() as conn:
        return {tuple(r) for r in conn.execute(
            "SELECT p.label, p.case_id, i.sha256, e.vector FROM persons p JOIN images i ON i.person_id = p.id "
            "JOIN faces f ON f.image_id = i.id JOIN embeddings e ON e.face_id = f.id")}


def server_content(pg: PgServer, db: str) -> set[tuple]:
    import psycopg

    with psycopg.connect(pg.url(db=db)) as conn:
        return {(r[0], r[1], r[2], bytes(r[3])) for r in conn.execute(
            "SELECT p.label, p.case_id, i.sha256, e.vector FROM fasfinder.persons p JOIN fasfinder.images i "
            "ON i.person_uuid = p.uuid JOIN fasfinder.faces f ON f.image_sha256 = i.sha256 JOIN fasfinder.embeddings e "
            "ON e.face_uuid = f.uuid WHERE NOT p.deleted AND NOT i.deleted AND NOT f.deleted")}


def faiss_consistent(gallery: Gallery) -> bool:
    """FAISS holds exactly SQLite's faces with the same vectors (the gallery's own check, before any repair)."""

    gallery.flush()
    report = gallery.verify_index("test")
    return bool(report["consistent"]) and report["index_faces"] == report["sqlite_faces"]
