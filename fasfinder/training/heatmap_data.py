"""Training data: split, the ``.npy`` cache (crops, heatmaps, teacher embeddings), augmentation.

Split (docs/BENCHMARKS.md section 4): per identity of ``celeba_subset`` the first 6 images by file name
train and the last 2 validate; every ``celeba_extra`` crop (same 244 identities) trains. LFW is
never read here.

Cache (never in the repository; default ``<user cache>/fasfinder/heatmap_train``): for every image
whose face is found, dlib's aligned 150 px chip resized to ``size`` (``crops.npy``, uint8), the
heatmap of :mod:`fasfinder.engines.heatmap_input` at the same size (``heat.npy``, float16), the teacher's (dlib port's)
L2-normalised embeddings of the chip and its mirror (``teacher.npy``, ``teacher_mirror.npy``) and
``meta.json`` (files, labels, split, source, detector). Built in shards so that two processes can
share the work; :func:`load_cache` merges them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ..engines.heatmap_input import FastCam, chip_to_input
from ..evaluation.celeba import DATA_ROOT, list_images
from ..faces import DetectorSettings, FaceAnalyzer, face_chip

__all__ = ["DATA_ROOT", "list_images"]  # the split lives with the protocols (evaluation.celeba)


def default_cache_dir() -> Path:
    override = os.environ.get("FASFINDER_HEATMAP_CACHE")
    if override:
        return Path(override)
    from ..settings import cache_dir

    return cache_dir() / "heatmap_train"


def aligned_chips(items: list[dict], progress: bool = True, tag: str = "") -> tuple[list[dict], list[str], list[np.ndarray]]:
    """(kept items, detector labels, dlib's aligned 150 px chips) for the items whose face is found.

    celeba_extra crops are centred on dlib's HOG box (side = crop side / 2.2, SOURCE.md), so the
    box is known and only the landmarks are computed there; the in-the-wild celeba_subset images
    are searched with HOG (no upsampling first: their faces are large; then upsampling 1).
    """

    import cv2

    analyzer = FaceAnalyzer(DetectorSettings(upsample=0, fallback=False))
    analyzer_up = FaceAnalyzer(DetectorSettings(upsample=1, fallback=False))
    kept, dets, chips = [], [], []
    t0 = time.time()
    for i, it in enumerate(items):
        bgr = cv2.imread(it["path"])
        if bgr is None:
            continue
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        if it["source"] == "celeba_extra":
            h, w = rgb.shape[:2]
            s = min(h, w) / 2.2
            box = (int(round(w / 2 - s / 2)), int(round(h / 2 - s / 2)), int(round(w / 2 + s / 2)), int(round(h / 2 + s / 2)))
            faces = [analyzer.face_at(rgb, box, detector="source-box")]
        else:
            faces = analyzer.detect(rgb) or analyzer_up.detect(rgb)
        if not faces:
            continue
        kept.append(it)
        dets.append(faces[0].detector)
        chips.append(face_chip(rgb, faces[0]))
        if progress and (i + 1) % 200 == 0:
            print(f"{tag}detected {i + 1}/{len(items)} ({time.time() - t0:.0f}s)", flush=True)
    return kept, dets, chips


def prepare_shard(cache_dir: Path, shard: int, n_shards: int, size: int = 112, data_root: Path = DATA_ROOT,
                  progress: bool = True) -> Path:
    """Detect, align, compute heatmaps and teacher embeddings for shard ``shard`` of ``n_shards``."""

    import torch

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / f"shard{shard}of{n_shards}-{size}.npz"
    if out.is_file():
        return out
    items = list_images(data_root)[shard::n_shards]
    t0 = time.time()
    kept, dets, chips = aligned_chips(items, progress, tag=f"shard {shard}: ")
    cam = FastCam()
    chips_arr = np.stack(chips)
    heat, desc = cam(chips_arr)
    with torch.inference_mode():
        mirror = np.ascontiguousarray(chips_arr[:, :, ::-1])
        desc_m = np.concatenate([cam.model(cam.model.preprocess(mirror[s : s + 64])).numpy() for s in range(0, len(mirror), 64)])

    def unit(x):
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    np.savez(
        out.with_suffix(".tmp.npz"),
        crops=np.stack([chip_to_input(c, size) for c in chips_arr]),
        heat=np.stack([chip_to_input(m, size) for m in heat]).astype(np.float16),
        teacher=unit(desc),
        teacher_mirror=unit(desc_m),
        meta=np.array(json.dumps({"items": kept, "detector": dets, "listed": len(items)})),
    )
    out.with_suffix(".tmp.npz").replace(out)
    if progress:
        print(f"shard {shard}: done {len(kept)}/{len(items)} faces in {time.time() - t0:.0f}s", flush=True)
    return out


CHIP_JPEG_QUALITY = 95


def prepare_chip_file(out: Path, data_root: Path = DATA_ROOT, quality: int = CHIP_JPEG_QUALITY, progress: bool = True) -> Path:
    """Every training/validation face as dlib's aligned 150 px chip, JPEG-encoded, in one ``.npz``.

    The compact input of :mod:`.heatmap_online` (the heatmaps and teacher embeddings are computed
    where the training runs, e.g. on a GPU box, from these chips): ``jpeg`` (all files' bytes
    concatenated), ``offsets`` and ``meta`` (items with identity/split/source/path, detector).
    JPEG at ``quality`` keeps the file a few tens of MB (the sources are JPEGs already).
    """

    items = list_images(data_root)
    kept, dets, chips = aligned_chips(items, progress)
    return write_chip_file(out, kept, dets, chips, listed=len(items), quality=quality)


def write_chip_file(out: Path, items: list[dict], detectors: list[str], chips: list[np.ndarray], *, listed: int,
                    quality: int = CHIP_JPEG_QUALITY) -> Path:
    import cv2

    out = Path(out)
    blobs = [cv2.imencode(".jpg", c[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes() for c in chips]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.npz")
    np.savez(tmp, jpeg=np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets=offsets,
             meta=np.array(json.dumps({"items": items, "detector": detectors, "listed": listed, "jpeg_quality": quality})))
    tmp.replace(out)
    return out


def load_chip_file(path: Path) -> tuple[np.ndarray, dict]:
    """(chips (n, 150, 150, 3) uint8 RGB, meta) from :func:`prepare_chip_file`'s file."""

    import cv2

    with np.load(path) as z:
        jpeg, offsets, meta = z["jpeg"], z["offsets"], json.loads(str(z["meta"]))
    chips = np.stack([cv2.imdecode(jpeg[offsets[i] : offsets[i + 1]], cv2.IMREAD_COLOR)[:, :, ::-1] for i in range(len(offsets) - 1)])
    return np.ascontiguousarray(chips), meta


def build_cache(cache_dir: Path, n_shards: int, size: int = 112) -> Path:
    """Merge shards into ``.npy`` files (crops, heat, teacher, teacher_mirror) and ``meta.json``."""

    cache_dir = Path(cache_dir)
    final = cache_dir / f"train-{size}"
    if (final / "meta.json").is_file():
        return final
    parts = [np.load(cache_dir / f"shard{s}of{n_shards}-{size}.npz") for s in range(n_shards)]
    final.mkdir(parents=True, exist_ok=True)
    for key in ("crops", "heat", "teacher", "teacher_mirror"):
        np.save(final / f"{key}.npy", np.concatenate([p[key] for p in parts]))
    items, dets, listed = [], [], 0
    for p in parts:
        m = json.loads(str(p["meta"]))
        items += m["items"]
        dets += m["detector"]
        listed += m["listed"]
    ids = sorted({it["identity"] for it in items})
    index = {ident: k for k, ident in enumerate(ids)}
    meta = {
        "size": size,
        "listed": listed,
        "kept": len(items),
        "identities": ids,
        "labels": [index[it["identity"]] for it in items],
        "split": [it["split"] for it in items],
        "source": [it["source"] for it in items],
        "path": [it["path"] for it in items],
        "detector": dets,
    }
    (final / "meta.json").write_text(json.dumps(meta))
    return final


def load_cache(path: Path) -> dict:
    path = Path(path)
    meta = json.loads((path / "meta.json").read_text())
    out = {k: np.load(path / f"{k}.npy") for k in ("crops", "heat", "teacher", "teacher_mirror")}
    out["labels"] = np.array(meta["labels"], dtype=np.int64)
    out["split"] = np.array(meta["split"])
    out["meta"] = meta
    return out


# ------------------------------------------------------------------------------------------
# Augmentation (batched, on tensors; the heatmap channel moves with the pixels)
# ------------------------------------------------------------------------------------------
def augment(x, generator, *, scale=(0.7, 1.0), ratio=(0.85, 1.18), max_rot=12.0, jitter=0.3,
            blur_p=0.2, erase_p=0.4, flip_p=0.5):
    """x: (n, c, h, w) float in [0, 1] (RGB first, optional heatmap last). Returns (x', flipped).

    Random resized crop + rotation (one affine warp of all channels), horizontal flip, colour
    jitter (brightness, contrast, saturation; RGB only), Gaussian blur (RGB only), random erasing
    (RGB zeroed in a rectangle; the heatmap is left as it was computed on the intact face).
    """

    import math

    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    g = generator  # a CPU generator: every random draw is made on the CPU, so runs are seeded on any device
    dev = x.device

    def U(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*(shape or (n,)), generator=g)

    area = U(*scale)
    logr = U(math.log(ratio[0]), math.log(ratio[1]))
    ar = torch.exp(logr)
    sx = torch.sqrt(area * ar).clamp(max=1.0)
    sy = torch.sqrt(area / ar).clamp(max=1.0)
    tx = (1 - sx) * U(-1, 1)
    ty = (1 - sy) * U(-1, 1)
    ang = U(-max_rot, max_rot) * math.pi / 180
    flip = torch.rand(n, generator=g) < flip_p
    fx = torch.where(flip, -1.0, 1.0)
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack(
        [torch.stack([cos * sx * fx, -sin * sy, tx], 1), torch.stack([sin * sx * fx, cos * sy, ty], 1)], 1
    )
    grid = F.affine_grid(theta.to(dev, x.dtype), (n, c, h, w), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    rgb = x[:, :3]
    b = U(1 - jitter, 1 + jitter).view(n, 1, 1, 1).to(dev)
    ct = U(1 - jitter, 1 + jitter).view(n, 1, 1, 1).to(dev)
    sat = U(1 - jitter, 1 + jitter).view(n, 1, 1, 1).to(dev)
    rgb = rgb * b
    mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
    rgb = (rgb - mean) * ct + mean
    grey = (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3])
    rgb = (rgb - grey) * sat + grey
    blur = (torch.rand(n, generator=g) < blur_p).to(dev)
    if blur.any():
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=dev) / 16
        kern = (k[:, None] * k[None, :]).expand(3, 1, 5, 5)
        rgb[blur] = F.conv2d(F.pad(rgb[blur], (2, 2, 2, 2), mode="replicate"), kern, groups=3)
    erase = torch.rand(n, generator=g) < erase_p
    for i in torch.nonzero(erase).flatten().tolist():
        ea = float(U(0.02, 0.2, 1)) * h * w
        er = math.exp(float(U(math.log(0.3), math.log(3.3), 1)))
        eh, ew = int(round(math.sqrt(ea * er))), int(round(math.sqrt(ea / er)))
        if 0 < eh < h and 0 < ew < w:
            y0 = int(torch.randint(0, h - eh, (1,), generator=g))
            x0 = int(torch.randint(0, w - ew, (1,), generator=g))
            rgb[i, :, y0 : y0 + eh, x0 : x0 + ew] = 0.0
    x = torch.cat([rgb.clamp(0, 1), x[:, 3:]], 1)
    return x, flip
