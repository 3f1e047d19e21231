"""Service operations that look after the gallery: persons, edits, history, audit, archives.

A mixin of :class:`fasfinder.service.FasFinder` (it needs ``self.gallery``). The front ends reach
the SQLite gallery only through these operations; each one is a thin, typed call of the
:class:`fasfinder.gallery.Gallery` API, so the storage layer keeps its own tests and the service
keeps one list of what a front end may do.
"""

from __future__ import annotations

import os

from .gallery import GalleryRecord
from .operations import operation


class GalleryOperations:
    """Gallery upkeep operations (needs ``self.gallery``)."""

    @operation
    def counts(self) -> dict:
        """How many persons, images and faces the gallery holds (and per engine)."""

        return self.gallery.counts()

    @operation
    def persons(self) -> list[GalleryRecord]:
        """Every person of the gallery with their photos, sorted by label."""

        return self.gallery.persons()

    @operation
    def person(self, person_id: int) -> GalleryRecord:
        """One person with their photos."""

        return self.gallery.person(int(person_id))

    @operation
    def update_person(self, person_id: int, *, label: str | None = None, case_id: str | None = None,
                      metadata: dict | None = None) -> None:
        """Change a person's label, case id or metadata (audited)."""

        self.gallery.update_person(int(person_id), label=label, case_id=case_id, metadata=metadata)

    @operation
    def delete_person(self, person_id: int) -> int:
        """Delete a person with all their photos and faces (audited); how many images went."""

        return self.gallery.delete_person(int(person_id))

    @operation
    def delete_image(self, image_id: int) -> int:
        """Delete one photo and its faces (audited); how many images went (0 or 1)."""

        return self.gallery.delete_image(int(image_id))

    @operation
    def history(self, limit: int = 100) -> list[dict]:
        """The last recorded queries, newest first, with the results shown at the time."""

        return self.gallery.history(limit)

    @operation
    def audit_log(self, limit: int | None = None) -> list[dict]:
        """The append-only audit log, newest first."""

        return self.gallery.audit_log(limit)

    @operation
    def export_archive(self, out_path: str | os.PathLike, *, labels: list[str] | None = None,
                       case_ids: list[str] | None = None) -> dict:
        """Write the gallery (or the persons with these labels / case ids) to one verifiable file."""

        return self.gallery.export(out_path, labels=labels, case_ids=case_ids)

    @operation
    def import_archive(self, in_path: str | os.PathLike) -> dict:
        """Verify an archive and import it in one transaction (all or nothing)."""

        return self.gallery.import_file(in_path)
