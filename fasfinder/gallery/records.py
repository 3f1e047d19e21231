"""Persons (cases), images and faces: enrolment, look-ups, updates and deletes.

Each enrolled image is written in one transaction with its faces, crops and embeddings, so a crash
leaves either the whole record or nothing; the indexes are updated after the commit (vectors.py).
A delete cascades (person -> images -> faces -> embeddings) and takes the faces out of the indexes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import GalleryError, NotFoundInGallery
from ..faces import Face
from .audit import AuditLog
from .crops import face_crop
from .db import GalleryDB
from .stamp import now_iso
from .trash import Trash, decode_row, encode_row, person_label, restore_rows, snapshot_rows
from .vectors import Vectors, check_embeddings

_TABLE = {"person": "persons", "image": "images", "face": "faces"}


@dataclass
class GalleryRecord:
    """One person (case) with their images."""

    person_id: int
    label: str
    case_id: str | None
    metadata: dict = field(default_factory=dict)
    images: list[dict] = field(default_factory=list)


class Records:
    """The ``persons``, ``images`` and ``faces`` tables (and the embeddings written with them)."""

    def __init__(self, db: GalleryDB, audit: AuditLog, vectors: Vectors, trash: Trash):
        self.db = db
        self.audit = audit
        self.vectors = vectors
        self.trash = trash

    # -- persons -------------------------------------------------------------------------
    def _person_id(self, label: str, case_id: str | None, metadata: dict | None) -> int:
        conn = self.db.conn
        row = conn.execute("SELECT id FROM persons WHERE label = ?", (label,)).fetchone()
        if row:
            return int(row["id"])
        ts = now_iso()
        cur = conn.execute(
            "INSERT INTO persons(label, case_id, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (label, case_id, json.dumps(metadata or {}, sort_keys=True), ts, ts),
        )
        self.audit.write("person.create", {"person_id": cur.lastrowid, "label": label, "case_id": case_id})
        return int(cur.lastrowid)

    def persons(self) -> list[GalleryRecord]:
        with self.db.lock:
            people = self.db.conn.execute("SELECT * FROM persons ORDER BY label").fetchall()
            images = self.db.conn.execute(
                "SELECT i.id, i.person_id, i.path, i.sha256, i.width, i.height, i.liveness, i.created_at, "
                "(SELECT COUNT(*) FROM faces f WHERE f.image_id = i.id) AS faces FROM images i ORDER BY i.id"
            ).fetchall()
        by_person: dict[int, list[dict]] = {}
        for im in images:
            d = dict(im)
            d["liveness"] = json.loads(d["liveness"]) if d["liveness"] else None
            by_person.setdefault(im["person_id"], []).append(d)
        return [
            GalleryRecord(
                person_id=p["id"], label=p["label"], case_id=p["case_id"],
                metadata=json.loads(p["metadata"]), images=by_person.get(p["id"], []),
            )
            for p in people
        ]

    def find_persons(self, text: str) -> list[int]:
        """Ids of the persons whose label, case id or metadata hold every word of ``text`` as a word
        prefix (sqlite-utils full-text search, ``persons_fts``; LIKE without FTS5), by label."""

        words = re.findall(r"\w+", text or "")
        with self.db.lock:
            if not words:
                return [r[0] for r in self.db.conn.execute("SELECT id FROM persons ORDER BY label")]
            if self.db.sql["persons"].detect_fts():
                q = " ".join('"' + w.replace('"', '""') + '"*' for w in words)
                ids = {r["id"] for r in self.db.sql["persons"].search(q, columns=["id"])}
            else:
                where = " AND ".join(["(label || ' ' || COALESCE(case_id, '') || ' ' || metadata) LIKE ?"] * len(words))
                ids = {r[0] for r in self.db.conn.execute(f"SELECT id FROM persons WHERE {where}",
                                                          [f"%{w}%" for w in words])}
            order = [r[0] for r in self.db.conn.execute("SELECT id FROM persons ORDER BY label")]
        return [i for i in order if i in ids]

    def person(self, person_id: int) -> GalleryRecord:
        for rec in self.persons():
            if rec.person_id == person_id:
                return rec
        raise NotFoundInGallery(f"no person with id {person_id}")

    def update_person(self, person_id: int, *, label: str | None = None, case_id: str | None = None,
                      metadata: dict | None = None) -> None:
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM persons WHERE id = ?", (person_id,)).fetchone()
            if not row:
                raise NotFoundInGallery(f"no person with id {person_id}")
            new_label = label if label is not None else row["label"]
            if not new_label.strip():
                raise GalleryError("a person's label cannot be empty")
            clash = conn.execute("SELECT id FROM persons WHERE label = ? AND id != ?", (new_label, person_id)).fetchone()
            if clash:
                raise GalleryError(f"another person already has the label {new_label!r}")
            conn.execute(
                "UPDATE persons SET label = ?, case_id = ?, metadata = ?, updated_at = ? WHERE id = ?",
                (
                    new_label,
                    case_id if case_id is not None else row["case_id"],
                    json.dumps(metadata if metadata is not None else json.loads(row["metadata"]), sort_keys=True),
                    now_iso(),
                    person_id,
                ),
            )
            self.audit.write("person.update", {"person_id": person_id, "label": new_label, "case_id": case_id,
                                               "metadata": metadata, "old_label": row["label"],
                                               "old_case_id": row["case_id"]})

    # -- deletes (soft: into the trash, see trash.py) ------------------------------------------
    def _delete(self, what: str, key: int) -> int:
        with self.db.lock:
            engines = self.vectors.open_all()  # open (and sync) first, so the removal below is the only change
            with self.db.transaction() as conn:
                payload, name = snapshot_rows(conn, what, key)
                face_ids = [f["id"] for f in payload["faces"]]
                label = payload["persons"][0]["label"] if payload["persons"] else person_label(
                    conn, payload["images"][0]["person_id"] if payload["images"] else
                    conn.execute("SELECT person_id FROM images WHERE id = ?",
                                 (payload["faces"][0]["image_id"],)).fetchone()[0])
                trash_id = self.trash.keep(conn, what, key, label, name, payload)
                gen_before = self.db.gen()
                conn.execute(f"DELETE FROM {_TABLE[what]} WHERE id = ?", (key,))
                self.audit.write(f"{what}.delete", {f"{what}_id": key, "faces": len(face_ids), "face_ids": face_ids,
                                                    "label": label, "trash_id": trash_id})
                gen_after = self.db.gen()
            self.vectors.applied_remove(engines, face_ids, gen_before, gen_after)
            # Saved at the next checkpoint/flush (a crash before that is repaired on open): keeps a
            # delete fast at 1e6 faces, where a save writes ~500 MB.
            self.vectors.checkpoint()
            return len(face_ids)

    def delete_person(self, person_id: int) -> int:
        return self._delete("person", person_id)

    def delete_image(self, image_id: int) -> int:
        return self._delete("image", image_id)

    def delete_face(self, face_id: int) -> int:
        return self._delete("face", face_id)

    def restore(self, trash_id: int) -> dict:
        """Undo a delete or merge kept in the trash (audited ``<kind>.restore``); what came back."""

        with self.db.lock:
            self.vectors.open_all()
            with self.db.transaction() as conn:
                row = self.trash.take(conn, trash_id)
                payload = row["payload"]
                gen_before = self.db.gen()
                if row["kind"] == "merge":
                    restore_rows(conn, {"persons": payload["persons"], "images": [], "faces": [], "embeddings": []})
                    ids = payload["image_ids"]
                    conn.execute(f"UPDATE images SET person_id = ? WHERE id IN ({','.join('?' * len(ids))})",
                                 (payload["persons"][0]["id"], *ids))
                else:
                    restore_rows(conn, payload)
                self.audit.write(f"{row['kind']}.restore", {"trash_id": row["id"], f"{row['kind']}_id": row["ref_id"],
                                                            "what": row["what"], "deleted_at": row["deleted_at"]})
                gen_after = self.db.gen()
            by_engine: dict[str, tuple[list[int], list[np.ndarray]]] = {}
            for e in payload.get("embeddings", []):
                ids, vecs = by_engine.setdefault(e["engine"], ([], []))
                ids.append(int(e["face_id"]))
                vecs.append(np.frombuffer(decode_row(e)["vector"], np.float32))
            for engine, (ids, vecs) in by_engine.items():
                self.vectors.applied_add({engine: np.stack(vecs)}, ids, gen_before, gen_after)
            self.vectors.checkpoint()
        return {"trash_id": row["id"], "kind": row["kind"], "what": row["what"], "label": row["label"],
                "faces": sum(len(v[0]) for v in by_engine.values())}

    def merge(self, source_id: int, target_id: int) -> dict:
        """Move every photo of person ``source_id`` to ``target_id`` and remove the source person
        (kept in the trash as kind ``merge``, so the merge can be undone); audited ``person.merge``."""

        if int(source_id) == int(target_id):
            raise GalleryError("a person cannot be merged into itself", code="bad_argument")
        with self.db.transaction() as conn:
            src = conn.execute("SELECT * FROM persons WHERE id = ?", (source_id,)).fetchone()
            dst = conn.execute("SELECT * FROM persons WHERE id = ?", (target_id,)).fetchone()
            if src is None or dst is None:
                raise NotFoundInGallery(f"no person with id {source_id if src is None else target_id}")
            ids = [r[0] for r in conn.execute("SELECT id FROM images WHERE person_id = ? ORDER BY id", (source_id,))]
            what = f"merge of {src['label']!r} ({len(ids)} photo(s)) into {dst['label']!r}"
            payload = {"persons": [encode_row(src)], "image_ids": ids, "target_id": int(target_id)}
            trash_id = self.trash.keep(conn, "merge", source_id, src["label"], what, payload)
            conn.execute("UPDATE images SET person_id = ? WHERE person_id = ?", (target_id, source_id))
            conn.execute("UPDATE persons SET updated_at = ? WHERE id = ?", (now_iso(), target_id))
            conn.execute("DELETE FROM persons WHERE id = ?", (source_id,))
            self.audit.write("person.merge", {"source_id": int(source_id), "source_label": src["label"],
                                              "target_id": int(target_id), "target_label": dst["label"],
                                              "image_ids": ids, "trash_id": trash_id})
        return {"target_id": int(target_id), "label": dst["label"], "images_moved": len(ids), "trash_id": trash_id}

    def add_person(self, label: str, case_id: str | None = None, metadata: dict | None = None) -> int:
        """A new person without photos yet (photos are imported into it later); ``duplicate`` if the label exists."""

        if not label or not label.strip():
            raise GalleryError("a person's label cannot be empty", code="bad_argument")
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM persons WHERE label = ?", (label,)).fetchone():
                raise GalleryError(f"a person called {label!r} is already in the gallery", code="duplicate")
            return self._person_id(label, case_id or None, metadata)

    # -- images --------------------------------------------------------------------------
    def has_image(self, sha256: str) -> int | None:
        with self.db.lock:
            row = self.db.conn.execute("SELECT id FROM images WHERE sha256 = ?", (sha256,)).fetchone()
        return int(row["id"]) if row else None

    def add_image(
        self,
        *,
        label: str,
        path: str,
        sha256: str,
        width: int,
        height: int,
        rgb: np.ndarray,
        faces: list[Face],
        embeddings: dict[str, np.ndarray],
        case_id: str | None = None,
        metadata: dict | None = None,
        provenance: dict | None = None,
        liveness: list[dict] | None = None,
    ) -> int:
        """Store one image with its faces and embeddings in one transaction; return its id.

        ``embeddings[engine]`` has one row per face. Raises GalleryError (code ``duplicate``) when
        the same content is already enrolled. Any failure leaves the gallery unchanged.
        """

        if not label or not label.strip():
            raise GalleryError("a label is required to enroll an image")
        crops = [face_crop(rgb, f) for f in faces]
        vec_by_engine = {}
        for engine, vecs in embeddings.items():
            vecs = np.asarray(vecs, dtype=np.float32)
            if vecs.ndim != 2 or len(vecs) != len(faces):
                raise GalleryError(f"engine {engine}: {len(vecs)} embeddings for {len(faces)} faces")
            # size (against the gallery's, below), finite, unit length: refused, never re-normalised
            vec_by_engine[engine] = check_embeddings(engine, vecs, code="bad_argument", where=path)
        with self.db.lock:
            # Open (and sync) each index *before* the commit, so the new faces are added exactly once.
            for engine, vecs in vec_by_engine.items():
                self.vectors.prepare(engine, vecs.shape[1])
            with self.db.transaction() as conn:
                if conn.execute("SELECT 1 FROM images WHERE sha256 = ?", (sha256,)).fetchone():
                    raise GalleryError(f"{path}: this image (same content) is already enrolled", code="duplicate")
                gen_before = self.db.gen()
                person_id = self._person_id(label, case_id, metadata)
                cur = conn.execute(
                    "INSERT INTO images(person_id, path, sha256, width, height, provenance, liveness, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (person_id, path, sha256, width, height, json.dumps(provenance or {}, sort_keys=True),
                     json.dumps(liveness) if liveness is not None else None, now_iso()),
                )
                image_id = int(cur.lastrowid)
                face_ids = []
                for face, (crop, crop_box) in zip(faces, crops):
                    fc = conn.execute(
                        "INSERT INTO faces(image_id, box, landmarks, detector, score, crop, crop_box) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (image_id, json.dumps([int(v) for v in face.box]),
                         np.asarray(face.landmarks, np.float32).tobytes(),
                         face.detector, float(face.score), crop, json.dumps(crop_box)),
                    )
                    face_ids.append(int(fc.lastrowid))
                for engine, vecs in vec_by_engine.items():
                    conn.executemany(
                        "INSERT INTO embeddings(face_id, engine, vector) VALUES (?, ?, ?)",
                        [(fid, engine, v.tobytes()) for fid, v in zip(face_ids, vecs)],
                    )
                self.audit.write("image.enroll", {"image_id": image_id, "person_id": person_id, "label": label,
                                                  "path": path, "sha256": sha256, "faces": len(faces)})
                gen_after = self.db.gen()
            # Committed: now update the derived indexes (a crash here is repaired on the next open).
            self.vectors.applied_add(vec_by_engine, face_ids, gen_before, gen_after)
            self.vectors.checkpoint()
            return image_id

    def image_row(self, image_id: int) -> dict:
        with self.db.lock:
            row = self.db.conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        if not row:
            raise NotFoundInGallery(f"no image with id {image_id}")
        return dict(row)

    def face_row(self, face_id: int) -> dict:
        with self.db.lock:
            row = self.db.conn.execute(
                "SELECT f.*, i.path, i.person_id, p.label, p.case_id FROM faces f JOIN images i ON f.image_id = i.id "
                "JOIN persons p ON i.person_id = p.id WHERE f.id = ?", (face_id,)
            ).fetchone()
        if not row:
            raise NotFoundInGallery(f"no face with id {face_id}")
        d = dict(row)
        d["box"] = json.loads(d["box"])
        d["crop_box"] = json.loads(d["crop_box"])
        lm = d["landmarks"]
        if not isinstance(lm, bytes) or len(lm) % 8:
            raise GalleryError(f"face {face_id}: stored landmarks are malformed", code="bad_crop")
        d["landmarks"] = np.frombuffer(lm, np.float32).reshape(-1, 2).copy()
        return d

    def counts(self) -> dict:
        with self.db.lock:
            c = self.db.conn.execute(
                "SELECT (SELECT COUNT(*) FROM persons) AS persons, (SELECT COUNT(*) FROM images) AS images, "
                "(SELECT COUNT(*) FROM faces) AS faces"
            ).fetchone()
        return dict(c)
