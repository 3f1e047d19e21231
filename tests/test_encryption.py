"""Encryption at rest (finding 11 of issue 14): SQLCipher gallery, AES-GCM index files, a key from the
user, typed errors for a locked gallery or a wrong key, and the migration of a plain gallery.

Everything is generated here: synthetic faces and embeddings through ``Gallery.add_image``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fasfinder.errors import GalleryError
from fasfinder.gallery import Gallery
from fasfinder.gallery.migrate_encrypt import encrypt_gallery

from .conftest import REPO
from .gallery_fakes import RGB, fake_face, unit_vectors

ENGINE = "test-vec"
DIM = 32
N = 24
KEY = "correct horse battery staple"


def fill(path: Path, key: str | None = None, n: int = N) -> np.ndarray:
    vecs = unit_vectors(np.random.default_rng(7), n, dim=DIM)
    with Gallery(path, user="tester", key=key) as g:
        for i in range(n):
            g.add_image(label=f"person{i}", path=f"img{i}.png", sha256=f"sha{i}", width=64, height=64, rgb=RGB,
                        faces=[fake_face()], embeddings={ENGINE: vecs[i:i + 1]}, case_id=f"K-{i}")
    return vecs


def secrets_of(path: Path, key: str | None) -> list[bytes]:
    """The exact bytes of stored face crops (JPEG) and stored embeddings, read through the API."""

    with Gallery(path, key=key) as g:
        crops = [bytes(g.face_row(fid)["crop"]) for fid in (1, 2)]
        _, vecs = g.stored_embeddings(ENGINE)
    return crops + [np.asarray(vecs[i], np.float32).tobytes() for i in (0, 5)]


#: The start of a JPEG file as encoders write it: SOI (FF D8), then the APP0 "JFIF" or APP1 "Exif" segment.
#: FF D8 FF alone is not enough for a check on encrypted bytes: a random 876 KB file holds those three
#: bytes with a probability of about 5 % (876,544 / 2**24); with the segment name, about 2**-50 per byte.
JPEG_START = re.compile(rb"\xff\xd8\xff[\xe0\xe1]..(?:JFIF|Exif)\x00", re.DOTALL)


def files_of(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name))


def leaks(path: Path, needles: list[bytes]) -> list[str]:
    """Which of the gallery's files (database, -wal, -shm, .faiss) hold a JPEG start or any needle."""

    found = []
    for f in files_of(path):
        blob = f.read_bytes()
        if JPEG_START.search(blob):
            found.append(f"{f.name}: JPEG magic")
        found += [f"{f.name}: stored bytes #{i}" for i, n in enumerate(needles) if holds(blob, n)]
    return found


def holds(blob: bytes, needle: bytes, piece: int = 64) -> bool:
    """Whether ``blob`` holds ``needle`` or any aligned 64-byte piece of it (a crop larger than a page
    is split over SQLite overflow pages, so the whole of it is never contiguous)."""

    return needle in blob or any(needle[i:i + piece] in blob for i in range(0, len(needle) - piece + 1, piece))


def search_ids(path: Path, vecs: np.ndarray, key: str | None) -> list[list[int]]:
    with Gallery(path, key=key, audit_searches=False) as g:
        return [[h.image_id for h in hits] for hits in g.search(ENGINE, vecs[:10], k=3)]


def test_encrypted_round_trip(tmp_path):
    db = tmp_path / "enc.db"
    vecs = fill(db, key=KEY)
    with Gallery(db, key=KEY) as g:
        assert g.encrypted
        assert g.counts()["faces"] == N
        hits = g.search(ENGINE, vecs[[3, 11]], k=1)
        assert [h[0].label for h in hits] == ["person3", "person11"]
        assert hits[0][0].similarity == pytest.approx(1.0, abs=1e-5)
        assert g.verify_audit()["ok"]
    with Gallery(db, key=KEY) as g:  # reopened: the encrypted index file loads as it is
        assert g.search(ENGINE, vecs[20:21], k=1)[0][0].label == "person20"
        assert g.last_repair.get("action") == "loaded", g.last_repair
        assert g.verify_index(ENGINE)["consistent"]


def test_encrypted_files_hold_no_jpeg_or_embedding_bytes(tmp_path):
    plain, enc = tmp_path / "plain.db", tmp_path / "enc.db"
    fill(plain)
    fill(enc, key=KEY)
    # the check can fail: the plain gallery and its index file hold the crops and the vectors
    plain_leaks = leaks(plain, secrets_of(plain, None))
    assert any("JPEG" in x for x in plain_leaks) and any(x.startswith("plain.db: stored bytes #0") for x in plain_leaks)
    assert any(x.startswith(f"plain.db.{ENGINE}.faiss: stored bytes #2") for x in plain_leaks), plain_leaks
    needles = secrets_of(enc, KEY)
    assert all(JPEG_START.match(n) for n in needles[:2])  # the stored crops start as the check expects
    assert len(needles) == 4 and all(len(n) >= DIM * 4 or n[:3] == b"\xff\xd8\xff" for n in needles)
    names = {f.name for f in files_of(enc)}
    assert {"enc.db", f"enc.db.{ENGINE}.faiss"} <= names
    assert leaks(enc, needles) == []
    with Gallery(enc, key=KEY) as g:  # while open (the -wal holds recent pages): nothing in the clear either
        g.add_image(label="late", path="late.png", sha256="late", width=64, height=64, rgb=RGB, faces=[fake_face()],
                    embeddings={ENGINE: unit_vectors(np.random.default_rng(99), 1, dim=DIM)})
        late = bytes(g.face_row(N + 1)["crop"])
        assert leaks(enc, [*needles, late]) == []


def test_missing_or_wrong_key_is_a_typed_error(tmp_path):
    db = tmp_path / "enc.db"
    fill(db, key=KEY, n=3)
    with pytest.raises(GalleryError) as exc:
        Gallery(db)
    assert exc.value.code == "gallery_locked"
    with pytest.raises(GalleryError) as exc:
        Gallery(db, key=KEY + "x")
    assert exc.value.code == "wrong_key"
    assert "damaged" not in exc.value.message
    plain = tmp_path / "plain.db"
    fill(plain, n=3)
    with pytest.raises(GalleryError) as exc:
        Gallery(plain, key=KEY)
    assert exc.value.code == "not_encrypted"
    with pytest.raises(GalleryError) as exc:
        Gallery(tmp_path / "new.db", key="")
    assert exc.value.code == "bad_argument"
    with Gallery(db, key=KEY) as g:  # the failed opens changed nothing
        assert g.counts()["faces"] == 3
    garbage = tmp_path / "garbage.db"  # not encrypted, not a gallery: still the plain "damaged" error
    garbage.write_text("garbage that is not sqlite" * 100)
    with pytest.raises(GalleryError) as exc:
        Gallery(garbage)
    assert exc.value.code == "gallery_error"


def test_index_file_of_wrong_kind_is_rebuilt_not_trusted(tmp_path):
    db = tmp_path / "enc.db"
    vecs = fill(db, key=KEY, n=6)
    idx = db.with_name(f"{db.name}.{ENGINE}.faiss")
    blob = bytearray(idx.read_bytes())
    blob[-5] ^= 0xFF  # tampered ciphertext: the GCM tag fails, the index is rebuilt from the gallery
    idx.write_bytes(bytes(blob))
    with Gallery(db, key=KEY) as g:
        assert g.search(ENGINE, vecs[2:3], k=1)[0][0].label == "person2"
        assert g.last_repair["action"] == "rebuilt"
    assert b"\xff\xd8\xff" not in idx.read_bytes() and vecs[2].tobytes() not in idx.read_bytes()


def test_migration_keeps_every_record_and_its_search_results(tmp_path):
    db = tmp_path / "g.db"
    vecs = fill(db)
    with Gallery(db) as g:
        before_persons = [(p.person_id, p.label, p.case_id, len(p.images)) for p in g.persons()]
        before_counts = g.counts()
        g.record_query(query_path="q.png", query_sha256="q", engine=ENGINE, results={"faces": []})
    before_hits = search_ids(db, vecs, None)
    needles = secrets_of(db, None)
    assert leaks(db, needles)  # plain before
    out = encrypt_gallery(db, KEY)
    assert out["encrypted"] and out["counts"] == before_counts and out["index_files"] == 1
    assert out["index_checks"][ENGINE]["consistent"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.db", f"g.db.{ENGINE}.faiss"]  # no plain backup left
    assert leaks(db, needles) == []
    assert search_ids(db, vecs, KEY) == before_hits
    with Gallery(db, key=KEY) as g:
        assert [(p.person_id, p.label, p.case_id, len(p.images)) for p in g.persons()] == before_persons
        assert len(g.history()) == 1
        assert g.verify_audit()["ok"]
        actions = [a["action"] for a in g.audit_log()]
        assert "gallery.encrypted" in actions and "gallery.encrypt_started" in actions
        # new ids continue after the old ones (sqlite_sequence came along)
        new_id = g.add_image(label="new", path="n.png", sha256="new", width=64, height=64, rgb=RGB,
                             faces=[fake_face()], embeddings={ENGINE: vecs[:1]})
        assert new_id == N + 1
    with pytest.raises(GalleryError) as exc:
        encrypt_gallery(db, KEY)
    assert exc.value.code == "already_encrypted"


def test_failed_migration_leaves_the_plain_gallery(tmp_path, monkeypatch):
    from fasfinder.gallery import migrate_encrypt

    db = tmp_path / "g.db"
    vecs = fill(db, n=5)
    monkeypatch.setattr(migrate_encrypt, "table_digests", lambda conn, calls=[]: calls.append(1) or {"x": str(len(calls))})
    with pytest.raises(GalleryError) as exc:
        encrypt_gallery(db, KEY)
    assert exc.value.code == "encrypt_failed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.db", f"g.db.{ENGINE}.faiss"]
    assert search_ids(db, vecs, None)[0][0] == 1  # still plain and whole


def cli(*args, env_key: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != "FASFINDER_GALLERY_KEY"}
    if env_key is not None:
        env["FASFINDER_GALLERY_KEY"] = env_key
    proc = subprocess.run([sys.executable, "main.py", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)
    return proc.returncode, [json.loads(x) for x in proc.stdout.splitlines() if x.strip()], proc.stderr


def test_cli_encrypt_then_use_with_env_key_or_key_file(tmp_path):
    db = tmp_path / "g.db"
    fill(db, n=4)
    code, lines, err = cli("encrypt", "--db", db, "--json")
    assert code == 1 and lines[0]["error"]["code"] == "bad_argument", (lines, err)
    code, lines, err = cli("encrypt", "--db", db, "--json", env_key=KEY)
    assert code == 0, err
    assert lines[0]["encrypted"] and lines[0]["counts"]["faces"] == 4
    code, lines, err = cli("audit", "--verify", "--db", db, "--json")
    assert code == 1 and lines[0]["error"]["code"] == "gallery_locked", (lines, err)
    assert "Traceback" not in err and "hmac" not in err
    code, lines, err = cli("audit", "--verify", "--db", db, "--json", env_key="wrong")
    assert code == 1 and lines[0]["error"]["code"] == "wrong_key"
    code, lines, err = cli("audit", "--verify", "--db", db, "--json", env_key=KEY)
    assert code == 0 and lines[0]["ok"], (lines, err)
    keyfile = tmp_path / "key.txt"
    keyfile.write_text(KEY + "\n")
    code, lines, err = cli("history", "--db", db, "--key-file", keyfile, "--json")
    assert code == 0, (lines, err)


@pytest.mark.slow
def test_cli_encrypt_and_search_a_real_photo(tmp_path, astronaut_png):
    db = tmp_path / "g.db"
    code, lines, err = cli("enroll", astronaut_png, "--db", db, "--json")
    assert code == 0 and lines[0].get("error") is None, (lines, err)
    code, lines, err = cli("encrypt", "--db", db, "--json", env_key=KEY)
    assert code == 0 and lines[0]["index_files"] >= 1, err
    code, lines, err = cli("search", astronaut_png, "--db", db, "--json", "--no-liveness", env_key=KEY)
    assert code == 0, err
    assert lines[0]["faces"][0]["matches"][0]["label"] == "eileen", lines
    code, lines, err = cli("search", astronaut_png, "--db", db, "--json", "--no-liveness")
    assert "gallery_locked" in json.dumps(lines), (lines, err)


def test_gui_on_a_locked_gallery_says_so(qtbot, tmp_path, monkeypatch):
    """No passphrase dialog yet: the desktop app names the problem (and the variable to set)."""

    from fasfinder.host import LocalHost
    from fasfinder.settings import Settings
    from ui.main_window import MainWindow

    db = tmp_path / "enc.db"
    fill(db, key=KEY, n=2)
    monkeypatch.delenv("FASFINDER_GALLERY_KEY", raising=False)
    settings = Settings(gallery=str(db))
    host = LocalHost(settings)
    win = MainWindow(settings, host, offer_demo=False, restore_layout=False)
    qtbot.addWidget(win)
    win.show()
    try:
        qtbot.waitUntil(lambda: "encrypted" in win.statusBar().currentMessage(), timeout=30_000)
        assert "FASFINDER_GALLERY_KEY" in win.statusBar().currentMessage()
    finally:
        win.session.pool.cancel_all()
        win.session.pool.wait_idle(timeout_ms=30_000, settle_ms=0)
        win.close()
        host.close()
