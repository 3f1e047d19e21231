"""The one API both front ends (CLI and desktop app) use.

:class:`FasFinder` ties image loading, face analysis, engines, liveness, explanations and the
gallery together and returns the plain result objects of :mod:`fasfinder.results`. Every method a
front end may call is an :func:`~fasfinder.operations.operation`; :data:`OPERATIONS` is the one
explicit list of them, which :mod:`fasfinder.host` forwards by name to a helper process. Long
operations take a ``progress(done, total, message)`` callback and a :class:`CancelToken`.

The operations are grouped by concept: queries and enrollment here, explanations and severity
curves in :mod:`fasfinder.service_explain`, gallery upkeep (persons, history, audit, archives) in
:mod:`fasfinder.service_gallery`. Results refer to query images by sha256 and faces by index: the
service keeps the last queries' decoded images (:class:`RecentQueries`), so no pixels travel back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from collections.abc import Iterable, Iterator

import numpy as np

from .engines import DEFAULT_ENGINE, describe, engine_names, get_engine
from .errors import BadArgument, FasFinderError, InternalError, ModelError, NoFace, input_error
from .faces import DetectorSettings, Face, FaceAnalyzer, too_small_for_detection
from .compute import compute_pool, torch_threads
from .gallery import Gallery
from .identify import IdentModel, person_matches
from .import_plan import IMAGE_SUFFIXES, expand_inputs
from .imaging import LoadedImage, from_array, load_image, thumbnail
from .liveness.registry import start_predict as start_liveness
from .operations import CancelToken, Progress, operation, operation_table
from .perturb import SWEEPS
from .quality import face_quality
from .regions import REGION_NAMES  # the 10 landmark regions of every region-importance dict, in display order
from .results import EngineInfo, EnrollResult, FaceResult, Match, QueryResult, ServiceInfo
from .service_enroll import EnrollPipeline, label_for
from .service_explain import ExplainOperations
from .service_gallery import GalleryOperations
from .service_server import ServerOperations
from .service_video import VideoOperations
from .video.decode import VIDEO_SUFFIXES
from .settings import Settings
from .severity import IDENTITY

log = logging.getLogger("fasfinder")

THUMB_SIDE = 96

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "CancelToken", "FasFinder", "OPERATIONS", "Progress", "REGION_NAMES", "SEVERITY_SWEEPS",
           "expand_inputs", "label_for"]


#: The environment variable holding the gallery key (see :class:`FasFinder`).
GALLERY_KEY_ENV = "FASFINDER_GALLERY_KEY"


class RecentQueries:
    """The decoded images and faces of the last queries, by sha256 (what explanations work on)."""

    def __init__(self, size: int = 8):
        self.size = size
        self._items: OrderedDict[str, tuple[LoadedImage, list[Face]]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, image: LoadedImage, faces: list[Face]) -> None:
        with self._lock:
            self._items[image.sha256] = (image, faces)
            self._items.move_to_end(image.sha256)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, sha256: str) -> tuple[LoadedImage, list[Face]] | None:
        with self._lock:
            item = self._items.get(sha256)
            if item is not None:
                self._items.move_to_end(sha256)
            return item


class FasFinder(EnrollPipeline, ExplainOperations, GalleryOperations, ServerOperations, VideoOperations):
    """Service facade. Thread-safe: the GUI calls it from worker threads."""

    def __init__(self, gallery: str | os.PathLike | None = None, *, settings: Settings | None = None,
                 engine: str | None = None, key: str | None = None):
        """``key``: the passphrase of an encrypted gallery; None: ``$FASFINDER_GALLERY_KEY`` when set
        (never a setting: the key is not written anywhere). Without one the gallery is plain."""

        self.settings = settings or Settings()
        self.gallery_key = key if key is not None else (os.environ.get(GALLERY_KEY_ENV) or None)
        if engine:
            self.settings.engine = engine
        self.gallery_path = Path(gallery or self.settings.gallery)
        self._gallery: Gallery | None = None
        self._gallery_lock = threading.Lock()
        self.analyzer = FaceAnalyzer(DetectorSettings(detector=self.settings.detector, upsample=self.settings.upsample))
        self._liveness = None
        self._liveness_error: str | None = None
        self._liveness_lock = threading.Lock()
        self.recent = RecentQueries()

    # -- components ----------------------------------------------------------------------
    @property
    def gallery(self) -> Gallery:
        with self._gallery_lock:
            if self._gallery is None:
                self._gallery = Gallery(self.gallery_path, history_days=self.settings.history_days,
                                        trash_days=self.settings.trash_days, key=self.gallery_key)
            return self._gallery

    @property
    def engine(self):
        return get_engine(self.settings.engine)

    def close(self) -> None:
        self._close_enroll_processes()
        with self._gallery_lock:
            if self._gallery is not None:
                self._gallery.close()
                self._gallery = None

    def liveness_model(self):
        """The installed FAS model, or None (with the reason in ``liveness_unavailable``)."""

        if not self.settings.liveness:
            return None
        with self._liveness_lock:
            if self._liveness is None and self._liveness_error is None:
                try:
                    from .liveness import DEFAULT_MODEL, load_liveness_model

                    self._liveness = load_liveness_model(self.settings.liveness_model or DEFAULT_MODEL)
                except ModelError as exc:
                    self._liveness_error = str(exc) or type(exc).__name__
                    log.warning("liveness check unavailable: %s", self._liveness_error)
                except Exception as exc:  # an untyped load failure: the check is unavailable, nothing half-set
                    self._liveness = None
                    self._liveness_error = f"{type(exc).__name__}: {exc}"
                    log.warning("liveness check unavailable: %s", self._liveness_error)
                    log.debug("liveness model failed to load", exc_info=True)
            return self._liveness

    @property
    def liveness_unavailable(self) -> str | None:
        self.liveness_model()
        return self._liveness_error if self.settings.liveness else "liveness check switched off in the settings"

    @operation
    def info(self) -> ServiceInfo:
        """The active engine, the gallery file and its counts, and why liveness is off (or None)."""

        return ServiceInfo(engine=self.settings.engine, gallery=str(self.gallery_path), counts=self.gallery.counts(),
                           liveness_unavailable=self.liveness_unavailable)

    @operation
    def engines(self, details: bool = False) -> list[EngineInfo]:
        """The installed engines; with ``details`` each one is loaded and reports its card (dim, files, ...)."""

        out = []
        for name in engine_names():
            info = EngineInfo(name=name, description=describe(name), default=name == DEFAULT_ENGINE)
            if details:
                try:
                    engine = get_engine(name)
                    engine.verify()  # the weights themselves, against their sha256, not only the card
                    info.details = engine.info()
                except FasFinderError as exc:
                    info.error = exc.to_dict()
                except Exception as exc:
                    log.debug("engine %s failed", name, exc_info=True)
                    info.error = InternalError.wrap(exc, name).to_dict()
            out.append(info)
        return out

    @operation
    def warm_up(self) -> bool:
        """Load the engine and the liveness model now, not on the first query."""

        self.engine  # noqa: B018
        self.liveness_model()
        return True

    @operation
    def thumbnails(self, paths: list[str], side: int = THUMB_SIDE) -> list[np.ndarray | None]:
        """Small RGB previews of image files (None for a file that cannot be read)."""

        out: list[np.ndarray | None] = []
        for p in paths:
            try:
                out.append(thumbnail(self.load(p).pixels, side))
            except FasFinderError:
                out.append(None)
            except Exception as exc:  # a preview never stops the others
                input_error(exc, str(p))  # logged; the thumbnail is left out
                out.append(None)
        return out

    # -- building blocks -----------------------------------------------------------------
    def load(self, source) -> LoadedImage:
        if isinstance(source, LoadedImage):
            return source
        if isinstance(source, np.ndarray):
            return from_array(source)
        return load_image(source, max_pixels=self.settings.max_pixels)

    def detect(self, image: LoadedImage, on_boxes=None) -> list[Face]:
        return self.analyzer.detect(image.pixels, on_boxes=on_boxes)

    def embed(self, image: LoadedImage, faces: list[Face]) -> np.ndarray:
        return self.engine.embed_faces(image.pixels, faces, flip=self.settings.flip)

    # -- queries -------------------------------------------------------------------------
    @operation
    def analyze(self, source, *, top_k: int | None = None, with_matches: bool = True,
                record: bool = True, by: str = "person", case_ids: list[str] | None = None) -> QueryResult:
        """Detect every face, check liveness and quality, embed and (optionally) search the gallery.

        ``by="person"`` (default): the top-K persons with the open-set decision and the identification
        confidence (fasfinder.identify); ``by="photo"``: the top-K photos with the pairwise confidence.
        ``case_ids``: search only the persons of these cases. A person rejected for a face of the same
        photo (same sha256) in an earlier recorded query is not proposed again: it is left out of the
        candidates and listed in ``FaceResult.rejected``. Never raises for a bad input: the error goes
        into ``QueryResult.error``.
        """

        if by not in ("person", "photo"):
            raise BadArgument(f"by must be 'person' or 'photo', not {by!r}")
        name = str(source) if not isinstance(source, (np.ndarray, LoadedImage)) else getattr(source, "source", "<array>")
        result = QueryResult(query=name, engine=self.settings.engine if with_matches else None)
        t = result.timings_ms
        start = time.perf_counter()
        try:
            t0 = time.perf_counter()
            image = self.load(source)
            t["decode"] = (time.perf_counter() - t0) * 1e3
            result.sha256, result.size, result.pixels = image.sha256, (image.width, image.height), image.pixels
            # liveness runs on the compute threads beside landmarks (when the model reads only the boxes),
            # quality, embedding and search (fasfinder.compute)
            model = self.liveness_model()
            early = model is not None and not getattr(model, "needs_landmarks", True) and compute_pool().workers > 0
            started = []
            t0 = time.perf_counter()
            faces = self.detect(image, on_boxes=(lambda boxes: started.append(start_liveness(model, image.pixels, boxes)))
                                if early else None)
            t["detect_landmarks"] = (time.perf_counter() - t0) * 1e3
            if not faces:
                raise NoFace(f"{name}: {_no_face_reason(image)}")
            live = started[0] if started else start_liveness(model, image.pixels, faces) if model is not None else None
            self.recent.put(image, faces)
            with torch_threads(1) if live is not None and live.concurrent else contextlib.nullcontext():
                result.faces = [FaceResult(index=i, face=f, quality=face_quality(image.pixels, f))
                                for i, f in enumerate(faces)]
                if with_matches:
                    self._match(result, image, faces, top_k or self.settings.top_k, by, case_ids)
            if live is not None:
                t0 = time.perf_counter()
                for fr, lv in zip(result.faces, live.result()):
                    fr.liveness = lv
                t["liveness_wait"] = (time.perf_counter() - t0) * 1e3
                t["liveness"] = live.span_ms
            if with_matches and record:
                d = result.to_dict()
                d.pop("timings_ms", None)
                if case_ids:
                    d["case_ids"] = list(case_ids)
                result.query_id = self.gallery.record_query(
                    query_path=name, query_sha256=result.sha256, engine=self.settings.engine, results=d)
        except FasFinderError as exc:
            result.error = exc.to_dict()
        except Exception as exc:  # the per-input boundary: one input's failure never stops a batch
            result.error = input_error(exc, name)
        t["total"] = (time.perf_counter() - start) * 1e3
        return result

    def _match(self, result: QueryResult, image: LoadedImage, faces: list[Face], k: int, by: str,
               case_ids: list[str] | None) -> None:
        """Embed the faces and fill each FaceResult's matches (and persons) from the gallery."""

        t = result.timings_ms
        t0 = time.perf_counter()
        emb = self.embed(image, faces)
        t["embed"] = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        hits = self.gallery.search(self.settings.engine, emb, max(50, 10 * k), case_ids=case_ids)
        rejected = self.gallery.rejected_for_photo(image.sha256)
        engine = self.engine
        for fr, e, face_hits in zip(result.faces, emb, hits):
            fr.embedding = e
            face_hits, fr.rejected = _leave_out(face_hits, rejected.get(fr.index, set()))
            if by == "person":
                fr.persons, fr.decision = self._persons(face_hits, k)
            face_hits = face_hits[:k]
            conf = engine.confidence(np.array([h.similarity for h in face_hits])) if face_hits else []
            fr.matches = [
                Match(rank=r + 1, label=h.label, record_id=h.image_id, face_id=h.face_id, person_id=h.person_id,
                      case_id=h.case_id, image=h.image_path, similarity=h.similarity,
                      confidence=None if np.isnan(c) else float(c))
                for r, (h, c) in enumerate(zip(face_hits, conf))
            ]
        t["search"] = (time.perf_counter() - t0) * 1e3

    def _persons(self, hits, k: int):
        """Person list and open-set decision of one face's photo hits (fasfinder.identify)."""

        faces = 0
        if hits:
            try:
                faces = int(self.gallery.index_info(self.settings.engine)["faces"])
            except FasFinderError:
                faces = len(hits)
        model = IdentModel.from_card(self.engine.card())
        return person_matches(hits, k, model, faces, self.settings.open_set_threshold)

    @operation
    def search(self, source, *, top_k: int | None = None, record: bool = True, by: str = "person",
               case_ids: list[str] | None = None) -> QueryResult:
        """Every face of a photo with its liveness verdict, quality and its top-K gallery persons
        (``by="photo"``: photos) with the open-set decision; ``case_ids``: only in these cases."""

        return self.analyze(source, top_k=top_k, with_matches=True, record=record, by=by, case_ids=case_ids)

    @operation
    def liveness(self, source) -> QueryResult:
        """Every face of a photo with its liveness verdict (no gallery search)."""

        result = self.analyze(source, with_matches=False, record=False)
        if result.error is None and self.liveness_model() is None:
            result.error = {"code": "model_missing", "message": f"no liveness model: {self.liveness_unavailable}"}
        return result

    # -- enrollment ----------------------------------------------------------------------
    @operation
    def enroll_one(self, path: str | os.PathLike, *, label: str | None = None, label_from: str = "parent",
                   case_id: str | None = None, metadata: dict | None = None) -> EnrollResult:
        """Enroll one photo (its first face, or every face with ``enroll_all_faces``); never raises for a bad input."""

        (batch,) = self._enroll_batches([Path(path)], label=label, label_from=label_from, case_id=case_id,
                                        metadata=metadata)
        return batch[0]

    def iter_enroll(self, paths: Iterable[str | os.PathLike], *, label: str | None = None,
                    label_from: str = "parent", case_id: str | None = None, metadata: dict | None = None,
                    progress: Progress | None = None, cancel: CancelToken | None = None) -> Iterator[EnrollResult]:
        """Enroll files and folders (each image committed atomically, in order), yielding each result."""

        files = expand_inputs(paths)
        total = len(files)
        done = 0
        try:  # in batches (fasfinder.service_enroll): the networks see every face of a batch at once
            for batch in self._enroll_batches(files, label=label, label_from=label_from, case_id=case_id,
                                              metadata=metadata, cancel=cancel):
                for res in batch:
                    done += 1
                    if progress:
                        progress(done, total, res.path)
                    yield res
        finally:
            if self._gallery is not None:
                self.gallery.flush()

    @operation(progress=True)
    def enroll(self, paths: Iterable[str | os.PathLike], *, label: str | None = None, label_from: str = "parent",
               case_id: str | None = None, metadata: dict | None = None, progress: Progress | None = None,
               cancel: CancelToken | None = None) -> list[EnrollResult]:
        """Enroll files and folders (each image committed atomically); one result per file."""

        return list(self.iter_enroll(paths, label=label, label_from=label_from, case_id=case_id, metadata=metadata,
                                     progress=progress, cancel=cancel))

    @operation(progress=True)
    def seed_demo(self, identities: int | None = None, per_identity: int | None = None, folder: str | None = None,
                  progress: Progress | None = None, cancel: CancelToken | None = None) -> list[EnrollResult]:
        """Enroll the demo persons (the astronaut, and a few LFW people when ../shared/data is present)."""

        from .demo import LFW_IDENTITIES, LFW_PER_IDENTITY, demo_plan

        plan = demo_plan(LFW_IDENTITIES if identities is None else identities,
                         LFW_PER_IDENTITY if per_identity is None else per_identity, Path(folder) if folder else None)
        total = sum(len(files) for _, files in plan)
        results: list[EnrollResult] = []
        for label, files in plan:
            for res in self.iter_enroll(files, label=label, case_id="demo", metadata={"source": "demo"}, cancel=cancel):
                results.append(res)
                if progress:
                    progress(len(results), total, f"{label}: {Path(res.path).name}")
            if cancel is not None and cancel.cancelled:
                break
        return results

    @operation(progress=True)
    def ensure_demo(self, progress: Progress | None = None, cancel: CancelToken | None = None) -> str:
        """Enroll the demo gallery when the gallery holds no photo; the path of a demo photo to search."""

        from .demo import demo_query

        if self.gallery.counts()["images"] == 0:
            self.seed_demo(progress=progress, cancel=cancel)
        return str(demo_query())


def _leave_out(hits, rejected_persons: set[int]):
    """(the hits of persons not rejected, the rejected persons' best hit each as a dict, best first)."""

    if not rejected_persons:
        return hits, []
    kept, left, seen = [], [], set()
    for h in hits:
        if h.person_id not in rejected_persons:
            kept.append(h)
        elif h.person_id not in seen:
            seen.add(h.person_id)
            left.append({"label": h.label, "person_id": h.person_id, "face_id": h.face_id,
                         "similarity": round(float(h.similarity), 4)})
    return kept, left


def _no_face_reason(image: LoadedImage) -> str:
    return too_small_for_detection(image.height, image.width) or "no face found"


#: The one explicit list of operations front ends may call (name -> Operation), forwarded by
#: :mod:`fasfinder.host`; ``tests/test_service_api.py`` checks the UI calls nothing else.
OPERATIONS = operation_table(FasFinder)

#: Perturbation sweeps of the severity curves: kind -> (value of the unperturbed image, *severities).
SEVERITY_SWEEPS: dict[str, tuple[float, ...]] = {k: (IDENTITY[k], *v) for k, v in SWEEPS.items()}
