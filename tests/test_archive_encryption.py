"""Export archives encrypted at rest (finding 11 of issue 14, the exports' part).

An export with a passphrase is the signed zip inside an AES-256-GCM envelope (gallery/envelope.py).
Everything is generated here: synthetic faces and embeddings through ``Gallery.add_image``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fasfinder.errors import FasFinderError
from fasfinder.gallery import Gallery, envelope, signing
from fasfinder.service import FasFinder
from fasfinder.settings import Settings

from .conftest import REPO
from .gallery_fakes import RGB, fake_face, unit_vectors
from .test_encryption import JPEG_START, holds
from .test_signing import _relabel

ENGINE = "test-vec"
DIM = 32
N = 6
KEY = "correct horse battery staple"
ARCHIVE_KEY = "the offices' shared archive passphrase"


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch):
    monkeypatch.delenv("FASFINDER_GALLERY_KEY", raising=False)
    monkeypatch.delenv("FASFINDER_ARCHIVE_KEY", raising=False)


def fill(path: Path, key: str | None = None) -> np.ndarray:
    vecs = unit_vectors(np.random.default_rng(11), N, dim=DIM)
    with Gallery(path, user="tester", key=key) as g:
        for i in range(N):
            g.add_image(label=f"Suspect Zebulon {i}", path=f"img{i}.png", sha256=f"sha{i}", width=64, height=64,
                        rgb=RGB, faces=[fake_face()], embeddings={ENGINE: vecs[i:i + 1]}, case_id=f"K-{i}")
    return vecs


def service(path: Path, key: str | None = None) -> FasFinder:
    return FasFinder(path, settings=Settings(gallery=str(path)), key=key)


def secrets(path: Path, key: str | None) -> list[bytes]:
    """The exact crop bytes and embedding bytes the gallery stores, and one label's text."""

    with Gallery(path, key=key) as g:
        crops = [bytes(g.face_row(fid)["crop"]) for fid in (1, 2)]
        _, vecs = g.stored_embeddings(ENGINE)
    return crops + [np.asarray(vecs[i], np.float32).tobytes() for i in (0, 3)] + [b"Suspect Zebulon"]


def leaks(archive: Path, needles: list[bytes]) -> list[str]:
    """What of the gallery the archive file shows: JPEG starts, crops, embeddings or labels, in the
    file's bytes or (for a zip) in its members once inflated, base64 decoded where it applies."""

    import base64

    blobs = [archive.read_bytes()]
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            blobs += [zf.read(n) for n in zf.namelist()]
            for line in zf.read("records.jsonl").splitlines():
                rec = json.loads(line)
                blobs += [base64.b64decode(f["crop"]) for f in rec["faces"]]
                blobs += [base64.b64decode(v) for f in rec["faces"] for v in f["embeddings"].values()]
    found = ["JPEG magic" for b in blobs if JPEG_START.search(b)][:1]
    found += [f"stored bytes #{i}" for i, n in enumerate(needles) if any(holds(b, n) for b in blobs)]
    return found


def code_of(fn) -> str:
    with pytest.raises(FasFinderError) as exc:
        fn()
    return exc.value.code


def test_encrypted_gallery_exports_encrypted_and_round_trips(tmp_path):
    src, dst, out = tmp_path / "src.db", tmp_path / "dst.db", tmp_path / "all.fasx"
    vecs = fill(src, KEY)
    ff = service(src, KEY)
    summary = ff.export_archive(out)
    ff.close()
    assert summary["encrypted"] is True and summary["images"] == N
    assert out.read_bytes().startswith(envelope.ARCHIVE_MAGIC) and not zipfile.is_zipfile(out)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("all.fasx")] == ["all.fasx"]  # no temp file left
    # the other office's gallery has the same key here: the gallery key opens the archive
    fill(dst, KEY)
    ff = service(dst, KEY)
    st = ff.import_archive(out)
    assert st["encrypted"] is True and st["images"] == 0 and st["duplicates"] == N  # same content, same hashes
    ff.close()
    fresh = tmp_path / "fresh.db"
    Gallery(fresh, key="another gallery key").close()
    ff = service(fresh, "another gallery key")
    st = ff.import_archive(out, archive_key=KEY)
    assert st["images"] == N and st["signature"]["status"] == "verified"
    row = [r for r in ff.audit_log() if r["action"] == "gallery.import"][0]
    assert row["details"]["encrypted"] is True
    assert ff.gallery.search(ENGINE, vecs[:1], 1)[0][0].similarity > 0.999
    ff.close()


def test_encrypted_archive_holds_no_jpeg_embedding_or_label_while_a_plain_one_does(tmp_path):
    src = tmp_path / "src.db"
    fill(src)
    needles = secrets(src, None)
    ff = service(src)
    plain = ff.export_archive(tmp_path / "plain.zip")
    sealed = ff.export_archive(tmp_path / "sealed.fasx", archive_key=ARCHIVE_KEY)
    ff.close()
    assert plain["encrypted"] is False and sealed["encrypted"] is True
    found = leaks(tmp_path / "plain.zip", needles)
    assert "JPEG magic" in found and len(found) == 1 + len(needles), found  # the check can fail
    assert leaks(tmp_path / "sealed.fasx", needles) == []


def test_archive_key_from_the_environment_and_plain_archives_still_import(tmp_path, monkeypatch):
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    fill(src)
    Gallery(dst).close()
    ff = service(src)
    assert ff.export_archive(tmp_path / "plain.zip")["encrypted"] is False
    monkeypatch.setenv("FASFINDER_ARCHIVE_KEY", ARCHIVE_KEY)
    assert ff.export_archive(tmp_path / "env.fasx")["encrypted"] is True
    ff.close()
    ff = service(dst)
    st = ff.import_archive(tmp_path / "env.fasx")
    assert st["encrypted"] is True and st["images"] == N
    monkeypatch.delenv("FASFINDER_ARCHIVE_KEY")
    st = ff.import_archive(tmp_path / "plain.zip")  # a plain archive imports as before (all duplicates now)
    assert st["encrypted"] is False and st["duplicates"] == N
    ff.close()


def test_missing_or_wrong_key_and_a_flipped_byte_are_typed_errors_and_import_nothing(tmp_path):
    src, dst, out = tmp_path / "src.db", tmp_path / "dst.db", tmp_path / "all.fasx"
    fill(src)
    ff = service(src)
    ff.export_archive(out, archive_key=ARCHIVE_KEY)
    ff.close()
    Gallery(dst).close()
    ff = service(dst)
    before = ff.counts()
    assert code_of(lambda: ff.import_archive(out)) == "archive_locked"
    assert code_of(lambda: ff.import_archive(out, archive_key="wrong passphrase")) == "archive_wrong_key"
    blob = out.read_bytes()
    hlen = int.from_bytes(blob[8:16], "little")
    for where in (len(blob) // 2, len(blob) - 1, 16 + hlen // 2, 9):  # ciphertext, tag, header, header length
        bad = bytearray(blob)
        bad[where] ^= 0x01
        (tmp_path / "bad.fasx").write_bytes(bytes(bad))
        assert code_of(lambda: ff.import_archive(tmp_path / "bad.fasx", archive_key=ARCHIVE_KEY)) in (
            "archive_wrong_key", "bad_archive"), where
    assert ff.counts() == before
    assert [r for r in ff.audit_log() if r["action"] == "gallery.import"] == []
    assert ff.import_archive(out, archive_key=ARCHIVE_KEY)["images"] == N  # the intact file still imports
    ff.close()


def test_relabelled_and_re_encrypted_archive_fails_its_signature(tmp_path):
    src, dst, out = tmp_path / "src.db", tmp_path / "dst.db", tmp_path / "all.fasx"
    fill(src)
    ff = service(src)
    ff.export_archive(out, archive_key=ARCHIVE_KEY)
    ff.close()
    # someone who knows the passphrase (but not the office's signing key) decrypts, relabels, re-encrypts
    plain = tmp_path / "plain.zip"
    plain.write_bytes(envelope.open_envelope(out, ARCHIVE_KEY).getvalue())
    _relabel(plain, tmp_path / "relabelled.zip")
    (tmp_path / "forged.fasx").write_bytes(envelope.seal((tmp_path / "relabelled.zip").read_bytes(), ARCHIVE_KEY))
    Gallery(dst).close()
    ff = service(dst)
    assert code_of(lambda: ff.import_archive(tmp_path / "forged.fasx", archive_key=ARCHIVE_KEY)) == "bad_signature"
    assert ff.counts()["images"] == 0
    ff.close()
    assert signing.SIGNATURE in zipfile.ZipFile(plain).namelist()


def test_oversized_envelope_is_refused_before_it_is_read(tmp_path, monkeypatch):
    out = tmp_path / "big.fasx"
    out.write_bytes(envelope.seal(b"x" * 4096, ARCHIVE_KEY))
    monkeypatch.setattr(envelope, "MAX_TOTAL_BYTES", 1024)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read before the size check"))
    assert code_of(lambda: envelope.open_envelope(out, ARCHIVE_KEY)) == "bad_archive"


def cli(*args, env: dict | None = None):
    environ = {k: v for k, v in os.environ.items() if k not in ("FASFINDER_GALLERY_KEY", "FASFINDER_ARCHIVE_KEY")}
    proc = subprocess.run([sys.executable, "main.py", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=environ | (env or {}))
    return proc.returncode, [json.loads(x) for x in proc.stdout.splitlines() if x.strip()], proc.stderr


def test_cli_archive_key_file(tmp_path):
    src, dst, out = tmp_path / "src.db", tmp_path / "dst.db", tmp_path / "all.fasx"
    fill(src)
    Gallery(dst).close()
    keyfile = tmp_path / "archive.key"
    keyfile.write_text(ARCHIVE_KEY + "\n")
    code, lines, err = cli("export", out, "--db", src, "--archive-key-file", keyfile, "--json")
    assert code == 0 and lines[0]["encrypted"] is True, (lines, err)
    code, lines, err = cli("import", out, "--db", dst, "--json")
    assert lines[0]["error"]["code"] == "archive_locked", (lines, err)
    code, lines, err = cli("import", out, "--db", dst, "--json", env={"FASFINDER_ARCHIVE_KEY": "wrong"})
    assert lines[0]["error"]["code"] == "archive_wrong_key", (lines, err)
    code, lines, err = cli("import", out, "--db", dst, "--archive-key-file", keyfile, "--json")
    assert code == 0 and lines[0]["images"] == N and lines[0]["error"] is None, (lines, err)
    assert "Traceback" not in err
