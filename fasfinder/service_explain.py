"""Service operations that explain a query face: Grad-CAM++ maps, per-match maps, severity curves.

A mixin of :class:`fasfinder.service.FasFinder`. Every operation names the query by its sha256 and
the face by its index in the query's result; the image comes from the service's recent queries
(the front end never sends pixels back). When the image is no longer there (the helper process
restarted, or many queries later) the caller may pass the query's ``path``, which is decoded
again and must have the same sha256.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import BadArgument, FasFinderError, GalleryError, ModelError, NotFoundInGallery
from .faces import Face
from .imaging import LoadedImage
from .operations import CancelToken, Progress, operation
from .results import Heatmap, MatchExplanation, SeverityCurves


def crop_face_box(row: dict, side: int) -> tuple[int, int, int, int]:
    """The face box of a gallery face row in the coordinates of its stored square crop of ``side`` px."""

    bx0, by0, bx1, by1 = row["crop_box"]
    s = side / (bx1 - bx0)
    x0, y0, x1, y1 = row["box"]
    return (int(round((x0 - bx0) * s)), int(round((y0 - by0) * s)), int(round((x1 - bx0) * s)), int(round((y1 - by0) * s)))


def _face_heatmap(exp) -> Heatmap:
    return Heatmap(heatmap=exp.heatmap, regions=exp.regions, method=f"recognition model, Grad-CAM++ on {exp.layer}",
                   layer=exp.layer, score=float(exp.score))


class ExplainOperations:
    """Explanations and severity curves (needs ``self.recent``, ``self.analyzer``, ``self.gallery``, ...)."""

    # -- the query a call refers to ----------------------------------------------------------
    def query_face(self, query: str, face: int, path: str | None = None) -> tuple[LoadedImage, Face]:
        """The decoded image of the query with sha256 ``query`` and its face number ``face``."""

        item = self.recent.get(query)
        if item is None and path is not None:
            image = self.load(path)
            if image.sha256 != query:
                raise FasFinderError(f"{path} has changed since it was searched (sha256 differs)", code="query_changed")
            item = (image, self.detect(image))
            self.recent.put(*item)
        if item is None:
            raise FasFinderError(f"query {query[:12]} is no longer loaded; search the photo again", code="query_expired")
        image, faces = item
        if not 0 <= int(face) < len(faces):
            raise BadArgument(f"the query has {len(faces)} face(s); there is no face {face}")
        return image, faces[int(face)]

    # -- maps -------------------------------------------------------------------------------
    @operation
    def explain_face(self, query: str, face: int, path: str | None = None) -> Heatmap:
        """Face attention: Grad-CAM++ of the recognition model for one query face (image coordinates)."""

        from .explain import explain_face

        image, f = self.query_face(query, face, path)
        return _face_heatmap(explain_face(image.pixels, f))

    @operation
    def liveness_explain(self, query: str, face: int, path: str | None = None) -> Heatmap:
        """Grad-CAM++ of the liveness model for one query face and its Area Importance."""

        model = self.liveness_model()
        if model is None:
            raise ModelError(f"no liveness (FAS) model: {self.liveness_unavailable}")
        image, f = self.query_face(query, face, path)
        heatmap, regions = model.explain(image.pixels, f)
        return Heatmap(heatmap=heatmap, regions=regions, method="liveness (FAS) model, Grad-CAM++")

    @operation
    def explain_match(self, query: str, face: int, face_id: int, path: str | None = None) -> MatchExplanation:
        """Per-match maps: what in the query face made it match gallery face ``face_id``, and the reverse."""

        from .explain import explain_match

        image, f = self.query_face(query, face, path)
        crop, _lm, row = self.gallery.face_crop_and_landmarks(int(face_id))
        g_face = self.analyzer.face_at(crop, crop_face_box(row, crop.shape[1]))
        q_exp, g_exp = explain_match(image.pixels, f, crop, g_face)
        return MatchExplanation(face_id=int(face_id), query=_face_heatmap(q_exp), gallery=_face_heatmap(g_exp))

    @operation
    def compare_photo(self, query: str, face: int, image_id: int, path: str | None = None) -> dict:
        """Query face ``face`` against gallery photo ``image_id`` (another photo of a candidate), scored as
        a search scores it: the dot product of the query face's embedding with the photo's stored ones
        (this engine). The photo's best face: ``face_id``, ``crop`` (RGB), ``similarity``; with
        ``image_id``, ``image`` (its path) and ``faces`` (how many it has). ``not_in_gallery`` when the photo
        is gone or has no embedded face."""

        image, f = self.query_face(query, face, path)
        face_ids = self.gallery.image_face_ids(int(image_id))
        ids, vecs = self.gallery.stored_embeddings(self.settings.engine, np.array(face_ids, dtype=np.int64))
        if not len(ids):
            raise NotFoundInGallery(f"photo {image_id} has no face embedded with engine {self.settings.engine}")
        q = np.asarray(self.embed(image, [f])[0], dtype=np.float32)
        sims = np.asarray(vecs, dtype=np.float32) @ q
        best = int(np.argmax(sims))
        crop = self.gallery.face_crop_and_landmarks(int(ids[best]))[0]
        return {"image_id": int(image_id), "image": self.gallery.image_row(int(image_id))["path"],
                "face_id": int(ids[best]), "crop": crop, "similarity": float(sims[best]), "faces": len(face_ids)}

    @operation
    def face_crops(self, face_ids: list[int]) -> list[np.ndarray | None]:
        """The stored RGB crops of gallery faces (None for a face that is gone)."""

        out: list[np.ndarray | None] = []
        for fid in face_ids:
            try:
                out.append(self.gallery.face_crop_and_landmarks(int(fid))[0])
            except GalleryError:
                out.append(None)
        return out

    # -- severity -----------------------------------------------------------------------------
    def stored_embedding(self, face_id: int, engine: str | None = None) -> np.ndarray:
        """The gallery's stored embedding of ``face_id`` for ``engine`` (L2-normalised)."""

        engine = engine or self.settings.engine
        ids, vecs = self.gallery.stored_embeddings(engine, np.array([int(face_id)], dtype=np.int64))
        hit = np.flatnonzero(ids == int(face_id))
        if not len(hit):
            raise NotFoundInGallery(f"face {face_id} has no stored embedding for engine {engine}")
        v = np.asarray(vecs[hit[0]], dtype=np.float64)
        return v / max(np.linalg.norm(v), 1e-12)

    @operation(progress=True)
    def severity(self, query: str, face: int, face_id: int | None = None, *, target: str = "similarity",
                 region: str = "face", path: str | None = None, progress: Progress | None = None,
                 cancel: CancelToken | None = None) -> SeverityCurves:
        """Similarity to gallery face ``face_id`` (or the liveness score) against perturbation severity."""

        from .severity import severity_curves

        if target not in ("similarity", "liveness"):
            raise BadArgument(f"unknown severity target {target!r} (use 'similarity' or 'liveness')")
        if region not in ("face", "image"):
            raise BadArgument(f"unknown region {region!r} (use 'face' or 'image')")
        image, f = self.query_face(query, face, path)
        engine_name = self.settings.engine
        if target == "similarity":
            if face_id is None:
                raise NotFoundInGallery("no gallery match to compare against")
            ref = self.stored_embedding(face_id, engine_name)
            engine, flip = self.engine, self.settings.flip

            def score(img: np.ndarray) -> float:
                e = np.asarray(engine.embed_faces(img, [f], flip=flip)[0], dtype=np.float64)
                return float(e @ ref / max(np.linalg.norm(e), 1e-12))
        else:
            model = self.liveness_model()
            if model is None:
                raise ModelError(f"no liveness model: {self.liveness_unavailable}")

            def score(img: np.ndarray) -> float:
                return float(model.predict(img, [f])[0].score)

        key = (image.sha256, tuple(f.box), face_id, target, region, engine_name, self.settings.flip)
        return severity_curves(image.pixels, f, score, target=target, region=region, key=key, engine=engine_name,
                               face_id=face_id, progress=progress, cancel=cancel)

    # -- files -------------------------------------------------------------------------------
    @operation
    def explain_to_folder(self, source, out_dir: str, *, with_matches: bool, top_k: int = 5) -> dict:
        """Write every face's maps (PNG + NPY), region importance and per-match maps to ``out_dir``."""

        from .explain_io import ExplanationWriter

        writer = ExplanationWriter(Path(out_dir))
        # Recorded like a search (history row and audit row with the image's sha256): an explanation shows matches.
        result = self.analyze(source, top_k=top_k, with_matches=with_matches, record=True)
        report = {"query": str(source), "out": str(out_dir), "error": result.error, "faces": []}
        if result.error:
            return report
        for fr in result.faces:
            face_rep = writer.face(fr, result.pixels, self.explain_face(result.sha256, fr.index))
            if self.liveness_model() is not None:
                try:
                    face_rep["fas"] = writer.fas(fr, result.pixels, self.liveness_explain(result.sha256, fr.index))
                except FasFinderError as exc:
                    face_rep["fas"] = {"error": exc.to_dict()}
            matches = []
            for m in fr.matches if with_matches else []:
                crop = self.face_crops([m.face_id])[0]
                matches.append(writer.match(fr, m, result.pixels, crop,
                                            self.explain_match(result.sha256, fr.index, m.face_id)))
            face_rep["matches"] = matches
            report["faces"].append(face_rep)
        writer.report(report)
        return report
