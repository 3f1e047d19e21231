"""``fasfinder sync``: push the workstation's pending changes, then pull the server's since the last sync.

Push (outbox order, ``batch`` entries per server transaction, then one local transaction that drops
them from the outbox): every push is idempotent -- persons and faces carry uuids made on the
workstation, images are keyed by sha256, edits carry their ``op_id`` -- so an entry pushed but not yet
dropped (a kill -9 between the two commits) is pushed again harmlessly.

Pull: one REPEATABLE READ snapshot of the server. The cursor is the snapshot's ``xmin``: every row
written by a transaction older than it is visible now, so rows with ``txid >= cursor`` are all that
can have changed since (some are read twice: applying is idempotent). Rows are applied in batches,
each one local transaction; the new cursor is stored only after the last batch, so a kill at any
point re-pulls from the old cursor and loses nothing. An image travels as one unit with its faces and
embeddings. After the pull, persons the user can no longer see (deleted, unassigned) are removed.

Conflict rules (each one recorded in ``sync_conflicts`` and tested in tests/test_server_sync.py):

* **same photo enrolled twice** (same sha256, two persons): the first to reach the server keeps it;
  the later office's copy is replaced by the server's at its pull (rule ``same_photo_enrolled_twice``);
  the same label in the same case on two workstations is one person (``same_person_merged``);
* **a record edited in two places**: the first edit to reach the server wins (its version moves on);
  the later one, based on an older version, is not applied and is kept as a conflict
  (``edited_in_two_places``, with the refused values), and the pull brings the winner;
* **a person deleted while another office enrolled a photo of them**: the photo wins -- the person is
  restored with that photo (a missing person's new photo is never dropped silently; the old photos
  stay deleted) (``enrolled_while_deleted``); an *edit* of a deleted person loses (``edit_of_deleted``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..errors import BadArgument, FasFinderError
from ..gallery import Gallery
from ..gallery.stamp import now_iso
from ..operations import CancelToken, Progress
from . import replica
from .apply import Applier
from .connection import ServerConfig, server_error


@dataclass
class SyncReport:
    pushed: int = 0
    pulled_persons: int = 0
    pulled_images: int = 0
    removed_persons: int = 0
    conflicts: list[dict] = field(default_factory=list)
    cursor: str = "0"
    last_sync: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Sync:
    def __init__(self, gallery: Gallery, config: ServerConfig, *, default_case: str | None = None,
                 batch: int = 200, progress: Progress | None = None, cancel: CancelToken | None = None):
        self.gallery = gallery
        self.config = config
        self.default_case = default_case
        self.batch = int(batch)
        self.progress = progress or (lambda done, total, msg: None)
        self.cancel = cancel or CancelToken()
        self.report = SyncReport()

    def run(self) -> SyncReport:
        import psycopg

        replica.attach(self.gallery)
        pg = self.config.connect()
        try:
            self.push(pg)
            self.pull(pg)
        except psycopg.Error as exc:
            raise server_error(exc, "sync") from exc
        finally:
            try:
                pg.close()
            except psycopg.Error:  # the server went away: nothing to close
                pass
        self.gallery.flush()
        return self.report

    # -- push --------------------------------------------------------------------------------
    def push(self, pg) -> None:
        with self.gallery.snapshot() as conn:
            total = conn.execute("SELECT COUNT(*) FROM sync_outbox").fetchone()[0]
        done = 0
        while True:
            self.cancel.check()
            with self.gallery.snapshot() as conn:
                rows = [dict(r) for r in conn.execute("SELECT * FROM sync_outbox ORDER BY seq LIMIT ?", (self.batch,))]
            decisions = self._pending_decisions()
            if not rows and not decisions:
                return
            self._adopted: dict[str, str] = {}
            follow: list[tuple] = []
            with pg.transaction():
                for r in rows:
                    with self.gallery.snapshot() as conn:
                        follow.extend(getattr(self, f"_push_{r['kind']}")(pg, conn, r))
                for d in decisions:
                    pg.execute("INSERT INTO fasfinder.decisions(uuid, case_id, person_uuid, query_sha256, face_uuid, "
                               "verdict, note) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (uuid) DO NOTHING",
                               (d["uuid"], d["case_id"], d["person_uuid"], d["query_sha256"], d["face_uuid"],
                                d["verdict"], d["note"]))
            with self.gallery.transaction() as conn:
                replica.set_state(conn, "applying", "1")
                at = now_iso()
                for item in follow:
                    if item[0] == "person":
                        _, local_id, uuid, version, case_id = item
                        conn.execute("UPDATE sync_person SET uuid = ?, version = ? WHERE local_id = ?",
                                     (uuid, version, local_id))
                        if case_id is not None:
                            conn.execute("UPDATE persons SET case_id = ? WHERE id = ? AND case_id IS NULL",
                                         (case_id, local_id))
                    else:
                        replica.conflict(conn, item[1], item[2], at)
                        self.report.conflicts.append({"rule": item[1], **item[2]})
                conn.executemany("DELETE FROM sync_outbox WHERE seq = ?", [(r["seq"],) for r in rows])
                conn.executemany("UPDATE sync_decisions SET pushed = 1 WHERE uuid = ?", [(d["uuid"],) for d in decisions])
                self.gallery.audit("sync.push", {"entries": len(rows), "decisions": len(decisions),
                                                 "server": self.config.describe()})
                replica.set_state(conn, "applying", "0")
            done += len(rows)
            self.report.pushed += len(rows) + len(decisions)
            self.progress(min(done, total), max(total, done), "push")

    def _pending_decisions(self) -> list[dict]:
        with self.gallery.snapshot() as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM sync_decisions WHERE pushed = 0 LIMIT ?",
                                                  (self.batch,))]

    def _uuid(self, uuid: str) -> str:
        return self._adopted.get(uuid, uuid)

    def _push_person(self, pg, conn, r) -> list[tuple]:
        if r["op"] == "del":
            if r["key"]:
                pg.execute("UPDATE fasfinder.persons SET deleted = true, version = version + 1, edit_id = %s, "
                           "updated_at = now(), updated_by = session_user WHERE uuid = %s AND NOT deleted",
                           (r["op_id"], self._uuid(r["key"])))
                pg.execute("UPDATE fasfinder.images SET deleted = true WHERE person_uuid = %s AND NOT deleted",
                           (self._uuid(r["key"]),))
            return []
        local = conn.execute("SELECT p.*, s.uuid, s.version AS base FROM persons p JOIN sync_person s "
                             "ON s.local_id = p.id WHERE p.id = ?", (r["local_id"],)).fetchone()
        if local is None:
            return []  # deleted since: its 'del' entry follows
        case_id = local["case_id"] or self.default_case
        if not case_id:
            raise BadArgument(f"person {local['label']!r} has no case id: set one, or sync with --case CASE")
        set_case = case_id if local["case_id"] is None else None
        meta = json.dumps(json.loads(local["metadata"]), sort_keys=True)
        srv = pg.execute("SELECT version, edit_id, deleted FROM fasfinder.persons WHERE uuid = %s FOR UPDATE",
                         (local["uuid"],)).fetchone()
        if srv is None:
            other = pg.execute("SELECT uuid, version, deleted FROM fasfinder.persons WHERE case_id = %s AND label = %s "
                               "FOR UPDATE", (case_id, local["label"])).fetchone()
            if other is None:
                pg.execute("INSERT INTO fasfinder.persons(uuid, case_id, label, metadata, edit_id) "
                           "VALUES (%s, %s, %s, %s::jsonb, %s)", (local["uuid"], case_id, local["label"], meta, r["op_id"]))
                return [("person", local["id"], local["uuid"], 1, set_case)]
            uuid, version, deleted = other
            self._adopted[local["uuid"]] = uuid
            out = [("conflict", "same_person_merged", {"label": local["label"], "case_id": case_id, "uuid": uuid})]
            if deleted:
                version = pg.execute("UPDATE fasfinder.persons SET deleted = false, version = version + 1 "
                                     "WHERE uuid = %s RETURNING version", (uuid,)).fetchone()[0]
            return [("person", local["id"], uuid, version, set_case), *out]
        version, edit_id, deleted = srv
        if r["op"] == "ins" or edit_id == r["op_id"]:
            return [("person", local["id"], local["uuid"], version, set_case)]
        if deleted:
            return [("conflict", "edit_of_deleted", {"uuid": local["uuid"], "label": local["label"]})]
        if version != local["base"]:
            return [("conflict", "edited_in_two_places", {"uuid": local["uuid"], "refused_label": local["label"],
                                                          "refused_metadata": json.loads(meta), "base": local["base"],
                                                          "server_version": version})]
        version = pg.execute("UPDATE fasfinder.persons SET label = %s, case_id = %s, metadata = %s::jsonb, "
                             "version = version + 1, edit_id = %s, updated_at = now(), updated_by = session_user "
                             "WHERE uuid = %s RETURNING version",
                             (local["label"], case_id, meta, r["op_id"], local["uuid"])).fetchone()[0]
        for table, key in (("images", "person_uuid"),):
            pg.execute(f"UPDATE fasfinder.{table} SET case_id = %s WHERE {key} = %s AND case_id <> %s",
                       (case_id, local["uuid"], case_id))
        return [("person", local["id"], local["uuid"], version, set_case)]

    def _push_image(self, pg, conn, r) -> list[tuple]:
        sha = r["key"]
        if r["op"] == "del":
            pg.execute("UPDATE fasfinder.images SET deleted = true WHERE sha256 = %s AND NOT deleted", (sha,))
            return []
        img = conn.execute("SELECT i.*, s.uuid AS person_uuid FROM images i JOIN sync_person s "
                           "ON s.local_id = i.person_id WHERE i.id = ?", (r["local_id"],)).fetchone()
        if img is None:
            return []
        puuid = self._uuid(img["person_uuid"])
        person = pg.execute("SELECT deleted, case_id FROM fasfinder.persons WHERE uuid = %s FOR UPDATE",
                            (puuid,)).fetchone()
        if person is None:
            raise FasFinderError(f"image {sha[:12]}: its person is not on the server", code="server_error")
        out = []
        deleted, case_id = person
        if deleted:
            pg.execute("UPDATE fasfinder.persons SET deleted = false, version = version + 1 WHERE uuid = %s", (puuid,))
            out.append(("conflict", "enrolled_while_deleted", {"person_uuid": puuid, "sha256": sha}))
        srv = pg.execute("SELECT person_uuid, deleted FROM fasfinder.images WHERE sha256 = %s FOR UPDATE",
                         (sha,)).fetchone()
        faces = conn.execute("SELECT f.*, s.uuid FROM faces f JOIN sync_face s ON s.local_id = f.id "
                             "WHERE f.image_id = ? ORDER BY f.id", (img["id"],)).fetchall()
        if srv is not None and not srv[1]:
            if srv[0] != puuid:
                return out + [("conflict", "same_photo_enrolled_twice", {"sha256": sha, "kept_person": srv[0],
                                                                         "refused_person": puuid})]
            if r["op"] == "ins":
                return out  # already there (pushed before a crash, or the same person from another office)
        if srv is None:
            pg.execute("INSERT INTO fasfinder.images(sha256, person_uuid, case_id, path, width, height, provenance, "
                       "liveness) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)",
                       (sha, puuid, case_id, img["path"], img["width"], img["height"], img["provenance"], img["liveness"]))
        else:
            pg.execute("UPDATE fasfinder.images SET deleted = false, person_uuid = %s, case_id = %s WHERE sha256 = %s",
                       (puuid, case_id, sha))
            pg.execute("UPDATE fasfinder.faces SET deleted = true WHERE image_sha256 = %s AND NOT (uuid = ANY(%s))",
                       (sha, [f["uuid"] for f in faces]))
        self._insert_faces(pg, conn, sha, case_id, faces)
        return out

    @staticmethod
    def _insert_faces(pg, conn, sha: str, case_id: str, faces) -> None:
        with pg.cursor() as cur:
            cur.executemany("INSERT INTO fasfinder.faces(uuid, image_sha256, case_id, box, landmarks, detector, score, "
                            "crop, crop_box) VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb) "
                            "ON CONFLICT (uuid) DO NOTHING",
                            [(f["uuid"], sha, case_id, f["box"], f["landmarks"], f["detector"], f["score"], f["crop"],
                              f["crop_box"]) for f in faces])
            emb = []
            for f in faces:
                for e in conn.execute("SELECT engine, vector FROM embeddings WHERE face_id = ?", (f["id"],)):
                    emb.append((f["uuid"], e["engine"], case_id, e["vector"]))
            cur.executemany("INSERT INTO fasfinder.embeddings(face_uuid, engine, case_id, vector) VALUES (%s, %s, %s, %s) "
                            "ON CONFLICT DO NOTHING", emb)

    # -- pull --------------------------------------------------------------------------------
    def pull(self, pg) -> None:
        import psycopg

        with self.gallery.snapshot() as conn:
            cursor = replica.state(conn, "cursor", "0")
        pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        pg.read_only = True
        applier = Applier(self.gallery, self.report)
        with pg.transaction():
            new_cursor = pg.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()[0]
            applier.persons(pg, cursor, self.batch * 5, self.cancel, self.progress)
            applier.images(pg, cursor, self.batch, self.cancel, self.progress)
            applier.decisions(pg, cursor)
            applier.reconcile(pg)
        with self.gallery.transaction() as conn:
            replica.set_state(conn, "cursor", new_cursor)
            replica.set_state(conn, "last_sync", now_iso())
            replica.set_state(conn, "server", self.config.describe())
            self.gallery.audit("sync.pull", {"cursor": new_cursor, "persons": self.report.pulled_persons,
                                             "images": self.report.pulled_images, "server": self.config.describe()})
        self.report.cursor = new_cursor
        self.report.last_sync = now_iso()
