"""The enrollment pipeline of :class:`fasfinder.service.FasFinder`: photos in batches.

A mixin. ``enroll_one`` and ``iter_enroll`` hand it a batch of files; each file goes through the
same steps as before (label, decode, duplicate check, detection, liveness, embedding, one atomic
gallery write) and gets its own :class:`~fasfinder.results.EnrollResult`, but the expensive steps
run for the whole batch at once:

* decode + duplicate check + detection + landmarks on ``enroll_workers`` threads (dlib's HOG and
  shape predictors and PIL's decoder release the GIL), prepared for the NEXT batch while the
  networks run on this one;
* liveness of every chosen face of the batch in shared network batches (``predict_many``);
* the embeddings of every chosen face (and its mirror) in shared batches (``embed_faces_many``).

Writes stay one transaction per photo, in input order. One input's failure never stops the
others: a batch step that raises is retried photo by photo, so the error lands on its photo.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FasFinderError, GalleryError, LivenessUnavailable, NoFace, check_label, input_error
from .faces import Face, too_small_for_detection
from .imaging import LoadedImage
from .liveness.verdict import judge_liveness
from .results import EnrollResult


log = logging.getLogger(__name__)

#: Photos per enrollment batch (the networks' batches are larger: every face of every photo).
ENROLL_BATCH = 32


@dataclass
class _Pending:
    """One file of a batch between the steps (``image`` None once it failed)."""

    path: Path
    res: EnrollResult
    image: LoadedImage | None = None
    chosen: list[Face] = field(default_factory=list)
    found: int = 0
    live: list[dict] | None = None
    verdicts: list | None = None  # the liveness model's verdicts of ``chosen``
    emb: object = None  # their embeddings (n x dim)


def label_for(path: Path, label_from: str) -> str:
    if label_from == "stem":
        return path.stem
    if label_from == "parent":
        return path.parent.name or path.stem
    raise GalleryError(f"unknown label source {label_from!r} (use 'parent' or 'stem')", code="bad_argument")


def enroll_workers() -> int:
    """Detection threads of an enrollment batch: one per core (2 on the reference machine)."""

    return max(1, os.cpu_count() or 1)


class EnrollPipeline:
    """Batched enrollment (needs ``self.settings``, ``self.gallery``, ``self.analyzer``, ``self.load``, ...)."""

    _procs = None  # the worker processes (fasfinder.enroll_processes), started by the first large enrollment
    _procs_failed = False  # they could not run here: threads from then on

    def _enroll_prepare(self, p: Path, label, label_from, refuse_unavailable: str | None,
                        check_duplicate: bool = True) -> _Pending:
        """Label, decode, duplicate check, detection of one file (runs on a worker thread or process;
        a worker process has no gallery: ``check_duplicate=False``, the write checks again)."""

        item = _Pending(path=p, res=EnrollResult(path=str(p), label=None, record_id=None, faces=0))
        res = item.res
        try:
            res.label = check_label(label or label_for(p, label_from))
            if refuse_unavailable:
                raise LivenessUnavailable(f"{p}: {refuse_unavailable}")
            image = self.load(p)
            existing = self.gallery.has_image(image.sha256) if check_duplicate else None
            if existing is not None:
                res.record_id = existing
                raise GalleryError(f"{p}: already enrolled (same content) as record {existing}", code="duplicate")
            all_faces = self.settings.enroll_all_faces
            faces = self.analyzer.detect(image.pixels, largest=not all_faces)
            res.faces = item.found = len(faces)
            if not faces:
                raise NoFace(f"{p}: {too_small_for_detection(image.height, image.width) or 'no face found'}")
            item.image, item.chosen = image, (faces if all_faces else faces[:1])
        except FasFinderError as exc:
            res.error = exc.to_dict()
        except Exception as exc:  # the per-input boundary
            res.error = input_error(exc, str(p))
        return item

    def _refuse_reason(self) -> str | None:
        if self.settings.refuse_spoof and self.liveness_model() is None:
            return (f"refusing spoofs is on but the liveness check is unavailable ({self.liveness_unavailable}); "
                    "nothing enrolled")
        return None

    def _enroll_submit(self, pool: ThreadPoolExecutor, paths: list[Path], label, label_from) -> list[Future]:
        refuse = self._refuse_reason()
        return [pool.submit(self._enroll_prepare, Path(p), label, label_from, refuse) for p in paths]

    def _enroll_compute(self, items: list[_Pending], threads: bool = True) -> list[_Pending]:
        """Liveness verdicts and embeddings of the prepared files in shared network batches (``verdicts``,
        ``emb`` of each item; an item whose step failed gets its error and no image). ``threads``: on
        the compute threads (in this process); False: here, one after the other (a worker process)."""

        from .liveness import predict_many

        def each(step, todo):
            """``step(list) -> list`` for all of ``todo``; on an error, photo by photo (the error goes to its photo)."""

            try:
                return step(todo)
            except Exception:  # noqa: BLE001 - find the photo that failed, the others go on
                out = []
                for it in todo:
                    try:
                        out.append(step([it])[0])
                    except FasFinderError as exc:
                        it.res.error, it.image = exc.to_dict(), None
                        out.append(None)
                    except Exception as exc:
                        it.res.error, it.image = input_error(exc, str(it.path)), None
                        out.append(None)
                return out

        todo = [it for it in items if it.image is not None]
        model = self.liveness_model()
        engine, flip = self.engine, self.settings.flip
        pairs = {id(it): (it.image.pixels, it.chosen) for it in todo}  # read before either step can drop an image

        def live_step(its):
            return predict_many(model, [pairs[id(it)] for it in its])

        def embed_step(its):
            return engine.embed_faces_many([pairs[id(it)] for it in its], flip=flip)

        if not threads:
            live = [each(live_step, todo)] if model is not None and todo else None
            embs = each(embed_step, todo) if todo else []
        else:
            # liveness and embeddings at the same time on the compute threads (fasfinder.compute: the
            # pool's workers and this thread, one torch thread each), each network's faces in two
            # halves so that both cores stay busy; a photo that liveness refuses is embedded for
            # nothing and not written
            from .compute import compute_pool

            halves = [todo[: (len(todo) + 1) // 2], todo[(len(todo) + 1) // 2 :]]
            steps = ([live_step] if model is not None and todo else []) + [embed_step]
            parts = [(step, h) for step in steps for h in halves]
            values = compute_pool().map(lambda part: each(*part), parts)
            live = values[:2] if len(steps) == 2 else None
            embs = [e for v in values[-2:] for e in v]
        for it, e in zip(todo, embs):
            it.emb = e
        if live is not None:
            for it, vs in zip(todo, (v for part in live for v in part)):
                it.verdicts = vs
        return items

    def _enroll_finish(self, items: list[_Pending], case_id, metadata) -> list[EnrollResult]:
        """The liveness policy, then one write per file, in input order."""

        for it in items:
            if it.image is not None and it.verdicts is not None:
                self._judge_liveness(it, it.verdicts)
            if it.image is not None and it.emb is not None:
                self._enroll_write(it, it.emb, case_id, metadata)
        return [it.res for it in items]

    def _judge_liveness(self, it: _Pending, verdicts) -> None:
        it.live, error, review = judge_liveness(it.path, verdicts, self.settings.refuse_spoof)
        it.res.liveness = it.live
        if error is not None:  # not written
            it.res.error, it.image = error, None
        elif review is not None:  # enrolled, but a person should look at it
            it.res.review = review

    def _enroll_write(self, it: _Pending, emb, case_id, metadata) -> None:
        p, image, res = it.path, it.image, it.res
        try:
            existing = self.gallery.has_image(image.sha256)  # the same content earlier in this batch
            if existing is not None:
                res.record_id = existing
                raise GalleryError(f"{p}: already enrolled (same content) as record {existing}", code="duplicate")
            res.record_id = self.gallery.add_image(
                label=res.label, path=str(p.resolve()), sha256=image.sha256, width=image.width, height=image.height,
                rgb=image.pixels, faces=it.chosen, embeddings={self.settings.engine: emb}, case_id=case_id,
                metadata=metadata, liveness=it.live,
                provenance={"source": str(p.resolve()), "detector": [f.detector for f in it.chosen],
                            "faces_found": it.found, "engine": self.settings.engine, "flip": self.settings.flip},
            )
        except FasFinderError as exc:
            res.error = exc.to_dict()
        except Exception as exc:  # the per-input boundary
            res.error = input_error(exc, str(p))

    def _enroll_batches(self, files: list, *, label, label_from, case_id, metadata, cancel=None):
        """Yield each batch's results in input order; the next batch is prepared while this one runs
        (on worker processes for large enrollments, :mod:`fasfinder.enroll_processes`)."""

        batches = [files[i : i + ENROLL_BATCH] for i in range(0, len(files), ENROLL_BATCH)]
        if not batches:
            return
        procs = self._enroll_processes(len(files))
        if procs is not None:
            yield from self._enroll_batches_processes(procs, batches, label, label_from, case_id, metadata, cancel)
            return
        with ThreadPoolExecutor(max_workers=enroll_workers(), thread_name_prefix="fasfinder-enroll") as pool:
            ahead = self._enroll_submit(pool, batches[0], label, label_from)
            for k in range(len(batches)):
                items = [f.result() for f in ahead]
                if cancel is not None and cancel.cancelled:
                    return
                ahead = self._enroll_submit(pool, batches[k + 1], label, label_from) if k + 1 < len(batches) else []
                yield self._enroll_finish(self._enroll_compute(items), case_id, metadata)

    def _enroll_processes(self, files: int):
        """The worker processes (started once, kept), or None: a small enrollment, or none allowed."""

        from .enroll_processes import PROCESS_MIN_FILES, EnrollProcesses, process_count

        if files < PROCESS_MIN_FILES:
            return None
        n = process_count()
        procs = self._procs
        if n < 2 or self._procs_failed:
            return None
        if procs is None or procs.processes != n:
            self._close_enroll_processes()
            procs = self._procs = EnrollProcesses(self, n)
        return procs

    def _close_enroll_processes(self) -> None:
        procs, self._procs = self._procs, None
        if procs is not None:
            procs.close()

    def _enroll_batches_processes(self, procs, batches, label, label_from, case_id, metadata, cancel):
        """Two batches in flight on the workers; the checks, the liveness policy and the writes here.
        A chunk whose worker failed (a crashed process) is computed in this process instead."""

        refuse = self._refuse_reason()
        ahead = [procs.submit(b, label, label_from, refuse) for b in batches[:2]]
        for k in range(len(batches)):
            chunks = ahead.pop(0)
            if k + 2 < len(batches):
                ahead.append(procs.submit(batches[k + 2], label, label_from, refuse))
            items = []
            for chunk, fut in chunks:
                try:
                    items += fut.result()
                except Exception as exc:  # noqa: BLE001 - the worker died: this chunk here, the batch goes on
                    if not self._procs_failed:
                        log.warning("enrollment worker process failed (%s; a script that enrolls must guard its code "
                                    "with `if __name__ == \"__main__\":`): enrolling on threads", exc)
                    self._procs_failed = True
                    items += self._enroll_compute([self._enroll_prepare(Path(p), label, label_from, refuse)
                                                   for p in chunk])
            if cancel is not None and cancel.cancelled:
                for chunks_left in ahead:
                    for _, fut in chunks_left:
                        fut.cancel()
                return
            yield self._enroll_finish(items, case_id, metadata)
