"""Case ids as first-class: the list of cases with their persons and counts, and the faces of some
cases (what a search restricted to cases compares against).

A case id is the ``persons.case_id`` column (one case per person; a person without one is in no
case). The column has an index (made at open by sqlite-utils, db.py), so both lookups stay cheap.
"""

from __future__ import annotations

import json

import numpy as np

from ..errors import BadArgument
from .db import GalleryDB


def check_case_ids(case_ids) -> list[str]:
    """The case ids as a list of non-empty strings (BadArgument otherwise)."""

    if isinstance(case_ids, str):
        case_ids = [case_ids]
    out = []
    for c in case_ids or []:
        if not isinstance(c, str) or not c.strip():
            raise BadArgument(f"a case id is a non-empty text, not {c!r}")
        out.append(c.strip())
    return out


def cases(db: GalleryDB) -> list[dict]:
    """Every case id with its persons (id, label, photos) and its photo and face counts, by case id.

    Persons without a case id are not listed (``no_case`` on the list's caller side: see
    :meth:`fasfinder.gallery.Gallery.cases`)."""

    with db.lock:
        rows = db.conn.execute(
            "SELECT p.case_id, p.id, p.label, COUNT(DISTINCT i.id) AS images, COUNT(f.id) AS faces "
            "FROM persons p LEFT JOIN images i ON i.person_id = p.id LEFT JOIN faces f ON f.image_id = i.id "
            "WHERE p.case_id IS NOT NULL AND p.case_id != '' GROUP BY p.id ORDER BY p.case_id, p.label").fetchall()
    out: dict[str, dict] = {}
    for case_id, person_id, label, images, faces in rows:
        c = out.setdefault(case_id, {"case_id": case_id, "persons": [], "images": 0, "faces": 0})
        c["persons"].append({"person_id": int(person_id), "label": label, "images": int(images)})
        c["images"] += int(images)
        c["faces"] += int(faces)
    return list(out.values())


def face_ids_in_cases(db: GalleryDB, engine: str, case_ids: list[str]) -> np.ndarray:
    """Ids of the faces with a ``engine`` embedding whose person is in one of ``case_ids``."""

    if not case_ids:
        return np.zeros(0, np.int64)
    with db.lock:
        rows = db.conn.execute(
            "SELECT f.id FROM faces f JOIN embeddings e ON e.face_id = f.id AND e.engine = ? "
            "JOIN images i ON i.id = f.image_id JOIN persons p ON p.id = i.person_id "
            f"WHERE p.case_id IN ({','.join('?' * len(case_ids))}) ORDER BY f.id", (engine, *case_ids)).fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def query_cases(results: dict, person_case: dict[int, str]) -> set[str]:
    """The cases a recorded query belongs to: those its search was restricted to (``case_ids``) and
    those of its candidates (the case id recorded with a candidate, or its person's case now),
    rejected candidates included."""

    out = {c for c in results.get("case_ids") or [] if c}
    for face in results.get("faces") or []:
        for m in [*(face.get("matches") or []), *(face.get("rejected") or [])]:
            if m.get("case_id"):
                out.add(m["case_id"])
            if m.get("person_id") is not None and int(m["person_id"]) in person_case:
                out.add(person_case[int(m["person_id"])])
    return out


def _queries_by_case(db: GalleryDB) -> tuple[dict[str, list[int]], dict[int, str]]:
    """(case id -> its recorded query ids, oldest first; query id -> its last activity: the newest of
    the search and its decisions)."""

    with db.lock:
        person_case = {int(r[0]): r[1] for r in db.conn.execute(
            "SELECT id, case_id FROM persons WHERE case_id IS NOT NULL AND case_id != ''")}
        rows = db.conn.execute("SELECT id, created_at, results FROM queries ORDER BY id").fetchall()
        decided = dict(db.conn.execute("SELECT query_id, MAX(at) FROM decisions GROUP BY query_id").fetchall())
    by_case: dict[str, list[int]] = {}
    last: dict[int, str] = {}
    for qid, created, results in rows:
        last[int(qid)] = max(created, decided.get(qid) or "")
        for c in query_cases(json.loads(results), person_case):
            by_case.setdefault(c, []).append(int(qid))
    return by_case, last


def case_list(db: GalleryDB) -> list[dict]:
    """The case list: every case id (of a person, or of a recorded query only) with ``persons`` (how
    many), ``labels``, ``images``, ``faces``, ``queries`` (how many recorded queries belong to it, see
    :func:`query_cases`) and ``last_activity`` (the newest person change, photo, query or decision; ISO
    UTC text), by case id."""

    listed = {c["case_id"]: c for c in cases(db)}
    by_case, last = _queries_by_case(db)
    with db.lock:
        edits = dict(db.conn.execute(
            "SELECT p.case_id, MAX(MAX(p.updated_at), COALESCE(MAX(i.created_at), '')) FROM persons p "
            "LEFT JOIN images i ON i.person_id = p.id WHERE p.case_id IS NOT NULL AND p.case_id != '' "
            "GROUP BY p.case_id").fetchall())
    out = []
    for case_id in sorted(set(listed) | set(by_case)):
        c = listed.get(case_id, {"persons": [], "images": 0, "faces": 0})
        qids = by_case.get(case_id, [])
        out.append({"case_id": case_id, "persons": len(c["persons"]), "labels": [p["label"] for p in c["persons"]],
                    "images": c["images"], "faces": c["faces"], "queries": len(qids),
                    "last_activity": max([edits.get(case_id) or "", *(last[q] for q in qids)]) or None})
    return out


def case_query_ids(db: GalleryDB, case_id: str) -> list[int]:
    """The ids of the recorded queries of one case (see :func:`query_cases`), oldest first."""

    return _queries_by_case(db)[0].get(check_case_ids(case_id)[0], [])
