"""Video operations of the service API: search a video's tracks, enroll a track, find a person in footage.

Mixed into :class:`fasfinder.service.FasFinder`, whose per-image pipeline it calls through one narrow
interface (:class:`fasfinder.video.scan.FrameModels`: detect, embed) plus the service's liveness
model, gallery search and person list (``_persons``). A scan of a file (tracks with their best faces)
is kept for the last few files, so enrolling a track or finding a person right after a search does
not decode the video again. Like photo search, a bad video never raises: its error goes into its result.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import BadArgument, Cancelled, FasFinderError, NoFace, NotFoundInGallery, check_label, input_error
from .faces import FaceAnalyzer
from .imaging import thumbnail
from .liveness.verdict import judge_liveness
from .operations import CancelToken, Progress, operation
from .results import EnrollResult
from .video.footage import find_in_scan, similarity_threshold
from .video.results import FootageResult, VideoResult, VideoTrack
from .video.scan import FrameModels, VideoScan, scan_video
from .video.tracks import Track


#: Scans kept (tracks with their best-face crops), most recent last.
RECENT_SCANS = 2
THUMB_SIDE = 96


class VideoOperations:
    """search_video, enroll_video, find_in_footage (mixed into FasFinder)."""

    _video_lock = threading.Lock()

    # -- the per-frame pipeline ----------------------------------------------------------
    def _frame_models(self) -> FrameModels:
        """Detection without the photo fallbacks (the CNN on an empty frame costs seconds), no flip TTA."""

        an = getattr(self, "_video_analyzer", None)
        if an is None:
            an = self._video_analyzer = FaceAnalyzer(replace(self.analyzer.settings, fallback=False))
        engine = self.engine
        return FrameModels(detect=an.detect, embed=lambda rgb, faces: engine.embed_faces(rgb, faces, flip=False))

    def _scan(self, path, rate: float | None, progress: Progress | None, cancel: CancelToken | None) -> VideoScan:
        s = self.settings
        rate = float(rate or s.video_rate)
        p = Path(path)
        try:
            st = p.stat()
            key = (str(p.resolve()), st.st_mtime_ns, st.st_size, rate, s.video_max_side, s.engine, s.detector)
        except OSError:
            key = None
        with self._video_lock:
            cache = self.__dict__.setdefault("_video_scans", OrderedDict())
            if key is not None and key in cache:
                cache.move_to_end(key)
                return cache[key]
        scan = scan_video(p, self._frame_models(), rate=rate, max_side=s.video_max_side,
                          frame_timeout_s=s.video_frame_timeout_s, timeout_s=s.video_timeout_s,
                          progress=progress, cancel=cancel)
        if key is not None:
            with self._video_lock:
                cache[key] = scan
                while len(cache) > RECENT_SCANS:
                    cache.popitem(last=False)
        return scan

    def _track_embedding(self, tr: Track) -> np.ndarray:
        """The unit mean of the track's best faces, embedded like a photo's face (flip setting)."""

        vecs = [self.engine.embed_faces(b.crop, [b.face], flip=self.settings.flip)[0] for b in tr.best]
        v = np.mean(vecs, axis=0)
        return (v / max(np.linalg.norm(v), 1e-12)).astype(np.float32)

    # -- operations ----------------------------------------------------------------------
    @operation(progress=True)
    def search_video(self, path, *, rate: float | None = None, top_k: int | None = None,
                     progress: Progress | None = None, cancel: CancelToken | None = None) -> VideoResult:
        """The face tracks of a video, each searched once: time span, best frame, thumbnails, liveness, persons
        and the open-set decision. Never raises for a bad video: the error goes into ``VideoResult.error``."""

        res = VideoResult(query=str(path), engine=self.settings.engine, rate=float(rate or self.settings.video_rate))
        try:
            scan = self._scan(path, rate, progress, cancel)
            res.video, res.sampled, res.warnings = scan.info.to_dict(), len(scan.sample_times), scan.warnings
            res.timings_ms = {k: v * 1e3 for k, v in scan.timings_s.items()}
            k = top_k or self.settings.top_k
            model = self.liveness_model()
            for tr in scan.tracks:
                if cancel is not None:
                    cancel.check()
                best = tr.best[0]
                vt = VideoTrack(track=tr.track, start_s=tr.start_s, end_s=tr.end_s, best_s=best.t_s, box=best.box,
                                faces=tr.faces, quality=best.quality, best_times=[b.t_s for b in tr.best],
                                times=list(tr.times), thumbnails=[_face_thumb(b.crop, b.face.box) for b in tr.best])
                if model is not None:
                    vt.liveness = model.predict(best.crop, [best.face])[0]
                hits = self.gallery.search(self.settings.engine, self._track_embedding(tr)[None], max(50, 10 * k))[0]
                vt.persons, vt.decision = self._persons(hits, k)
                res.tracks.append(vt)
        except Exception as exc:  # the per-input boundary: one video's failure never stops a batch
            res.error = input_error(exc, str(path))
        return res

    @operation(progress=True)
    def enroll_video(self, path, track: int, *, label: str, case_id: str | None = None, metadata: dict | None = None,
                     rate: float | None = None, progress: Progress | None = None,
                     cancel: CancelToken | None = None) -> list[EnrollResult]:
        """Add the best faces of one track of a video to a person (created or existing): one result per face."""

        check_label(label)
        scan = self._scan(path, rate, progress, cancel)
        tr = next((t for t in scan.tracks if t.track == int(track)), None)
        if tr is None:
            raise BadArgument(f"{path}: no track {track} (the video has {len(scan.tracks)} track(s))")
        model = self.liveness_model()
        out = []
        for b in tr.best:
            where = f"{Path(path).resolve()}#t={b.t_s:.2f}"
            res = EnrollResult(path=where, label=label, record_id=None, faces=1)
            try:
                live = None
                if model is not None:
                    live, error, res.review = judge_liveness(where, model.predict(b.crop, [b.face]),
                                                             self.settings.refuse_spoof)
                    res.liveness = live
                    if error is not None:
                        res.error = error
                        out.append(res)
                        continue
                sha = hashlib.sha256(f"{b.crop.shape}".encode() + b.crop.tobytes()).hexdigest()
                emb = self.engine.embed_faces(b.crop, [b.face], flip=self.settings.flip)
                h, w = b.crop.shape[:2]
                res.record_id = self.gallery.add_image(
                    label=label, path=where, sha256=sha, width=w, height=h, rgb=b.crop, faces=[b.face],
                    embeddings={self.settings.engine: emb}, case_id=case_id, metadata=metadata, liveness=live,
                    provenance={"source": str(Path(path).resolve()), "video_t_s": round(b.t_s, 3), "track": tr.track,
                                "rate": scan.rate, "detector": b.face.detector, "engine": self.settings.engine,
                                "flip": self.settings.flip})
            except Exception as exc:
                res.error = input_error(exc, where)
            out.append(res)
        self.gallery.flush()
        return out

    def _references(self, photo, person_id) -> tuple[np.ndarray, str]:
        if (photo is None) == (person_id is None):
            raise BadArgument("give either a query photo or an enrolled person, not both or neither")
        if photo is not None:
            q = self.analyze(photo, with_matches=False, record=False)
            if q.error:
                raise FasFinderError(q.error["message"], code=q.error["code"])
            if not q.faces:
                raise NoFace(f"{photo}: no face found")
            return self.engine.embed_faces(q.pixels, [q.faces[0].face], flip=self.settings.flip), f"photo {photo}"
        rec = self.gallery.person(int(person_id))
        with self.gallery.snapshot() as conn:
            ids = [r[0] for r in conn.execute("SELECT f.id FROM faces f JOIN images i ON f.image_id = i.id "
                                              "WHERE i.person_id = ? ORDER BY f.id", (int(person_id),))]
        _, vecs = self.gallery.stored_embeddings(self.settings.engine, np.array(ids, dtype=np.int64))
        if not len(vecs):
            raise NotFoundInGallery(f"person {person_id} ({rec.label}) has no face embedded with {self.settings.engine}")
        return np.asarray(vecs, dtype=np.float32), f"person {person_id} ({rec.label})"

    @operation(progress=True)
    def find_in_footage(self, videos: list, *, photo=None, person_id: int | None = None, rate: float | None = None,
                        min_confidence: float = 0.5, progress: Progress | None = None,
                        cancel: CancelToken | None = None) -> list[FootageResult]:
        """Where one person (a query photo's largest face, or an enrolled person) appears in each video: time
        spans and the similarity over time. A bad reference raises; a bad video gets its error in its result."""

        refs, what = self._references(photo, person_id)
        engine = self.engine
        threshold = similarity_threshold(engine.confidence, min_confidence)
        if threshold is None:
            raise BadArgument(f"engine {self.settings.engine} has no calibration: no same-person threshold")
        out = []
        for i, v in enumerate(videos):
            def step(done, total, message, i=i):
                if progress is not None:
                    progress(done, total, f"[{i + 1}/{len(videos)}] {message}")
            try:
                scan = self._scan(v, rate, step, cancel)
                res = find_in_scan(scan, refs, threshold=threshold, confidence=engine.confidence)
            except Exception as exc:
                res = FootageResult(query=str(v), reference=what, error=input_error(exc, str(v)))
            res.reference = what
            out.append(res)
            if res.error is not None and res.error["code"] == Cancelled.code:
                break
        return out


def _face_thumb(crop: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    m = int(0.25 * max(x1 - x0, y1 - y0))
    h, w = crop.shape[:2]
    face = crop[max(0, y0 - m):min(h, y1 + m), max(0, x0 - m):min(w, x1 + m)]
    return thumbnail(face if face.size else crop, THUMB_SIDE)

