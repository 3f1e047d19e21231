"""The one API both front ends (CLI and desktop app) use.

:class:`FasFinder` ties image loading, face analysis, engines, liveness, explanations and the
gallery together and returns the plain result objects of :mod:`fasfinder.results`. Long
operations take a ``progress(done, total, message)`` callback and a :class:`CancelToken`, so the
same code drives the CLI's progress output and the GUI's progress bar.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .engines import get_engine
from .errors import Cancelled, FasFinderError, GalleryError, ModelError, NoFace
from .faces import DetectorSettings, Face, FaceAnalyzer
from .gallery import Gallery
from .imaging import LoadedImage, from_array, load_image
from .results import EnrollResult, FaceResult, Match, QueryResult
from .settings import Settings

log = logging.getLogger("fasfinder")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}

Progress = Callable[[int, int, str], None]


class CancelToken:
    """Set from any thread to stop a long operation at its next checkpoint."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def expand_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, plus image files found recursively in folders (sorted)."""

    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


def label_for(path: Path, label_from: str) -> str:
    if label_from == "stem":
        return path.stem
    if label_from == "parent":
        return path.parent.name or path.stem
    raise GalleryError(f"unknown label source {label_from!r} (use 'parent' or 'stem')", code="bad_argument")


class FasFinder:
    """Service facade. Thread-safe: the GUI calls it from worker threads."""

    def __init__(self, gallery: str | os.PathLike | None = None, *, settings: Settings | None = None,
                 engine: str | None = None):
        self.settings = settings or Settings()
        if engine:
            self.settings.engine = engine
        self.gallery_path = Path(gallery or self.settings.gallery)
        self._gallery: Gallery | None = None
        self._gallery_lock = threading.Lock()
        self.analyzer = FaceAnalyzer(DetectorSettings(detector=self.settings.detector, upsample=self.settings.upsample))
        self._liveness = None
        self._liveness_error: str | None = None

    # -- components ----------------------------------------------------------------------
    @property
    def gallery(self) -> Gallery:
        with self._gallery_lock:
            if self._gallery is None:
                self._gallery = Gallery(self.gallery_path)
            return self._gallery

    @property
    def engine(self):
        return get_engine(self.settings.engine)

    def close(self) -> None:
        with self._gallery_lock:
            if self._gallery is not None:
                self._gallery.close()
                self._gallery = None

    def liveness_model(self):
        """The installed FAS model, or None (with the reason in ``liveness_unavailable``)."""

        if not self.settings.liveness:
            return None
        if self._liveness is None and self._liveness_error is None:
            try:
                from .liveness import default_liveness_model

                self._liveness = default_liveness_model()
            except (ImportError, ModelError) as exc:
                self._liveness_error = str(exc) or type(exc).__name__
                log.warning("liveness check unavailable: %s", self._liveness_error)
        return self._liveness

    @property
    def liveness_unavailable(self) -> str | None:
        self.liveness_model()
        return self._liveness_error if self.settings.liveness else "liveness check switched off in the settings"

    # -- building blocks -----------------------------------------------------------------
    def load(self, source) -> LoadedImage:
        if isinstance(source, LoadedImage):
            return source
        if isinstance(source, np.ndarray):
            return from_array(source)
        return load_image(source, max_pixels=self.settings.max_pixels)

    def detect(self, image: LoadedImage) -> list[Face]:
        return self.analyzer.detect(image.pixels)

    def embed(self, image: LoadedImage, faces: list[Face]) -> np.ndarray:
        return self.engine.embed_faces(image.pixels, faces, flip=self.settings.flip)

    # -- queries -------------------------------------------------------------------------
    def analyze(self, source, *, top_k: int | None = None, with_matches: bool = True,
                record: bool = True) -> QueryResult:
        """Detect every face, check liveness, embed and (optionally) search the gallery.

        Never raises for a bad input: the error goes into ``QueryResult.error``.
        """

        name = str(source) if not isinstance(source, (np.ndarray, LoadedImage)) else getattr(source, "source", "<array>")
        result = QueryResult(query=name, engine=self.settings.engine if with_matches else None)
        t = result.timings_ms
        try:
            t0 = time.perf_counter()
            image = self.load(source)
            t["decode"] = (time.perf_counter() - t0) * 1e3
            result.sha256, result.size, result.pixels = image.sha256, (image.width, image.height), image.pixels
            t0 = time.perf_counter()
            faces = self.detect(image)
            t["detect_landmarks"] = (time.perf_counter() - t0) * 1e3
            if not faces:
                raise NoFace(f"{name}: no face found")
            result.faces = [FaceResult(index=i, face=f) for i, f in enumerate(faces)]
            model = self.liveness_model()
            if model is not None:
                t0 = time.perf_counter()
                for fr, lv in zip(result.faces, model.predict(image.pixels, faces)):
                    fr.liveness = lv
                t["liveness"] = (time.perf_counter() - t0) * 1e3
            if with_matches:
                t0 = time.perf_counter()
                emb = self.embed(image, faces)
                t["embed"] = (time.perf_counter() - t0) * 1e3
                t0 = time.perf_counter()
                hits = self.gallery.search(self.settings.engine, emb, top_k or self.settings.top_k)
                engine = self.engine
                for fr, e, face_hits in zip(result.faces, emb, hits):
                    fr.embedding = e
                    conf = engine.confidence(np.array([h.similarity for h in face_hits])) if face_hits else []
                    fr.matches = [
                        Match(rank=r + 1, label=h.label, record_id=h.image_id, face_id=h.face_id, person_id=h.person_id,
                              case_id=h.case_id, image=h.image_path, similarity=h.similarity,
                              confidence=None if np.isnan(c) else float(c))
                        for r, (h, c) in enumerate(zip(face_hits, conf))
                    ]
                t["search"] = (time.perf_counter() - t0) * 1e3
                if record:
                    d = result.to_dict()
                    d.pop("timings_ms", None)
                    result.query_id = self.gallery.record_query(
                        query_path=name, query_sha256=result.sha256, engine=self.settings.engine, results=d)
        except FasFinderError as exc:
            result.error = exc.to_dict()
        return result

    def search(self, source, *, top_k: int | None = None) -> QueryResult:
        return self.analyze(source, top_k=top_k, with_matches=True)

    def liveness(self, source) -> QueryResult:
        result = self.analyze(source, with_matches=False, record=False)
        if result.error is None and self.liveness_model() is None:
            result.error = {"code": "model_missing", "message": f"no liveness model: {self.liveness_unavailable}"}
        return result

    # -- enrollment ----------------------------------------------------------------------
    def enroll_one(self, path: str | os.PathLike, *, label: str | None = None, label_from: str = "parent",
                   case_id: str | None = None, metadata: dict | None = None) -> EnrollResult:
        p = Path(path)
        res = EnrollResult(path=str(p), label=None, record_id=None, faces=0)
        try:
            res.label = label or label_for(p, label_from)
            image = self.load(p)
            existing = self.gallery.has_image(image.sha256)
            if existing is not None:
                res.record_id = existing
                raise GalleryError(f"{p}: already enrolled (same content) as record {existing}", code="duplicate")
            faces = self.detect(image)
            res.faces = len(faces)
            if not faces:
                raise NoFace(f"{p}: no face found")
            chosen = faces if self.settings.enroll_all_faces else faces[:1]
            live = None
            model = self.liveness_model()
            if model is not None:
                verdicts = model.predict(image.pixels, chosen)
                live = [v.to_dict() for v in verdicts]
                res.liveness = live
                if self.settings.refuse_spoof and any(v.label == "spoof" for v in verdicts):
                    raise FasFinderError(f"{p}: the face looks like a photo of a photo or screen (liveness "
                                         f"{verdicts[0].score:.2f}); enrollment of spoofed photos is switched off",
                                         code="spoof_rejected")
            emb = self.embed(image, chosen)
            res.record_id = self.gallery.add_image(
                label=res.label, path=str(p.resolve()), sha256=image.sha256, width=image.width, height=image.height,
                rgb=image.pixels, faces=chosen, embeddings={self.settings.engine: emb}, case_id=case_id,
                metadata=metadata, liveness=live,
                provenance={"source": str(p.resolve()), "detector": [f.detector for f in chosen],
                            "faces_found": len(faces), "engine": self.settings.engine, "flip": self.settings.flip},
            )
        except FasFinderError as exc:
            res.error = exc.to_dict()
        return res

    def enroll(self, paths: Iterable[str | os.PathLike], *, label: str | None = None, label_from: str = "parent",
               case_id: str | None = None, metadata: dict | None = None, progress: Progress | None = None,
               cancel: CancelToken | None = None) -> Iterator[EnrollResult]:
        """Enroll files and folders one image at a time (each committed atomically)."""

        files = expand_inputs(paths)
        total = len(files)
        try:
            for i, f in enumerate(files):
                if cancel is not None and cancel.cancelled:
                    break
                res = self.enroll_one(f, label=label, label_from=label_from, case_id=case_id, metadata=metadata)
                if progress:
                    progress(i + 1, total, str(f))
                yield res
        finally:
            if self._gallery is not None:
                self.gallery.flush()

    # -- explanations --------------------------------------------------------------------
    def explain_face(self, image: LoadedImage, face: Face):
        from .explain import explain_face

        return explain_face(image.pixels, face)

    def explain_match(self, image: LoadedImage, face: Face, face_id: int):
        """Per-match explanations: (query map, gallery map, gallery crop) for one match."""

        from .explain import explain_match

        crop, lm, row = self.gallery.face_crop_and_landmarks(face_id)
        g_face = self.analyzer.face_at(crop, _crop_face_box(row, crop.shape[1]))
        q_exp, g_exp = explain_match(image.pixels, face, crop, g_face)
        return q_exp, g_exp, crop


def _crop_face_box(row: dict, side: int) -> tuple[int, int, int, int]:
    bx0, by0, bx1, by1 = row["crop_box"]
    s = side / (bx1 - bx0)
    x0, y0, x1, y1 = row["box"]
    return (int(round((x0 - bx0) * s)), int(round((y0 - by0) * s)), int(round((x1 - bx0) * s)), int(round((y1 - by0) * s)))

