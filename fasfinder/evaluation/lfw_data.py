"""LFW files and the per-image embedding cache shared by protocols 2 and 3.

Every LFW image goes through the product's own pipeline: detection (the face nearest the image
centre when several are found), 68/5-point landmarks, the engine's aligned input. When no face
is found the central 50% box is used and counted (docs/BENCHMARKS.md section 2). Detections are
cached once for all engines; embeddings (plain and mirrored views) once per engine, so the
``--flip`` and plain evaluations and the identification protocol share one pass.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from ..errors import BadArgument
from ..faces import Face, FaceAnalyzer
from ..imaging import load_image
from ..settings import cache_dir


def image_path(lfw_dir: Path, name: str, number: int) -> Path:
    return lfw_dir / "images_deepfunneled" / name / f"{name}_{number:04d}.jpg"


def read_pairs(lfw_dir: str | os.PathLike) -> list[tuple[Path, Path, bool, int]]:
    """(image1, image2, same, fold) for the 6,000 pairs of View 2."""

    lfw_dir = Path(lfw_dir)
    pairs_file = lfw_dir / "pairs.txt"
    if not pairs_file.is_file():
        raise BadArgument(f"{pairs_file} not found: --lfw must be the LFW folder holding pairs.txt")
    lines = pairs_file.read_text().split("\n")
    n_folds, per = (int(x) for x in lines[0].split())
    out = []
    rows = [ln.split() for ln in lines[1:] if ln.strip()]
    for i, r in enumerate(rows):
        fold = i // (2 * per)
        if len(r) == 3:
            out.append((image_path(lfw_dir, r[0], int(r[1])), image_path(lfw_dir, r[0], int(r[2])), True, fold))
        elif len(r) == 4:
            out.append((image_path(lfw_dir, r[0], int(r[1])), image_path(lfw_dir, r[2], int(r[3])), False, fold))
    if len(out) != n_folds * 2 * per:
        raise BadArgument(f"{pairs_file}: expected {n_folds * 2 * per} pairs, read {len(out)}")
    return out


def central_box(h: int, w: int) -> tuple[int, int, int, int]:
    return (w // 4, h // 4, w - w // 4, h - h // 4)


def pick_central_face(faces: list[Face], h: int, w: int) -> Face | None:
    if not faces:
        return None
    cx, cy = w / 2.0, h / 2.0
    return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)


class EmbeddingCache:
    """Per-image (plain, mirrored) embeddings of one engine, saved as ``.npz`` in the cache dir."""

    def __init__(self, engine_name: str, tag: str = "lfw"):
        self.path = cache_dir() / "eval" / f"{tag}-{engine_name}.npz"
        self.meta_path = self.path.with_suffix(".json")
        self.data: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {}
        self._lock = threading.Lock()
        if self.path.is_file() and self.meta_path.is_file():
            # Read each array once: indexing an NpzFile member re-reads the whole array, so doing it
            # per row made reloading O(n^2) in memory and time.
            with np.load(self.path) as z:
                plain, mirror, fallback = z["plain"], z["mirror"], z["fallback"]
            keys = json.loads(self.meta_path.read_text())
            for i, k in enumerate(keys["paths"]):
                self.data[k] = (plain[i], mirror[i], bool(fallback[i]))

    def save(self) -> None:
        with self._lock:
            keys = list(self.data)
            if not keys:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.stem + ".tmp.npz")
            np.savez(tmp, plain=np.stack([self.data[k][0] for k in keys]),
                     mirror=np.stack([self.data[k][1] for k in keys]),
                     fallback=np.array([self.data[k][2] for k in keys]))
            os.replace(tmp, self.path)
            self.meta_path.write_text(json.dumps({"paths": keys}))


class DetectionCache:
    """The chosen face of every evaluated image (shared by all engines), saved as ``.npz``."""

    def __init__(self, tag: str = "lfw"):
        self.path = cache_dir() / "eval" / f"{tag}-detections.npz"
        self.data: dict[str, tuple[Face, bool]] = {}
        self._merge_from_disk()

    def _merge_from_disk(self) -> None:
        """Add entries another process saved (two evaluations may fill the cache at once)."""

        if not self.path.is_file():
            return
        try:
            with np.load(self.path, allow_pickle=False) as z:  # each array read once (see EmbeddingCache)
                paths, boxes, landmarks, shape5 = z["paths"], z["boxes"], z["landmarks"], z["shape5"]
                scores, detectors, fallback = z["scores"], z["detectors"], z["fallback"]
            for i, k in enumerate(paths):
                if str(k) not in self.data:
                    face = Face(box=tuple(int(v) for v in boxes[i]), landmarks=landmarks[i],
                                shape5=shape5[i], score=float(scores[i]), detector=str(detectors[i]))
                    self.data[str(k)] = (face, bool(fallback[i]))
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is recomputed

    def save(self) -> None:
        self._merge_from_disk()
        keys = list(self.data)
        if not keys:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        faces = [self.data[k][0] for k in keys]
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, paths=np.array(keys), boxes=np.array([f.box for f in faces]),
                 landmarks=np.stack([f.landmarks for f in faces]), shape5=np.stack([f.shape5 for f in faces]),
                 scores=np.array([f.score for f in faces]), detectors=np.array([f.detector for f in faces]),
                 fallback=np.array([self.data[k][1] for k in keys]))
        os.replace(tmp, self.path)

    def face(self, path: str, img: np.ndarray, analyzer: FaceAnalyzer) -> tuple[Face, bool]:
        """The face nearest the centre, or the central 50% box (``fallback`` True) when none is found."""

        if path not in self.data:
            h, w = img.shape[:2]
            face = pick_central_face(analyzer.detect(img), h, w)
            fallback = face is None
            if fallback:
                face = analyzer.face_at(img, central_box(h, w))
            self.data[path] = (face, fallback)
        return self.data[path]


def _embed_chunk(engines, caches, paths, imgs, found) -> None:
    """Embed a chunk of images (one face each) with every engine that lacks them.

    Engines with batched inputs (the heatmap-channel networks) run the whole chunk in one batch;
    the chunk's Grad-CAM++ heatmaps are computed in one batch first (FastCam remembers them, so
    every engine that needs them reads them back). Others embed image by image.
    """

    need = [(e, c) for e, c in zip(engines, caches) if any(p not in c.data for p in paths)]
    if any(getattr(e, "needs_heatmap", False) for e, _ in need):
        from ..faces import face_chip
        from ..engines.heatmap_input import default_cam

        default_cam()([face_chip(img, f) for img, (f, _) in zip(imgs, found)])
    for eng, cache in need:
        if hasattr(eng, "embed_inputs"):
            inputs = [eng.inputs(img, [f]) for img, (f, _) in zip(imgs, found)]
            heat = np.concatenate([h for _, h in inputs]) if inputs[0][1] is not None else None
            plain, mirror = eng.embed_inputs(np.concatenate([c for c, _ in inputs]), heat, mirror=True)
            for k, (p, (_, fb)) in enumerate(zip(paths, found)):
                cache.data[p] = (plain[k], mirror[k], fb)
        else:
            for p, img, (f, fb) in zip(paths, imgs, found):
                if p not in cache.data:
                    plain, mirror = eng.embed_views(img, [f], mirror=True)
                    cache.data[p] = (plain[0], mirror[0], fb)


def embed_images(paths: list, engine, *, tag: str = "lfw", progress=None, save_every: int = 96, chunk: int = 32):
    """Fill (and return) the engine's embedding cache for every path; resumable after an interruption.

    ``engine`` may be a list of engines: each image is then decoded (and its face looked up) once
    for all of them, and what they share (the Grad-CAM++ heatmap of the Heatmap models and
    ``cam-vector``) is computed once; a list of caches is returned.
    ``FASFINDER_EVAL_REVERSE=1`` walks the images in reverse order, so that two evaluations of
    different engines started together share the detection cache instead of repeating detections.
    """

    engines = list(engine) if isinstance(engine, (list, tuple)) else [engine]
    caches = [EmbeddingCache(e.name, tag=tag) for e in engines]
    detections = DetectionCache(tag)
    analyzer = FaceAnalyzer()
    todo = [p for p in dict.fromkeys(str(p) for p in paths) if any(p not in c.data for c in caches)]
    if os.environ.get("FASFINDER_EVAL_REVERSE") == "1":
        todo.reverse()
    total = len(todo)
    done = 0
    for start in range(0, total, chunk):
        part = todo[start : start + chunk]
        imgs = [load_image(p).pixels for p in part]
        found = [detections.face(p, img, analyzer) for p, img in zip(part, imgs)]
        _embed_chunk(engines, caches, part, imgs, found)
        for p in part:
            done += 1
            if progress:
                progress(done, total, p)
            if done % save_every == 0:
                for eng, cache in zip(engines, caches):
                    # a high-dimensional cache (cam-vector: 16,384-d) is saved less often: each save rewrites it whole
                    if done % (save_every * max(1, eng.dim // 512)) == 0:
                        cache.save()
                detections.save()
    for cache in caches:
        cache.save()
    detections.save()
    return caches if isinstance(engine, (list, tuple)) else caches[0]


def embed_lfw_images(paths: list[Path], engine, *, progress=None) -> EmbeddingCache:
    return embed_images(paths, engine, tag="lfw", progress=progress)
