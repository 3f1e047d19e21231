"""Applying pulled server rows to the local replica (SQLite), idempotently, in batches.

Each batch is one local transaction with ``sync_state.applying = 1`` (the outbox triggers stay quiet)
and the gallery's own audit row; the embeddings written here reach FAISS through the gallery's
change log at the next flush (the same path as an import), so FAISS always follows SQLite.
"""

from __future__ import annotations

import json

import numpy as np

from ..gallery import Gallery
from ..gallery.stamp import now_iso
from . import replica

_PERSON_COLS = "uuid, case_id, label, metadata::text, deleted, version"
_IMAGE_COLS = ("sha256, person_uuid, path, width, height, provenance::text, liveness::text, deleted, "
               "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")


class Applier:
    def __init__(self, gallery: Gallery, report):
        self.gallery = gallery
        self.report = report

    def _batches(self, pg, sql: str, params, size: int, name: str):
        with pg.cursor(name=name) as cur:
            cur.itersize = size
            cur.execute(sql, params)
            while True:
                rows = cur.fetchmany(size)
                if not rows:
                    return
                yield rows

    # -- persons -----------------------------------------------------------------------------
    def persons(self, pg, cursor: str, size: int, cancel, progress) -> None:
        sql = f"SELECT {_PERSON_COLS} FROM fasfinder.persons WHERE txid >= %s::xid8 ORDER BY txid, uuid"
        for rows in self._batches(pg, sql, (cursor,), size, "pull_persons"):
            cancel.check()
            with self.gallery.transaction() as conn:
                replica.set_state(conn, "applying", "1")
                for row in rows:
                    self._person(conn, *row)
                self.gallery.audit("sync.pull_persons", {"rows": len(rows)})
                replica.set_state(conn, "applying", "0")
            self.report.pulled_persons += len(rows)
            progress(self.report.pulled_persons, 0, "pull persons")

    @staticmethod
    def _person(conn, uuid, case_id, label, metadata, deleted, version) -> None:
        sp = conn.execute("SELECT local_id FROM sync_person WHERE uuid = ?", (uuid,)).fetchone()
        if deleted:
            if sp:
                conn.execute("DELETE FROM persons WHERE id = ?", (sp[0],))
            return
        meta = json.dumps(json.loads(metadata), sort_keys=True)
        clash = conn.execute("SELECT 1 FROM persons WHERE label = ? AND id IS NOT ?",
                             (label, sp[0] if sp else None)).fetchone()
        shown = f"{label} [{case_id}]" if clash else label  # the same label in another case (unique locally)
        if sp:
            conn.execute("UPDATE persons SET label = ?, case_id = ?, metadata = ?, updated_at = ? WHERE id = ? AND "
                         "(label IS NOT ? OR case_id IS NOT ? OR metadata IS NOT ?)",
                         (shown, case_id, meta, now_iso(), sp[0], shown, case_id, meta))
            conn.execute("UPDATE sync_person SET version = ? WHERE local_id = ?", (version, sp[0]))
            return
        ts = now_iso()
        cur = conn.execute("INSERT INTO persons(label, case_id, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                           (shown, case_id, meta, ts, ts))
        conn.execute("INSERT INTO sync_person(local_id, uuid, version) VALUES (?, ?, ?)", (cur.lastrowid, uuid, version))

    # -- images with their faces and embeddings ---------------------------------------------
    def images(self, pg, cursor: str, size: int, cancel, progress) -> None:
        sql = f"SELECT {_IMAGE_COLS} FROM fasfinder.images WHERE txid >= %s::xid8 ORDER BY sha256"
        dims_known: set[str] = set()
        for rows in self._batches(pg, sql, (cursor,), size, "pull_images"):
            cancel.check()
            shas = [r[0] for r in rows]
            faces: dict[str, list] = {}
            for f in pg.execute("SELECT image_sha256, uuid, box::text, landmarks, detector, score, crop, "
                                "crop_box::text FROM fasfinder.faces WHERE image_sha256 = ANY(%s) AND NOT deleted "
                                "ORDER BY image_sha256, uuid", (shas,)):
                faces.setdefault(f[0], []).append(f[1:])
            emb: dict[str, list] = {}
            for e in pg.execute("SELECT e.face_uuid, e.engine, e.vector FROM fasfinder.embeddings e JOIN "
                                "fasfinder.faces f ON f.uuid = e.face_uuid WHERE f.image_sha256 = ANY(%s) "
                                "AND NOT f.deleted", (shas,)):
                emb.setdefault(e[0], []).append((e[1], bytes(e[2])))
            dims = {eng: len(vec) // 4 for lst in emb.values() for eng, vec in lst if eng not in dims_known}
            if dims:
                self.gallery.prepare_engines(dims)
                dims_known |= set(dims)
            with self.gallery.transaction() as conn:
                replica.set_state(conn, "applying", "1")
                for row in rows:
                    self._image(conn, row, faces.get(row[0], []), emb)
                self.gallery.audit("sync.pull_images", {"rows": len(rows)})
                replica.set_state(conn, "applying", "0")
            self.report.pulled_images += len(rows)
            progress(self.report.pulled_images, 0, "pull images")

    @staticmethod
    def _image(conn, row, faces: list, emb: dict) -> None:
        sha, person_uuid, path, width, height, provenance, liveness, deleted, created_at = row
        local = conn.execute("SELECT id, person_id FROM images WHERE sha256 = ?", (sha,)).fetchone()
        sp = conn.execute("SELECT local_id FROM sync_person WHERE uuid = ?", (person_uuid,)).fetchone()
        if deleted or sp is None:
            if local:
                conn.execute("DELETE FROM images WHERE id = ?", (local[0],))
            return
        if local:
            mine = {r[0] for r in conn.execute("SELECT s.uuid FROM faces f JOIN sync_face s ON s.local_id = f.id "
                                               "WHERE f.image_id = ?", (local[0],))}
            if mine == {f[0] for f in faces}:
                if local[1] != sp[0]:
                    conn.execute("UPDATE images SET person_id = ? WHERE id = ?", (sp[0], local[0]))
                return
            conn.execute("DELETE FROM images WHERE id = ?", (local[0],))  # the server's version replaces it
        cur = conn.execute("INSERT INTO images(person_id, path, sha256, width, height, provenance, liveness, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (sp[0], path, sha, width, height, _canon(provenance), liveness and _canon(liveness),
                            created_at))
        image_id = cur.lastrowid
        for uuid, box, landmarks, detector, score, crop, crop_box in faces:
            fc = conn.execute("INSERT INTO faces(image_id, box, landmarks, detector, score, crop, crop_box) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?)",
                              (image_id, box, bytes(landmarks), detector, float(score), bytes(crop), crop_box))
            conn.execute("INSERT INTO sync_face(local_id, uuid) VALUES (?, ?)", (fc.lastrowid, uuid))
            for engine, vec in emb.get(uuid, []):
                np.frombuffer(vec, np.float32)  # a malformed vector fails here, inside the transaction
                conn.execute("INSERT INTO embeddings(face_id, engine, vector) VALUES (?, ?, ?)", (fc.lastrowid, engine, vec))

    # -- decisions and visibility ------------------------------------------------------------
    def decisions(self, pg, cursor: str) -> None:
        rows = pg.execute("SELECT uuid, case_id, person_uuid, query_sha256, face_uuid, verdict, note, created_by, "
                          "created_at::text FROM fasfinder.decisions WHERE txid >= %s::xid8", (cursor,)).fetchall()
        if rows:
            with self.gallery.transaction() as conn:
                conn.executemany("INSERT INTO sync_decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
                                 "ON CONFLICT(uuid) DO UPDATE SET pushed = 1", rows)

    def reconcile(self, pg) -> None:
        """Remove local persons the server no longer shows this user (moved to another case, unassigned)."""

        visible = {r[0] for r in pg.execute("SELECT uuid FROM fasfinder.persons WHERE NOT deleted")}
        with self.gallery.snapshot() as conn:
            known = conn.execute("SELECT local_id, uuid FROM sync_person WHERE version > 0").fetchall()
        gone = [local_id for local_id, uuid in known if uuid not in visible]
        if gone:
            with self.gallery.transaction() as conn:
                replica.set_state(conn, "applying", "1")
                conn.executemany("DELETE FROM persons WHERE id = ?", [(g,) for g in gone])
                self.gallery.audit("sync.unseen_removed", {"persons": len(gone)})
                replica.set_state(conn, "applying", "0")
            self.report.removed_persons += len(gone)


def _canon(text: str) -> str:
    """jsonb text of an object back in the form the gallery writes (sorted keys; jsonb orders keys by length).

    Lists (face boxes, crop boxes) need no conversion: jsonb prints ``[1, 2, 3]`` as ``json.dumps`` does."""

    return json.dumps(json.loads(text), sort_keys=True)
