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

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FasFinderError, GalleryError, LivenessUnavailable, NoFace, check_label, input_error
from .faces import Face, too_small_for_detection
from .imaging import LoadedImage
from .liveness.verdict import judge_liveness
from .results import EnrollResult


#: Photos per enrollment batch (the networks' batches are larger: every face of every photo).
ENROLL_BATCH = 16


@dataclass
class _Pending:
    """One file of a batch between the steps (``image`` None once it failed)."""

    path: Path
    res: EnrollResult
    image: LoadedImage | None = None
    chosen: list[Face] = field(default_factory=list)
    found: int = 0
    live: list[dict] | None = None


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

    def _enroll_prepare(self, p: Path, label, label_from, refuse_unavailable: str | None) -> _Pending:
        """Label, decode, duplicate check, detection of one file (runs on a worker thread)."""

        item = _Pending(path=p, res=EnrollResult(path=str(p), label=None, record_id=None, faces=0))
        res = item.res
        try:
            res.label = check_label(label or label_for(p, label_from))
            if refuse_unavailable:
                raise LivenessUnavailable(f"{p}: {refuse_unavailable}")
            image = self.load(p)
            existing = self.gallery.has_image(image.sha256)
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

    def _enroll_submit(self, pool: ThreadPoolExecutor, paths: list[Path], label, label_from) -> list[Future]:
        refuse = None
        if self.settings.refuse_spoof and self.liveness_model() is None:
            refuse = (f"refusing spoofs is on but the liveness check is unavailable ({self.liveness_unavailable}); "
                      "nothing enrolled")
        return [pool.submit(self._enroll_prepare, Path(p), label, label_from, refuse) for p in paths]

    def _enroll_finish(self, items: list[_Pending], case_id, metadata) -> list[EnrollResult]:
        """Liveness and embeddings of the prepared files in shared batches, then one write per file."""

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
        if model is not None and todo:
            verdicts = each(lambda its: predict_many(model, [(it.image.pixels, it.chosen) for it in its]), todo)
            for it, vs in zip(todo, verdicts):
                if vs is not None:
                    self._judge_liveness(it, vs)
        todo = [it for it in items if it.image is not None]
        if todo:
            engine, flip = self.engine, self.settings.flip
            embs = each(lambda its: engine.embed_faces_many([(it.image.pixels, it.chosen) for it in its], flip=flip), todo)
            for it, emb in zip(todo, embs):
                if emb is not None:
                    self._enroll_write(it, emb, case_id, metadata)
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
        """Yield each batch's results in input order; the next batch is prepared while this one runs."""

        batches = [files[i : i + ENROLL_BATCH] for i in range(0, len(files), ENROLL_BATCH)]
        if not batches:
            return
        with ThreadPoolExecutor(max_workers=enroll_workers(), thread_name_prefix="fasfinder-enroll") as pool:
            ahead = self._enroll_submit(pool, batches[0], label, label_from)
            for k in range(len(batches)):
                items = [f.result() for f in ahead]
                if cancel is not None and cancel.cancelled:
                    return
                ahead = self._enroll_submit(pool, batches[k + 1], label, label_from) if k + 1 < len(batches) else []
                yield self._enroll_finish(items, case_id, metadata)
