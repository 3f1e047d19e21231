"""Protocol 4 data: 150 px chips of ``celeba_subset`` (closed set) and of LFW (open set), cached
in the user cache dir; and the runs' progress log on stderr.

Closed set: per identity the first 6 images by file name train and the last 2 validate (the
heatmap models' split, :func:`list_images`); faces found with the training cache's detector
settings (HOG, upsample 0 then 1; images without a face are left out and counted). Open set:
protocol 2's face per LFW image (shared detection cache, central-box fallback counted). Face
detection and landmarks come from the clean image (perturbing after alignment measures the
recognizer, not the detector).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadArgument


def log(msg: str, t0: list[float] = [time.time()]) -> None:  # noqa: B006, B008 (the process start time)
    """One progress line on stderr, stamped with the seconds since the process started."""

    sys.stderr.write(f"[robustness {time.time() - t0[0]:7.0f}s] {msg}\n")
    sys.stderr.flush()


def progress_every(n: int):
    """A ``progress(done, total, message)`` callback that logs every ``n``-th step and the last."""

    def progress(done: int, total: int, message: str) -> None:
        if done % n == 0 or done == total:
            log(f"{message} [{done}/{total}]")

    return progress


def chip_cache_path(name: str) -> Path:
    from .lfw_data import cache_dir

    return cache_dir() / "eval" / "robustness" / name


class ChipStore:
    """``key -> 150 px chip`` (+ a small record) persisted as one ``.npz``; resumable."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.chips: dict[str, np.ndarray] = {}
        self.records: dict[str, dict] = {}
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    keys, chips, recs = z["keys"], z["chips"], json.loads(str(z["records"]))
                for i, k in enumerate(keys):
                    self.records[str(k)] = recs[i]
                    if recs[i].get("face", True):
                        self.chips[str(k)] = chips[i]
            except (OSError, ValueError, KeyError):
                self.chips, self.records = {}, {}  # a damaged cache is recomputed

    def save(self) -> None:
        keys = list(self.records)
        if not keys:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        blank = np.zeros((150, 150, 3), np.uint8)
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=np.array(keys), chips=np.stack([self.chips.get(k, blank) for k in keys]),
                 records=np.array(json.dumps([self.records[k] for k in keys])))
        os.replace(tmp, self.path)


@dataclass
class ClosedSet:
    train_chips: np.ndarray
    train_labels: np.ndarray  # CelebA identity numbers
    train_keys: list[str]
    val_chips: np.ndarray
    val_labels: np.ndarray
    val_keys: list[str]
    identities: list[int]     # every identity of the listing, sorted (the heatmap models' class order)
    listed: dict
    no_face: dict


def load_closed_set(data_root: Path, *, max_ids: int | None = None, store_path: Path | None = None,
                    progress=None) -> ClosedSet:
    """Chips of ``celeba_subset`` split as the heatmap models were trained (first 6 / last 2)."""

    import cv2

    from ..faces import DetectorSettings, FaceAnalyzer, face_chip
    from .celeba import list_images

    data_root = Path(data_root)
    if not (data_root / "celeba_subset" / "identity_CelebA_subset.txt").is_file():
        raise BadArgument(f"{data_root} holds no celeba_subset/identity_CelebA_subset.txt (--celeba: the folder "
                          "holding celeba_subset/)")
    items = [it for it in list_images(data_root) if it["source"] == "celeba_subset"]
    identities = sorted({it["identity"] for it in items})
    if max_ids:
        keep = set(identities[:max_ids])
        items = [it for it in items if it["identity"] in keep]
    store = ChipStore(store_path or chip_cache_path("celeba_subset-chips.npz"))
    todo = [it for it in items if Path(it["path"]).name not in store.records]
    if todo:
        # the training cache's detector settings (training.heatmap_data.prepare_shard)
        a0 = FaceAnalyzer(DetectorSettings(upsample=0, fallback=False))
        a1 = FaceAnalyzer(DetectorSettings(upsample=1, fallback=False))
        for i, it in enumerate(todo):
            key = Path(it["path"]).name
            bgr = cv2.imread(it["path"])
            faces = []
            if bgr is not None:
                rgb = np.ascontiguousarray(bgr[:, :, ::-1])
                faces = a0.detect(rgb) or a1.detect(rgb)
            store.records[key] = {"face": bool(faces)}
            if faces:
                store.chips[key] = face_chip(rgb, faces[0])
            if progress:
                progress(i + 1, len(todo), f"celeba chips {key}")
            if (i + 1) % 200 == 0:
                store.save()
        store.save()
    split = {s: [it for it in items if it["split"] == s and Path(it["path"]).name in store.chips] for s in ("train", "val")}

    def arr(lst):
        if not lst:
            return np.zeros((0, 150, 150, 3), np.uint8)
        return np.stack([store.chips[Path(it["path"]).name] for it in lst])

    return ClosedSet(
        train_chips=arr(split["train"]), train_labels=np.array([it["identity"] for it in split["train"]], np.int64),
        train_keys=[Path(it["path"]).name for it in split["train"]],
        val_chips=arr(split["val"]), val_labels=np.array([it["identity"] for it in split["val"]], np.int64),
        val_keys=[Path(it["path"]).name for it in split["val"]],
        identities=identities,
        listed={s: sum(it["split"] == s for it in items) for s in ("train", "val")},
        no_face={s: sum(it["split"] == s and Path(it["path"]).name not in store.chips for it in items)
                 for s in ("train", "val")},
    )


def lfw_chips(paths: list[str], *, store_path: Path | None = None, progress=None) -> tuple[dict[str, np.ndarray], int]:
    """Chips of LFW images: protocol 2's face (shared detection cache; central-50% fallback counted)."""

    from ..faces import FaceAnalyzer, face_chip
    from ..imaging import load_image
    from .lfw_data import DetectionCache

    store = ChipStore(store_path or chip_cache_path("lfw-chips.npz"))
    todo = [p for p in dict.fromkeys(paths) if p not in store.records]
    if todo:
        detections = DetectionCache("lfw")
        analyzer = FaceAnalyzer()
        for i, p in enumerate(todo):
            img = load_image(p).pixels
            face, fallback = detections.face(p, img, analyzer)
            store.chips[p] = face_chip(img, face)
            store.records[p] = {"face": True, "fallback": bool(fallback)}
            if progress:
                progress(i + 1, len(todo), f"lfw chips {Path(p).name}")
            if (i + 1) % 500 == 0:
                store.save()
                detections.save()
        store.save()
        detections.save()
    return {p: store.chips[p] for p in paths}, sum(store.records[p].get("fallback", False) for p in set(paths))
