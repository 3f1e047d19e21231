"""Case decisions: a case worker's confirm / reject / unsure on one candidate of a recorded query, with a note.

Stored in the ``decisions`` table (made at open when missing) beside the recorded query they belong
to; every decision is also an audit row (``decision.record``: who, when, what), so a changed mind is
a new row, never an edit: the newest row per (query, face, candidate) is the current decision.
"""

from __future__ import annotations

from ..errors import BadArgument, NotFoundInGallery
from .audit import AuditLog
from .db import GalleryDB
from .stamp import now_iso

DECISIONS = ("confirm", "reject", "unsure")
MAX_NOTE = 4000


class Decisions:
    def __init__(self, db: GalleryDB, audit: AuditLog):
        self.db = db
        self.audit = audit

    def record(self, query_id: int, face_index: int, face_id: int, decision: str, note: str = "") -> dict:
        if decision not in DECISIONS:
            raise BadArgument(f"unknown decision {decision!r} (use one of {', '.join(DECISIONS)})")
        note = str(note or "")
        if len(note) > MAX_NOTE:
            raise BadArgument(f"the note is {len(note)} characters long, over the limit of {MAX_NOTE}")
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM queries WHERE id = ?", (int(query_id),)).fetchone() is None:
                raise NotFoundInGallery(f"no recorded query with id {query_id}")
            row = {"query_id": int(query_id), "face_index": int(face_index), "face_id": int(face_id),
                   "decision": decision, "note": note, "user": self.audit.user, "at": now_iso()}
            cur = conn.execute("INSERT INTO decisions(query_id, face_index, face_id, decision, note, user, at) "
                               "VALUES (:query_id, :face_index, :face_id, :decision, :note, :user, :at)", row)
            row["id"] = int(cur.lastrowid)
            self.audit.write("decision.record", dict(row))
        return row

    def for_query(self, query_id: int) -> list[dict]:
        """The current decision per (face, candidate) of a query, oldest first (a later row replaces an earlier)."""

        with self.db.lock:
            rows = self.db.conn.execute("SELECT * FROM decisions WHERE query_id = ? ORDER BY id",
                                        (int(query_id),)).fetchall()
        current: dict[tuple[int, int], dict] = {}
        for r in rows:
            current[(r["face_index"], r["face_id"])] = dict(r)
        return sorted(current.values(), key=lambda d: d["id"])

    def rejected_for_photo(self, query_sha256: str | None) -> dict[int, set[int]]:
        """Face index -> ids of the persons whose candidate was rejected (as the current decision) for
        that face in any recorded query of the same photo (same sha256): who is not proposed again.

        The newest decision per (face, person) over all those queries counts, so a later confirm or
        unsure on the same person lifts a reject. Candidates deleted since are left out (no person)."""

        if not query_sha256:
            return {}
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT d.face_index, i.person_id, d.decision FROM decisions d "
                "JOIN queries q ON q.id = d.query_id JOIN faces f ON f.id = d.face_id "
                "JOIN images i ON i.id = f.image_id WHERE q.query_sha256 = ? ORDER BY d.id",
                (str(query_sha256),)).fetchall()
        current: dict[tuple[int, int], str] = {}
        for face_index, person_id, decision in rows:
            current[(int(face_index), int(person_id))] = decision
        out: dict[int, set[int]] = {}
        for (face_index, person_id), decision in current.items():
            if decision == "reject":
                out.setdefault(face_index, set()).add(person_id)
        return out
