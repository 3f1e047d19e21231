"""Case ids as first-class: the list of cases with their persons and counts, and the faces of some
cases (what a search restricted to cases compares against).

A case id is the ``persons.case_id`` column (one case per person; a person without one is in no
case). The column has an index (made at open by sqlite-utils, db.py), so both lookups stay cheap.
"""

from __future__ import annotations

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
