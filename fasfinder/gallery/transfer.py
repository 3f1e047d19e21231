"""Export / import of a gallery (or selected cases) as one file, with an integrity check.

The export file is a zip archive with two members (and a signature, see below):

* ``records.jsonl`` -- one line per enrolled image: its person (label, case id, metadata), the
  image row (path, content sha256, size, provenance, liveness, created_at) and its faces (box,
  landmarks, detector, score, JPEG crop, crop box, embeddings per engine). Binary fields are
  base64; every face carries ``crop_sha256`` and ``embeddings_sha256`` of the decoded bytes.
* ``manifest.json`` -- format and version, who exported what and when, the filters, counts, the
  engines and their sizes, the sha256 of ``records.jsonl`` and, per record, its line's sha256.

Import verifies everything before writing anything (manifest, file hash, every record's hash,
every crop and embedding hash, sizes against the target gallery) and then inserts all records in
**one** transaction: a damaged or tampered file is refused with a typed error
(``GalleryError`` code ``integrity_error`` / ``import_invalid``) and leaves the gallery unchanged.
Images whose content is already enrolled are skipped (re-importing a file is idempotent); persons
are matched by label. The hashes detect damage and naive tampering; authenticity comes from a third
member, ``signature.json``: the exporting office's Ed25519 signature over the manifest, checked
against the trusted keys on import (see :mod:`fasfinder.gallery.signing`). With a passphrase the
whole signed zip is written inside an encrypted envelope (:mod:`fasfinder.gallery.envelope`); import
recognises the envelope by its magic and decrypts it in memory before the checks above.

This module works through the gallery's public methods only (``snapshot``, ``transaction``,
``prepare_engines``, ``audit``, ``flush``, ``user``, ``path``) and never imports the gallery store:
``Gallery.export`` / ``Gallery.import_file`` call in here, never the reverse.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import GalleryError
from . import envelope, signing
from .archive_checks import (MAX_FACES, MAX_MANIFEST_BYTES, MAX_RECORD_BYTES, MAX_SIDE, bad_archive, check_int, check_json,
                             check_num, check_text, check_engine_names, check_members)
from .crops import CROP_MAX_BYTES, decode_crop
from .stamp import now_iso
from .vectors import check_embeddings
from .tempfiles import clean_stale_exports

FORMAT = "fasfinder-gallery-export"
VERSION = 1
RECORDS = "records.jsonl"
MANIFEST = "manifest.json"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s.encode("ascii"), validate=True)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _integrity(msg: str) -> GalleryError:
    return GalleryError(msg, code="integrity_error")


def _invalid(msg: str) -> GalleryError:
    return GalleryError(msg, code="import_invalid")


def export_gallery(gallery, out_path, *, labels=None, case_ids=None, passphrase: str | None = None) -> dict:
    """Write the selected persons (all when no filter) with their images, faces and embeddings;
    with ``passphrase``, inside an encrypted envelope (envelope.py)."""

    try:
        return _export(gallery, out_path, labels=labels, case_ids=case_ids, passphrase=passphrase)
    except OSError as exc:
        raise GalleryError(f"{out_path}: cannot write the export ({exc})", code="io_error") from exc


def _export(gallery, out_path, *, labels=None, case_ids=None, passphrase=None) -> dict:
    out_path = Path(out_path)
    labels = list(labels or [])
    case_ids = list(case_ids or [])
    where, args = "", []
    if labels or case_ids:
        parts = []
        if labels:
            parts.append(f"p.label IN ({','.join('?' * len(labels))})")
            args += labels
        if case_ids:
            parts.append(f"p.case_id IN ({','.join('?' * len(case_ids))})")
            args += case_ids
        where = "WHERE " + " OR ".join(parts)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_exports(out_path.parent)  # left by an export that was killed (tempfiles.py)
    tmp = out_path.with_name(f"{out_path.name}.{os.getpid()}.tmp")
    fd = os.open(str(tmp), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.close(fd)
    engines: dict[str, int] = {}
    record_hashes = []
    persons = set()
    n_faces = 0
    data_hash = hashlib.sha256()
    target = io.BytesIO() if passphrase is not None else tmp  # an encrypted export is never plain on disk
    try:
        # one consistent snapshot of the gallery
        with gallery.snapshot() as conn, zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            with zf.open(RECORDS, "w") as rec_out:
                images = conn.execute(
                    "SELECT i.*, p.label, p.case_id, p.metadata AS person_metadata FROM images i "
                    f"JOIN persons p ON i.person_id = p.id {where} ORDER BY i.id", args).fetchall()
                for im in images:
                    faces = []
                    for f in conn.execute("SELECT * FROM faces WHERE image_id = ? ORDER BY id", (im["id"],)).fetchall():
                        embs = {}
                        for e in conn.execute("SELECT engine, vector FROM embeddings WHERE face_id = ? ORDER BY engine",
                                              (f["id"],)):
                            embs[e["engine"]] = _b64(e["vector"])
                            engines[e["engine"]] = len(e["vector"]) // 4
                        faces.append({
                            "box": json.loads(f["box"]), "landmarks": _b64(f["landmarks"]), "detector": f["detector"],
                            "score": f["score"], "crop": _b64(f["crop"]), "crop_sha256": _sha(f["crop"]),
                            "crop_box": json.loads(f["crop_box"]), "embeddings": embs,
                            "embeddings_sha256": {k: _sha(_unb64(v)) for k, v in embs.items()},
                        })
                    rec = {
                        "person": {"label": im["label"], "case_id": im["case_id"],
                                   "metadata": json.loads(im["person_metadata"])},
                        "image": {"path": im["path"], "sha256": im["sha256"], "width": im["width"],
                                  "height": im["height"], "provenance": json.loads(im["provenance"]),
                                  "liveness": json.loads(im["liveness"]) if im["liveness"] else None,
                                  "created_at": im["created_at"]},
                        "faces": faces,
                    }
                    line = _canonical(rec) + b"\n"
                    rec_out.write(line)
                    data_hash.update(line)
                    record_hashes.append(_sha(line))
                    persons.add(im["label"])
                    n_faces += len(faces)
            manifest = {
                "format": FORMAT, "version": VERSION, "created_at": now_iso(), "user": gallery.user,
                "source": str(gallery.path), "filters": {"labels": labels, "case_ids": case_ids},
                "counts": {"persons": len(persons), "images": len(record_hashes), "faces": n_faces},
                "engines": engines, "records_file": RECORDS, "records_sha256": data_hash.hexdigest(),
                "record_sha256": record_hashes,
            }
            manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
            zf.writestr(MANIFEST, manifest_bytes)
            # the office's signature over the manifest (which hashes all content); see signing.py
            signature, signer = signing.sign_manifest(manifest_bytes)
            zf.writestr(signing.SIGNATURE, signature)
        if passphrase is not None:
            sealed = envelope.seal(target.getbuffer(), passphrase)
            target = None
            with open(tmp, "wb") as fh:
                fh.write(sealed)
            del sealed
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out_path)
    file_sha = _file_sha(out_path)
    summary = {"path": str(out_path), "persons": len(persons), "images": len(record_hashes), "faces": n_faces,
               "engines": engines, "sha256": file_sha, "filters": {"labels": labels, "case_ids": case_ids},
               "signer": signer, "encrypted": passphrase is not None}
    gallery.audit("gallery.export", summary)
    return summary


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _open_archive(path: Path, passphrase: str | None = None) -> tuple[zipfile.ZipFile, dict]:
    if not path.is_file():
        raise _invalid(f"{path}: no such file")
    # an encrypted archive is decrypted in memory (size-checked first); the zip checks below then apply
    source = envelope.open_envelope(path, passphrase) if envelope.is_envelope(path) else path
    try:
        zf = zipfile.ZipFile(source)
        check_members(zf, path, MANIFEST)
        names = set(zf.namelist())
        if MANIFEST not in names or RECORDS not in names:
            raise _invalid(f"{path}: not a FASFinder export (manifest or records missing)")
        with zf.open(MANIFEST) as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise bad_archive(f"{path}: manifest over {MAX_MANIFEST_BYTES} bytes")
        manifest = json.loads(data.decode("utf-8"))
    except GalleryError:
        raise
    except MemoryError as exc:
        raise bad_archive(f"{path}: archive too large to read") from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError,
            EOFError, RuntimeError, ValueError, zlib_error()) as exc:
        raise _integrity(f"{path}: damaged export file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _invalid(f"{path}: not a FASFinder export")
    if manifest.get("version") != VERSION:
        raise _invalid(f"{path}: export version {manifest.get('version')} is not supported (expected {VERSION})")
    for key in ("records_sha256", "record_sha256", "engines", "counts"):
        if key not in manifest:
            raise _integrity(f"{path}: manifest lacks {key!r}")
    hashes = manifest["record_sha256"]
    if not isinstance(manifest["records_sha256"], str) or not isinstance(hashes, list) or not all(
            isinstance(h, str) for h in hashes):
        raise bad_archive(f"{path}: manifest hashes are malformed")
    return zf, manifest


def _records(zf: zipfile.ZipFile, manifest: dict, path: Path):
    """Yield every verified record (raises on the first mismatch)."""

    expected = manifest["record_sha256"]
    total = hashlib.sha256()
    n = 0
    try:
        with zf.open(RECORDS) as fh:
            while line := fh.readline(MAX_RECORD_BYTES + 1):  # never one unbounded line in memory
                if len(line) > MAX_RECORD_BYTES:
                    raise bad_archive(f"{path}: record {n + 1} is over {MAX_RECORD_BYTES} bytes")
                total.update(line)
                if n >= len(expected) or _sha(line) != expected[n]:
                    raise _integrity(f"{path}: record {n + 1} fails its integrity check (tampered or damaged)")
                try:
                    rec = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise _integrity(f"{path}: record {n + 1} is not valid JSON") from exc
                n += 1
                yield rec
    except GalleryError:
        raise
    except MemoryError as exc:
        raise bad_archive(f"{path}: record {n + 1} too large to read") from exc
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError, zlib_error()) as exc:
        raise _integrity(f"{path}: damaged export file ({type(exc).__name__}: {exc})") from exc
    if n != len(expected) or total.hexdigest() != manifest["records_sha256"]:
        raise _integrity(f"{path}: the records do not match the manifest ({n} of {len(expected)} records)")


def zlib_error():
    import zlib

    return zlib.error


def _decode_record(rec: dict, engines: dict, path: Path, n: int, *, decode_crops: bool = True) -> dict:
    """Decoded binary fields of one record, each checked against its hash, every field checked for
    type and range (GalleryError ``bad_archive``), every embedding for size, finiteness and unit
    length, every crop decoded under the image size limits (``decode_crops``; crops.py)."""

    where = f"{path}: record {n}"
    try:
        if not isinstance(rec, dict):
            raise bad_archive(f"{where}: not an object")
        person, image, faces = rec["person"], rec["image"], rec["faces"]
        if not isinstance(person, dict) or not isinstance(image, dict) or not isinstance(faces, list):
            raise bad_archive(f"{where}: person, image and faces must be an object, an object and a list")
        label = person["label"]
        if not isinstance(label, str):
            raise bad_archive(f"{where}: the label is not text")
        if not label.strip():
            raise _invalid(f"{where}: empty label")
        check_text(label, f"{where}: label")
        check_text(person.get("case_id"), f"{where}: case id", optional=True)
        check_json(person.get("metadata"), f"{where}: person metadata", (dict,))
        check_text(image["path"], f"{where}: image path")
        check_text(image["sha256"], f"{where}: image sha256", limit=128)
        check_int(image["width"], f"{where}: image width", 1, MAX_SIDE)
        check_int(image["height"], f"{where}: image height", 1, MAX_SIDE)
        check_json(image.get("provenance"), f"{where}: provenance", (dict,))
        check_json(image.get("liveness"), f"{where}: liveness", (list, dict))
        check_text(image.get("created_at"), f"{where}: created_at", optional=True, limit=64)
        if len(faces) > MAX_FACES:
            raise bad_archive(f"{where}: {len(faces)} faces (at most {MAX_FACES})")
        out_faces = []
        for f in faces:
            if not isinstance(f, dict):
                raise bad_archive(f"{where}: a face is not an object")
            crop = _unb64(check_text(f["crop"], f"{where}: crop", limit=8 * CROP_MAX_BYTES))
            if _sha(crop) != f["crop_sha256"]:
                raise _integrity(f"{where}: a face crop fails its integrity check")
            if decode_crops:
                try:
                    decode_crop(crop)  # the image limits apply before decoding (no bomb gets in)
                except GalleryError as exc:
                    raise bad_archive(f"{where}: face crop refused: {exc}") from exc
            embs = {}
            if not isinstance(f["embeddings"], dict) or not isinstance(f["embeddings_sha256"], dict):
                raise bad_archive(f"{where}: embeddings must be objects")
            for engine, b64 in f["embeddings"].items():
                raw = _unb64(check_text(b64, f"{where}: embedding", limit=8 * 65536))
                if _sha(raw) != f["embeddings_sha256"][engine]:
                    raise _integrity(f"{where}: an embedding fails its integrity check")
                if engine not in engines or len(raw) != 4 * int(engines[engine]):
                    raise _integrity(f"{where}: embedding of engine {engine} has the wrong size")
                check_embeddings(engine, np.frombuffer(raw, dtype=np.float32)[None], int(engines[engine]),
                                 code="bad_archive", where=where)
                embs[engine] = raw
            lm = _unb64(check_text(f["landmarks"], f"{where}: landmarks", limit=1 << 16))
            if not lm or len(lm) % 8 or not np.all(np.isfinite(np.frombuffer(lm, np.float32))):
                raise bad_archive(f"{where}: landmarks must be finite float32 (x, y) pairs")
            box = f["box"]
            if not isinstance(box, list) or len(box) != 4:
                raise bad_archive(f"{where}: a face box must be 4 integers")
            box = [check_int(v, f"{where}: face box", -MAX_SIDE, 2 * MAX_SIDE) for v in box]
            crop_box = f["crop_box"]
            if not isinstance(crop_box, list) or len(crop_box) != 4:
                raise bad_archive(f"{where}: a crop box must be 4 numbers")
            crop_box = [check_num(v, f"{where}: crop box") for v in crop_box]
            if not (crop_box[2] > crop_box[0] and crop_box[3] > crop_box[1]):
                raise bad_archive(f"{where}: crop box {crop_box} is empty")
            out_faces.append({"box": box, "landmarks": lm, "detector": check_text(f["detector"], f"{where}: detector", limit=64),
                              "score": check_num(f["score"], f"{where}: score"), "crop": crop, "crop_box": crop_box,
                              "embeddings": embs})
        return {"person": person, "image": image, "faces": out_faces}
    except GalleryError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, binascii.Error) as exc:
        raise bad_archive(f"{where} is malformed ({type(exc).__name__}: {exc})") from exc


def import_gallery(gallery, in_path, *, allow_unsigned: bool = False, passphrase: str | None = None) -> dict:
    """Verify ``in_path`` completely, then import it in one transaction.

    An encrypted archive (envelope.py) is decrypted with ``passphrase`` first (``archive_locked``
    without one, ``archive_wrong_key`` when it does not decrypt).

    The archive must be signed by the own office or a trusted key (see signing.py); with
    ``allow_unsigned`` an unsigned or untrusted-signer archive is imported and its audit row says so.
    """

    path = Path(in_path)
    zf, manifest = _open_archive(path, passphrase)
    with zf:
        with gallery.snapshot() as conn:
            known = {r[0] for r in conn.execute("SELECT DISTINCT engine FROM embeddings")}
        engines = check_engine_names(manifest["engines"], known, str(path))
        # Pass 1: verify everything, write nothing.
        n = 0
        for rec in _records(zf, manifest, path):
            n += 1
            _decode_record(rec, engines, path, n)
        # Sizes must agree with the gallery's; the indexes are opened (after the checks above: an archive
        # refused creates no index file) so the flush below adds the new ids.
        gallery.prepare_engines(engines)
        # Authenticity, once the content is known to match its manifest.
        verdict = _check_signature(zf, path, allow_unsigned)
        # Pass 2: insert in one transaction (records re-verified as they are read).
        stats = {"path": str(path), "images": 0, "duplicates": 0, "faces": 0, "persons_created": 0,
                 "sha256": _file_sha(path), "signature": verdict, "encrypted": envelope.is_envelope(path)}
        with gallery.transaction() as conn:
            n = 0
            for rec in _records(zf, manifest, path):
                n += 1
                r = _decode_record(rec, engines, path, n, decode_crops=False)  # decoded in pass 1
                im = r["image"]
                if conn.execute("SELECT 1 FROM images WHERE sha256 = ?", (im["sha256"],)).fetchone():
                    stats["duplicates"] += 1
                    continue
                p = r["person"]
                row = conn.execute("SELECT id FROM persons WHERE label = ?", (p["label"],)).fetchone()
                if row:
                    person_id = int(row[0])
                else:
                    ts = now_iso()
                    person_id = int(conn.execute(
                        "INSERT INTO persons(label, case_id, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                        (p["label"], p.get("case_id"), json.dumps(p.get("metadata") or {}, sort_keys=True), ts, ts),
                    ).lastrowid)
                    stats["persons_created"] += 1
                image_id = int(conn.execute(
                    "INSERT INTO images(person_id, path, sha256, width, height, provenance, liveness, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (person_id, str(im["path"]), str(im["sha256"]), int(im["width"]), int(im["height"]),
                     json.dumps(dict(im.get("provenance") or {}, imported_from=stats["sha256"]), sort_keys=True),
                     json.dumps(im["liveness"]) if im.get("liveness") is not None else None,
                     str(im.get("created_at") or now_iso())),
                ).lastrowid)
                for f in r["faces"]:
                    face_id = int(conn.execute(
                        "INSERT INTO faces(image_id, box, landmarks, detector, score, crop, crop_box) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (image_id, json.dumps(f["box"]), f["landmarks"], f["detector"], f["score"], f["crop"],
                         json.dumps(f["crop_box"])),
                    ).lastrowid)
                    for engine, raw in f["embeddings"].items():
                        conn.execute("INSERT INTO embeddings(face_id, engine, vector) VALUES (?, ?, ?)",
                                     (face_id, engine, raw))
                    stats["faces"] += 1
                stats["images"] += 1
            # Part of the same transaction: no import without its audit row, and vice versa.
            gallery.audit("gallery.import", {k: v for k, v in stats.items()} | {
                "export_user": manifest.get("user"), "export_created_at": manifest.get("created_at"),
                "export_source": manifest.get("source"), "filters": manifest.get("filters")})
        # Committed: bring the indexes in step (adds exactly the new face ids).
        gallery.flush()
    return stats


def _check_signature(zf: zipfile.ZipFile, path: Path, allow_unsigned: bool) -> dict:
    def member(name: str, limit: int) -> bytes:
        with zf.open(name) as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise _invalid(f"{path}: {name} is larger than {limit} bytes")
        return data

    try:
        manifest_bytes = member(MANIFEST, 1 << 28)
        names = set(zf.namelist())
        signature = member(signing.SIGNATURE, 1 << 16) if signing.SIGNATURE in names else None
    except GalleryError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError, zlib_error()) as exc:
        raise _integrity(f"{path}: damaged export file ({type(exc).__name__}: {exc})") from exc
    return signing.verify(manifest_bytes, signature, allow_unsigned=allow_unsigned, where=str(path))
