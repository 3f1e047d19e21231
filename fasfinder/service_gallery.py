"""Service operations that look after the gallery: persons, edits, history, audit, archives.

A mixin of :class:`fasfinder.service.FasFinder` (it needs ``self.gallery``). The front ends reach
the SQLite gallery only through these operations; each one is a thin, typed call of the
:class:`fasfinder.gallery.Gallery` API, so the storage layer keeps its own tests and the service
keeps one list of what a front end may do.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import BadArgument, GalleryError, NotFoundInGallery, check_label
from .gallery import GalleryRecord, signing
from .import_plan import plan_import
from .report import case_file_report, case_report, what_changed
from .operations import CancelToken, Progress, operation

#: The passphrase of encrypted export archives when no ``archive_key`` is given (else the gallery key).
ARCHIVE_KEY_ENV = "FASFINDER_ARCHIVE_KEY"


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

        if label is not None:
            check_label(label)
        self.gallery.update_person(int(person_id), label=label, case_id=case_id, metadata=metadata)

    @operation
    def delete_person(self, person_id: int) -> int:
        """Delete a person with all their photos and faces into the trash (audited; ``restore``
        undoes it until the ``trash_days`` setting purges it); how many faces went."""

        return self.gallery.delete_person(int(person_id))

    @operation
    def delete_image(self, image_id: int) -> int:
        """Delete one photo and its faces into the trash (audited, restorable); how many faces went."""

        return self.gallery.delete_image(int(image_id))

    @operation
    def trash(self) -> list[dict]:
        """What was deleted or merged away and can be restored, newest first (``id``, ``kind``,
        ``label``, ``what``, ``deleted_at``, ``user``, ``purge_after``)."""

        return self.gallery.trash()

    @operation
    def restore(self, trash_id: int) -> dict:
        """Undo one delete or merge (same ids, faces back in the search; audited). ``restore_conflict``
        when its label or a photo is in the gallery again."""

        return self.gallery.restore(int(trash_id))

    @operation
    def purge_trash(self, trash_id: int | None = None) -> int:
        """Delete one trash entry for good (None: those past ``trash_days``); audited; how many."""

        return self.gallery.purge_trash(None if trash_id is None else int(trash_id))

    @operation
    def merge_persons(self, source_id: int, target_id: int) -> dict:
        """Move every photo of person ``source_id`` to ``target_id``; the source goes (undoable, audited)."""

        return self.gallery.merge_persons(int(source_id), int(target_id))

    @operation
    def add_person(self, label: str, case_id: str | None = None, metadata: dict | None = None) -> int:
        """A new person without photos (name, case id, metadata fields); ``duplicate`` when the label exists."""

        check_label(label)
        if metadata is not None and not isinstance(metadata, dict):
            raise BadArgument("metadata must be a mapping of field names to values")
        return self.gallery.add_person(label.strip(), case_id, metadata)

    @operation
    def cases(self) -> list[dict]:
        """Every case id with its persons (``person_id``, ``label``, ``images``) and its ``images`` and
        ``faces`` counts, by case id; persons without a case id are in none."""

        return self.gallery.cases()

    @operation
    def find_persons(self, text: str) -> list[int]:
        """Ids of the persons whose label, case id or metadata contain every word of ``text`` (as a prefix)."""

        return self.gallery.find_persons(str(text))

    @operation(progress=True)
    def plan_import(self, folder: str | os.PathLike, mode: str = "one", *, label: str | None = None,
                    case_id: str | None = None, metadata: dict | None = None, progress: Progress | None = None,
                    cancel: CancelToken | None = None) -> dict:
        """What importing ``folder`` would create (``one`` person, one per ``subfolders``, or ``unknowns``)
        and which files it would skip, with reasons; nothing is written (see fasfinder/import_plan.py)."""

        existing = [p.label for p in self.gallery.persons()]
        return plan_import(folder, mode, label=label, case_id=case_id, metadata=metadata,
                           max_pixels=self.settings.max_pixels, known=self.gallery.has_image, existing=existing,
                           progress=progress, cancel=cancel)

    @operation(progress=True)
    def import_plan(self, plan: dict, progress: Progress | None = None, cancel: CancelToken | None = None) -> list:
        """Enroll the persons of a :meth:`plan_import` result (each photo committed atomically); one
        ``EnrollResult`` per file."""

        persons = plan.get("persons") if isinstance(plan, dict) else None
        if not isinstance(persons, list):
            raise BadArgument("an import plan holds a list of persons")
        total = sum(len(p.get("files", [])) for p in persons)
        results = []
        for p in persons:
            for res in self.iter_enroll(p["files"], label=check_label(p["label"]), case_id=p.get("case_id"),
                                        metadata=p.get("metadata"), cancel=cancel):
                results.append(res)
                if progress:
                    progress(len(results), total, res.path)
            if cancel is not None and cancel.cancelled:
                break
        return results

    @operation
    def history(self, limit: int = 100) -> list[dict]:
        """The last recorded queries, newest first, with the results shown at the time."""

        return self.gallery.history(limit)

    @operation
    def query_record(self, query_id: int) -> dict:
        """One recorded query as it was shown (candidates, scores, liveness) with its current decisions."""

        return self.gallery.query(int(query_id))

    @operation
    def decide(self, query_id: int, face_index: int, face_id: int, decision: str, note: str = "") -> dict:
        """Confirm / reject / unsure on candidate ``face_id`` of face ``face_index`` of a recorded query,
        with a note; stored with the query (history, reports) and audited (who, when)."""

        return self.gallery.decide(int(query_id), int(face_index), int(face_id), str(decision), str(note or ""))

    def _report_candidates(self, entries: list[dict]) -> dict[int, dict]:
        """sha256, stored crop and path of every recorded candidate of ``entries`` still in the gallery."""

        out = {}
        for entry in entries:
            for face in (entry["results"].get("faces") or []):
                for m in face.get("matches") or []:
                    try:
                        row = self.gallery.face_row(int(m["face_id"]))
                        image = self.gallery.image_row(int(row["image_id"]))
                    except GalleryError:  # deleted since the search: reported from the record alone
                        continue
                    out[int(m["face_id"])] = {"sha256": image["sha256"], "crop": row["crop"], "path": image["path"]}
        return out

    @staticmethod
    def _write_report(text: str, out_path, **extra) -> dict:
        import hashlib

        data = text.encode("utf-8")
        if out_path is not None:
            Path(out_path).write_bytes(data)
        return {"html": text, "path": None if out_path is None else str(out_path),
                "sha256": hashlib.sha256(data).hexdigest(), **extra}

    @operation
    def case_report(self, query_id: int, out_path: str | os.PathLike | None = None) -> dict:
        """The case report of a recorded query as self-contained HTML (fasfinder/report.py): the recorded
        candidates with their crops and photo sha256, liveness, decisions and notes, versions, user and
        times. Written to ``out_path`` when given; returns ``html``, ``path`` and the file's ``sha256``."""

        from .engines import describe
        from .gallery.store import current_user, now_iso

        entry = self.gallery.query(int(query_id))
        text = case_report(entry, candidates=self._report_candidates([entry]), generated_at=now_iso(),
                           user=current_user(), engine_description=describe(entry["engine"]))
        return self._write_report(text, out_path, query_id=int(query_id))

    @operation
    def case_list(self) -> list[dict]:
        """The case list: every case id with ``persons`` (count), ``labels``, ``images``, ``faces``,
        ``queries`` (recorded queries restricted to it or with a candidate of it) and ``last_activity``."""

        return self.gallery.case_list()

    @operation
    def case_file_report(self, case_id: str, out_path: str | os.PathLike | None = None) -> dict:
        """The case file of ``case_id`` as self-contained HTML: the case (persons, photos) and every recorded
        query of it, each as in :meth:`case_report` (candidates, crops, sha256s, liveness, decisions, notes).
        ``not_in_gallery`` for a case id with no person and no query. Returns ``html``, ``path``, ``sha256``,
        ``case_id`` and ``queries`` (the query ids)."""

        from .engines import describe
        from .gallery.store import current_user, now_iso

        case_id = str(case_id).strip()
        case = next((c for c in self.gallery.case_list() if c["case_id"] == case_id), None)
        if case is None:
            raise NotFoundInGallery(f"no case {case_id!r} in the gallery (no person and no recorded query has it)")
        entries = [self.gallery.query(q) for q in self.gallery.case_query_ids(case_id)]
        text = case_file_report(case, entries, candidates=self._report_candidates(entries), generated_at=now_iso(),
                                user=current_user(), engine_descriptions={e["engine"]: describe(e["engine"])
                                                                          for e in entries})
        return self._write_report(text, out_path, case_id=case_id, queries=[e["id"] for e in entries])

    @operation
    def search_again(self, query_id: int) -> dict:
        """Run a recorded query's photo on today's gallery (recorded as a new query) and say what changed
        against the record: ``{"query_id" (the new one), "changes": [text...], "results"}``."""

        entry = self.gallery.query(int(query_id))
        now = self.analyze(entry["query_path"], record=True, case_ids=entry["results"].get("case_ids"))
        if now.sha256 is not None and entry.get("query_sha256") and now.sha256 != entry["query_sha256"]:
            raise GalleryError(f"{entry['query_path']}: the file changed since the search (sha256 differs)",
                               code="query_changed")
        results = now.to_dict()
        changes = what_changed(entry["results"], results) if now.error is None else [now.error.get("message", "")]
        return {"query_id": now.query_id, "changes": changes, "results": results}

    @operation
    def audit_log(self, limit: int | None = None) -> list[dict]:
        """The append-only audit log, newest first."""

        return self.gallery.audit_log(limit)

    @operation
    def audit_verify(self) -> dict:
        """Check the audit log's hash chain: ``ok``, ``rows``, ``first_broken_id`` and ``problem``
        (a row edited or deleted, the last rows included), and the ``head`` hash to note down."""

        return self.gallery.verify_audit()

    @operation
    def export_archive(self, out_path: str | os.PathLike, *, labels: list[str] | None = None,
                       case_ids: list[str] | None = None, archive_key: str | None = None) -> dict:
        """Write the gallery (or the persons with these labels / case ids) to one verifiable file.

        The archive is encrypted (AES-256-GCM, an scrypt key; gallery/envelope.py) with ``archive_key``,
        else ``$FASFINDER_ARCHIVE_KEY``, else -- for an encrypted gallery only -- the gallery key; a
        plain gallery without an archive key exports plain. The result's ``encrypted`` says which.
        """

        key = archive_key or os.environ.get(ARCHIVE_KEY_ENV) or (self.gallery_key if self.gallery.encrypted else None)
        return self.gallery.export(out_path, labels=labels, case_ids=case_ids, passphrase=key)

    @operation
    def import_archive(self, in_path: str | os.PathLike, allow_unsigned: bool = False,
                       archive_key: str | None = None) -> dict:
        """Verify an archive and import it in one transaction (all or nothing).

        An encrypted archive is decrypted (in memory) with ``archive_key``, else
        ``$FASFINDER_ARCHIVE_KEY``, else the gallery key: errors ``archive_locked`` (no key),
        ``archive_wrong_key`` (wrong passphrase or a changed byte), ``bad_archive``. The archive must
        carry a valid signature of this office or of a trusted office (errors
        ``unsigned_archive``, ``untrusted_signer``, ``bad_signature``). ``allow_unsigned=True``
        imports an unsigned or untrusted-signer archive anyway and records that in the audit row
        (``details.signature``); a bad signature is always refused. The result's ``signature``
        says what was found, ``encrypted`` whether the file was.
        """

        key = archive_key or os.environ.get(ARCHIVE_KEY_ENV) or self.gallery_key
        return self.gallery.import_file(in_path, allow_unsigned=bool(allow_unsigned), passphrase=key)

    @operation
    def encrypt_gallery(self) -> dict:
        """Encrypt this (plain) gallery in place with the service's key (``FASFINDER_GALLERY_KEY`` or a key file).

        SQLCipher copies the database (``sqlcipher_export``), the copy is verified row for row, the
        index files are encrypted (AES-GCM), and the encrypted gallery is opened with the key and its
        counts, indexes and audit chain checked before the plain backup is deleted; on any failure the
        original stays in place. Audited (``gallery.encrypted``). Errors: ``bad_argument`` (no key),
        ``already_encrypted``, ``encrypt_failed``. Returns the counts, engines and checks done.
        """

        from .gallery.migrate_encrypt import encrypt_gallery

        self.close()  # the plain connection must be gone before the file is swapped
        return encrypt_gallery(self.gallery_path, self.gallery_key)

    # -- signing keys (one Ed25519 key pair per office; see fasfinder/gallery/signing.py) --------
    @operation
    def keys_init(self, name: str | None = None) -> dict:
        """Create this office's signing key when missing (never replaces it); ``name`` sets the office name.

        Returns the own key: name, fingerprint, the one-line public key to give other offices,
        ``created`` and the private key's path (owner-only file in the config dir).
        """

        return signing.init(name)

    @operation
    def keys_trust(self, public_key: str, name: str | None = None) -> dict:
        """Trust another office's public key (its ``fasfinder-ed25519 ...`` line, or a file holding it).

        Check the returned fingerprint with that office over a second channel before relying on it.
        """

        text = str(public_key)
        if not text.lstrip().startswith(signing.PUBLIC_PREFIX):
            try:
                text = Path(text).read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise BadArgument(f"{public_key}: cannot read the public key file ({exc})") from exc
        return signing.trust(text, name)

    @operation
    def keys_untrust(self, who: str) -> int:
        """Stop trusting the keys with this name or fingerprint; how many were removed."""

        return signing.untrust(who)

    @operation
    def keys_list(self) -> list[dict]:
        """The own signing key (when created) and every trusted office key, with fingerprints."""

        return signing.list_keys()
