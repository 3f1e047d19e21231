"""Hardening of the gallery (issue 14, findings 2, 3, 4, 7, 8): a foreign index, oversized embeddings,
decompression bombs in archives, malformed archive fields, read-only galleries and a full disk.
Every archive and gallery is generated here (synthetic unit vectors through ``Gallery.add_image``)."""

from __future__ import annotations

from functools import partial

import base64
import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from fasfinder.errors import GalleryError
from fasfinder.gallery import Gallery
from fasfinder.gallery.crops import decode_crop
from fasfinder.gallery.index import VectorIndex

from .gallery_fakes import RGB, fake_face, unit_vectors

ENGINE = "test-vec"
DIM = 32


unit = partial(unit_vectors, dim=DIM)  # unit(rng, n=1): n random unit vectors of the test engine
face = fake_face


def add(g, i, vec, prefix="p"):
    return g.add_image(label=f"{prefix}{i % 5}", path=f"{prefix}{i}.png", sha256=f"{prefix}sha{i}", width=64,
                       height=64, rgb=RGB, faces=[face()], embeddings={ENGINE: vec})


def make_gallery(path, seed, n=10, prefix="p"):
    vecs = unit(np.random.default_rng(seed), n)
    with Gallery(path, user="tester") as g:
        ids = [add(g, i, vecs[i:i + 1], prefix) for i in range(n)]
    return vecs, ids


# -- archives ---------------------------------------------------------------------------------
def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def rewrite(src, dst, edit_record=None, edit_manifest=None):
    """Copy an export, editing the first record and/or the manifest, every hash recomputed (an attacker
    with the format in hand); the signature is dropped (imports below say allow_unsigned)."""

    with zipfile.ZipFile(src) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        lines = zf.read("records.jsonl").splitlines(keepends=True)
    recs = [json.loads(line) for line in lines]
    if edit_record:
        edit_record(recs[0])
    out = [_canonical(r) + b"\n" for r in recs]
    manifest["record_sha256"] = [_sha(x) for x in out]
    manifest["records_sha256"] = _sha(b"".join(out))
    if edit_manifest:
        edit_manifest(manifest)
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("records.jsonl", b"".join(out))
        zf.writestr("manifest.json", json.dumps(manifest))
    return dst


def set_field(rec, part, key, value):
    rec[part][key] = value


def set_crop(rec, blob):
    f = rec["faces"][0]
    f["crop"] = base64.b64encode(blob).decode()
    f["crop_sha256"] = _sha(blob)


def set_embedding(rec, vec):
    f = rec["faces"][0]
    raw = np.asarray(vec, np.float32).tobytes()
    f["embeddings"][ENGINE] = base64.b64encode(raw).decode()
    f["embeddings_sha256"][ENGINE] = _sha(raw)


@pytest.fixture
def exported(tmp_path):
    """A 10-image gallery, its export, and an empty target gallery."""

    vecs, _ids = make_gallery(tmp_path / "src.db", 1)
    with Gallery(tmp_path / "src.db") as g:
        g.export(tmp_path / "all.zip")
    target = Gallery(tmp_path / "dst.db", user="tester")
    yield vecs, tmp_path / "all.zip", target
    target.close()


def huge_jpeg(side=30000) -> bytes:
    """A small valid JPEG whose frame header claims ``side`` x ``side`` pixels (a decompression bomb:
    900 MP, 2.7 GB decoded, from a few hundred bytes)."""

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 150)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = side.to_bytes(2, "big") + side.to_bytes(2, "big")
    return bytes(data)


# -- finding 2: the index is tied to its gallery ----------------------------------------------------
def test_foreign_index_beside_a_copied_gallery_is_rebuilt(tmp_path):
    make_gallery(tmp_path / "a.db", 1, prefix="a")
    b_vecs, _ = make_gallery(tmp_path / "b.db", 2, prefix="b")  # the stranger: b_vecs[3] is not in a.db
    shutil.copy(tmp_path / "a.db", tmp_path / "copy.db")
    shutil.copy(tmp_path / f"b.db.{ENGINE}.faiss", tmp_path / f"copy.db.{ENGINE}.faiss")
    with Gallery(tmp_path / "copy.db") as g:
        hits = g.search(ENGINE, b_vecs[3], 3)[0]
        rep = g.last_repair
        assert rep["action"] == "rebuilt" and "another gallery" in rep["reason"] and rep["warning"], rep
        assert hits and max(h.similarity for h in hits) < 0.9, [h.similarity for h in hits]
        assert all(h.label.startswith("a") for h in hits)
        assert g.verify_index(ENGINE)["consistent"]
    with Gallery(tmp_path / "copy.db") as g:  # the rebuilt index was saved with this gallery's identity
        g.index_info(ENGINE)
        assert g.last_repair["action"] == "loaded"


def test_repair_compares_vectors_not_only_ids(tmp_path):
    vecs, _ = make_gallery(tmp_path / "g.db", 1)
    with Gallery(tmp_path / "g.db") as g:
        ids, _ = g.stored_embeddings(ENGINE)
        gid = g.conn.execute("SELECT value FROM meta WHERE key = 'gallery_id'").fetchone()[0]
        path = g.index_path(ENGINE)
    # Same ids and identity, other vectors, unknown generation: the change log cannot say what changed.
    forged = VectorIndex.build(DIM, ids, unit(np.random.default_rng(9), len(ids)), path=path)
    forged.gen, forged.gallery_id = -1, gid
    forged.save()
    with Gallery(tmp_path / "g.db") as g:
        hits = g.search(ENGINE, vecs[4], 1)[0]
        assert g.last_repair["changed"] == len(ids) and g.last_repair["warning"], g.last_repair
        assert hits[0].similarity == pytest.approx(1.0, abs=1e-5) and hits[0].image_path == "p4.png"
        assert g.verify_index(ENGINE)["consistent"]


# -- finding 3: embeddings validated on every path in; no similarity above 1 -------------------------
def test_add_image_refuses_embeddings_that_are_not_unit_length(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        v = unit(np.random.default_rng(3))
        for bad in (10 * v, v * 0.5, np.full((1, DIM), np.nan, np.float32)):
            with pytest.raises(GalleryError) as exc:
                add(g, 0, bad)
            assert exc.value.code == "bad_argument"
        with pytest.raises(GalleryError):
            add(g, 0, unit(np.random.default_rng(3), 1)[:, :DIM - 1])  # size differs from the gallery's (once set)
        assert g.counts()["images"] <= 1


def test_oversized_embedding_refused_at_import_and_never_scores_above_one(tmp_path, exported):
    vecs, archive, target = exported
    big = 10 * vecs.mean(axis=0)
    bad = rewrite(archive, tmp_path / "big.zip", edit_record=lambda r: set_embedding(r, big))
    with pytest.raises(GalleryError) as exc:
        target.import_file(bad, allow_unsigned=True)
    assert exc.value.code == "bad_archive" and "norm" in str(exc.value)
    assert target.counts()["images"] == 0
    st = target.import_file(archive, allow_unsigned=True)  # the next archive still imports
    assert st["images"] == 10
    # A vector written behind the gallery's back (another tool, an old version) is left out of the index.
    fid = int(target.stored_embeddings(ENGINE)[0][0])
    raw = sqlite3.connect(target.path)
    raw.execute("UPDATE embeddings SET vector = ? WHERE face_id = ? AND engine = ?",
                (big.astype(np.float32).tobytes(), fid, ENGINE))
    raw.commit()
    raw.close()
    stranger = unit(np.random.default_rng(77), 20)
    for q in np.vstack([stranger, vecs]):
        hits = target.search(ENGINE, q, 5)[0]
        assert all(h.similarity <= 1.0 for h in hits)
        assert fid not in [h.face_id for h in hits]
    rep = target.verify_index(ENGINE)
    assert rep["bad_vectors"] == 1 and rep["index_faces"] == 9 and rep["consistent"]


# -- finding 4: decompression bombs ---------------------------------------------------------------
def test_crop_bomb_in_archive_refused_and_never_decoded(tmp_path, exported):
    _vecs, archive, target = exported
    blob = huge_jpeg()
    with pytest.raises(Image.DecompressionBombError, match="900000000 pixels"):  # what the header claims
        Image.open(io.BytesIO(blob))
    assert len(blob) < 2000
    bad = rewrite(archive, tmp_path / "bomb.zip", edit_record=lambda r: set_crop(r, blob))
    t0 = time.perf_counter()
    with pytest.raises(GalleryError) as exc:
        target.import_file(bad, allow_unsigned=True)
    assert exc.value.code == "bad_archive" and time.perf_counter() - t0 < 5
    assert target.counts()["images"] == 0
    with pytest.raises(GalleryError) as exc:  # and a crop already stored can never be decoded
        decode_crop(blob)
    assert exc.value.code == "bad_crop"


def test_zip_bomb_refused_quickly_and_next_archive_imports(tmp_path, exported):
    _vecs, archive, target = exported
    with zipfile.ZipFile(archive) as zf:
        manifest = zf.read("manifest.json")
    bomb = tmp_path / "zipbomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("manifest.json", manifest)
        with zf.open("records.jsonl", "w") as fh:
            chunk = b"\0" * (1 << 20)
            for _ in range(256):  # 256 MiB of zeros, ~250 KB compressed
                fh.write(chunk)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    t0 = time.perf_counter()
    with pytest.raises(GalleryError) as exc:
        target.import_file(bomb, allow_unsigned=True)
    elapsed = time.perf_counter() - t0
    assert exc.value.code == "bad_archive" and "bomb" in str(exc.value) and elapsed < 1.0, (exc.value, elapsed)
    assert target.import_file(archive, allow_unsigned=True)["images"] == 10


# -- finding 7: malformed fields --------------------------------------------------------------------
def _many_engines(m):
    m["engines"] = {f"fake{i}": DIM for i in range(50)} | m["engines"]


MALFORMED = {
    "width_2_70": dict(edit_record=lambda r: set_field(r, "image", "width", 2 ** 70)),
    "negative_height": dict(edit_record=lambda r: set_field(r, "image", "height", -5)),
    "case_id_object": dict(edit_record=lambda r: set_field(r, "person", "case_id", {"a": 1})),
    "label_list": dict(edit_record=lambda r: set_field(r, "person", "label", ["x"])),
    "engine_slash": dict(edit_manifest=lambda m: m["engines"].update({"../../evil": DIM})),
    "engine_nul": dict(edit_manifest=lambda m: m["engines"].update({"a\x00b": DIM})),
    "engine_dim_negative": dict(edit_manifest=lambda m: m["engines"].update({ENGINE: -1})),
    "fifty_fake_engines": dict(edit_manifest=_many_engines),
    "garbage_crop": dict(edit_record=lambda r: set_crop(r, os.urandom(3000))),
    "garbage_landmarks": dict(edit_record=lambda r: r["faces"][0].update(
        landmarks=base64.b64encode(b"\x01\x02\x03\x04\x05").decode())),
    "nan_landmarks": dict(edit_record=lambda r: r["faces"][0].update(
        landmarks=base64.b64encode(np.full(136, np.nan, np.float32).tobytes()).decode())),
    "empty_crop_box": dict(edit_record=lambda r: r["faces"][0].update(crop_box=[5, 5, 5, 5])),
    "box_strings": dict(edit_record=lambda r: r["faces"][0].update(box=["a", "b", "c", "d"])),
    "faces_object": dict(edit_record=lambda r: r.update(faces={"x": 1})),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_archive_fields_are_typed_errors(tmp_path, exported, name):
    _vecs, archive, target = exported
    bad = rewrite(archive, tmp_path / f"{name}.zip", **MALFORMED[name])
    with pytest.raises(GalleryError) as exc:
        target.import_file(bad, allow_unsigned=True)
    assert exc.value.code == "bad_archive", (name, exc.value.code, str(exc.value))
    assert target.counts()["images"] == 0
    assert sorted(p.name for p in tmp_path.glob("dst.db.*.faiss")) == []  # no index for an engine it named
    assert target.import_file(archive, allow_unsigned=True)["images"] == 10  # the next archive imports


# -- finding 8: read-only galleries, file modes, a full disk -------------------------------------------
def _snapshot_files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("how", ["file", "folder"])
def test_read_only_gallery_can_be_searched_and_is_not_written(tmp_path, how):
    folder = tmp_path / "ro"
    vecs, _ = make_gallery(folder / "g.db", 1)
    before = _snapshot_files(folder)
    os.chmod(folder / "g.db", 0o444)
    if how == "folder":
        os.chmod(folder, 0o555)
    try:
        with Gallery(folder / "g.db") as g:
            hits = g.search(ENGINE, vecs[2], 3)[0]
            assert hits[0].image_path == "p2.png" and hits[0].similarity == pytest.approx(1.0, abs=1e-5)
            query_id = g.record_query(query_path="q.png", query_sha256=None, engine=ENGINE, results={})
            with pytest.raises(GalleryError) as exc:
                add(g, 99, unit(np.random.default_rng(5)))
            assert exc.value.code == "read_only"
            assert query_id is None and g.read_only and "read-only" in g.last_write_error
        after = _snapshot_files(folder)
        sides = ("-shm", "-wal")  # SQLite may open these read-only: the -wal stays empty, both owner-only
        assert {k: v for k, v in after.items() if not k.endswith(sides)} == \
            {k: v for k, v in before.items() if not k.endswith(sides)}  # nothing written (the db, its index)
        assert after.get("g.db-wal", b"") == b""
        for side in ("g.db-wal", "g.db-shm"):
            if (folder / side).exists():
                assert stat.S_IMODE((folder / side).stat().st_mode) & 0o077 == 0
    finally:
        os.chmod(folder, 0o755)


def test_wal_and_shm_are_owner_only_under_a_loose_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "g.db"
        with sqlite3.connect(path) as raw:  # a gallery file made by another tool: 0644
            raw.execute("CREATE TABLE x(a)")
        make_gallery(path, 1)
        with Gallery(path) as g:
            add(g, 50, unit(np.random.default_rng(50)))
            for side in (path, tmp_path / "g.db-wal", tmp_path / "g.db-shm"):
                assert stat.S_IMODE(side.stat().st_mode) & 0o077 == 0, side
    finally:
        os.umask(old)


def test_search_answers_on_a_full_disk(tmp_path, monkeypatch):
    """Every write fails as on a full disk (SQLite: "database or disk is full"; the index save: ENOSPC):
    search still answers, the unwritten audit row and query are logged, not fatal."""

    from fasfinder.gallery import db as dbmod
    from fasfinder.gallery.index import VectorIndex as VI

    vecs, _ = make_gallery(tmp_path / "g.db", 1)
    (tmp_path / f"g.db.{ENGINE}.faiss").unlink()  # the open must rebuild the index, and cannot save it
    with Gallery(tmp_path / "g.db") as g:

        def full(*_a, **_k):
            raise OSError(28, "No space left on device")

        def sqlite_full(self):
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(dbmod._Transaction, "__enter__", sqlite_full)
        monkeypatch.setattr(VI, "save", full)
        hits = g.search(ENGINE, vecs[7], 2)[0]
        assert hits[0].image_path == "p7.png"
        assert "audit log" in g.last_write_error
        assert g.record_query(query_path="q.png", query_sha256=None, engine=ENGINE, results={}) is None
        assert "disk is full" in g.last_write_error
        monkeypatch.undo()
