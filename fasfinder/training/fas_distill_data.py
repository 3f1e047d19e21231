"""Distillation data for the liveness student: every image we may train on, its face, its crops and
the teacher's soft output.

Sources (training data only; LFW and the NUAA test lists are never read here):

* the NUAA training lists (300 live + 300 print attacks, subjects 0001-0009), hard labels;
* CelebA photos (celeba_subset + celeba_extra) of the TRAINING identities as genuine captures
  (hard label live); the identities are split by a fixed rule (:func:`celeba_split`) into train,
  calibration and held-out;
* synthetic print attacks (:mod:`fasfinder.training.fas_synth`: a CelebA training-identity print
  composited over a live NUAA or CelebA background, hands over its edges), each paired with its
  untouched live original under the same camera degradation;
* the same CelebA photos and their synthetic prints once more through an "ordinary photo" degradation
  (:func:`photo_params` / :func:`photo`: the face shrunk to 40-110 px with JPEG at that size, often
  scaled back up, sometimes grey or sharpened), the SAME degradation for a genuine photo and its
  print, so that a low-quality web or phone photo is learnt as a photo, not as an attack (sources
  ``celeba-photo`` / ``celeba-photo-print``);
* the same photos and prints once more in a "web photo frame" (:func:`frame_params` / :func:`frame`:
  a square window of 2.2-3.3 face-box widths, rotated by up to 8 degrees (the border replicated or black,
  as in aligned face sets), resized to 150-300 px and saved as
  JPEG, as web and press photos and thumbnails are published, for example LFW's documented format of
  a 2.2x Viola-Jones box scaled to 250x250), again the same for a photo and its print (sources
  ``celeba-frame`` / ``celeba-frame-print``). The face then fills the frame: both teacher crops clip
  at the image border, which is what tight genuine photos look like to a liveness model.

For each sample the product's face (dlib box + 68 landmarks) is mapped to the teacher's box
(:func:`fasfinder.liveness.minifasnet.face_box`) and both 80x80 crops of the teacher's rule are
stored (uint8 BGR, the student's input too), with the teacher's two softmax vectors.

    python -m fasfinder.training.fas_distill_data faces --out DIR      # dlib faces of CelebA (cached)
    python -m fasfinder.training.fas_distill_data build --out DIR [--per-nuaa 2] [--seed 0] [--photo-share 0.6]
        [--frame-share 0.6]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..evaluation.celeba import DATA_ROOT

SHARED = DATA_ROOT  # FASFINDER_DATA, else ../shared/data
CELEBA_SETS = (("celeba_subset", "identity_CelebA_subset.txt"), ("celeba_extra", "identity_CelebA_extra.txt"))


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def celeba_files(data_dir=SHARED) -> list[tuple[str, str]]:
    """[(path relative to data_dir, identity)] of every CelebA image (subset and extra)."""

    out = []
    for folder, list_name in CELEBA_SETS:
        for line in (Path(data_dir) / folder / list_name).read_text().split("\n"):
            parts = line.split()
            if len(parts) == 2:
                out.append((f"{folder}/Celeb/{parts[0]}", parts[1]))
    return out


def celeba_split(identity: str) -> str:
    """Fixed rule on the CelebA identity number: 3 of 5 train, 1 of 5 calibration, 1 of 5 held out."""

    r = int(identity) % 5
    return "heldout" if r == 0 else ("calib" if r == 1 else "train")


def detect_faces(files, data_dir=SHARED) -> dict:
    """{rel: {"box", "landmarks", "detected", "id"}}: the largest dlib face (centre box when none)."""

    from ..evaluation.nuaa import detect_face
    from ..faces import FaceAnalyzer
    from ..imaging import load_image

    analyzer = FaceAnalyzer()
    out, t0 = {}, time.time()
    for i, (rel, ident) in enumerate(files):
        rgb = load_image(Path(data_dir) / rel).pixels
        face, detected = detect_face(analyzer, rgb)
        out[rel] = {"box": [int(v) for v in face.box], "landmarks": face.landmarks.tolist(), "detected": bool(detected),
                    "id": ident}
        if (i + 1) % 250 == 0:
            log(f"faces {i + 1}/{len(files)} ({time.time() - t0:.0f}s)")
    return out


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """An RGB image saved as JPEG at ``quality`` and read back (contiguous RGB)."""

    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def photo_params(rng: np.random.Generator) -> dict:
    """Random "ordinary photo" degradation: face width in pixels, JPEG quality, upscale back, grey, sharpen."""

    return {"face_px": float(rng.uniform(40, 110)), "jpeg": int(rng.integers(35, 86)), "up": bool(rng.random() < 0.5),
            "grey": bool(rng.random() < 0.15), "sharpen": float(rng.uniform(0.5, 1.5)) if rng.random() < 0.3 else 0.0}


def photo(rgb: np.ndarray, box, params: dict) -> tuple[np.ndarray, tuple]:
    """(degraded image, the face box in its pixels) of an RGB image with dlib box ``box``."""

    import cv2

    h, w = rgb.shape[:2]
    f = min(1.0, params["face_px"] / max(float(box[2] - box[0]), 1.0))
    out = cv2.resize(rgb, (max(16, round(w * f)), max(16, round(h * f))), interpolation=cv2.INTER_AREA) if f < 1 else rgb
    if params["grey"]:
        out = np.repeat(out.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    if params["sharpen"] > 0:
        soft = cv2.GaussianBlur(out, (0, 0), 1.2).astype(np.float32)
        out = np.clip(out.astype(np.float32) * (1 + params["sharpen"]) - params["sharpen"] * soft, 0, 255).astype(np.uint8)
    out = jpeg_roundtrip(out, params["jpeg"])
    scale = out.shape[1] / w
    if params["up"] and f < 1:
        out, scale = cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC), 1.0
    return np.ascontiguousarray(out), tuple(float(v) * scale for v in box)


def frame_params(rng: np.random.Generator) -> dict:
    """Random "web photo frame": window side in face-box widths, output side, rotation, border fill, JPEG."""

    return {"window": float(rng.uniform(2.2, 3.3)), "side": int(rng.integers(150, 301)), "angle": float(rng.uniform(-8, 8)),
            "shift": (float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.15, 0.05))),
            "fill": "black" if rng.random() < 0.25 else "replicate", "jpeg": int(rng.integers(50, 96))}


def frame(rgb: np.ndarray, box, params: dict) -> tuple[np.ndarray, tuple]:
    """(framed image, the face box in its pixels): a square window around the face box, rotated and
    resized to ``params["side"]`` px, the border filled where the window leaves the image, JPEG."""

    import cv2

    x0, y0, x1, y1 = (float(v) for v in box)
    bw = max(x1 - x0, 1.0)
    cx, cy = (x0 + x1) / 2 + params["shift"][0] * bw, (y0 + y1) / 2 + params["shift"][1] * bw
    side = params["side"]
    f = side / (params["window"] * bw)
    m = cv2.getRotationMatrix2D((cx, cy), params["angle"], f)
    m[0, 2] += side / 2 - cx
    m[1, 2] += side / 2 - cy
    border = cv2.BORDER_CONSTANT if params["fill"] == "black" else cv2.BORDER_REPLICATE
    out = cv2.warpAffine(np.ascontiguousarray(rgb), m, (side, side), flags=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR,
                         borderMode=border, borderValue=(0, 0, 0))
    out = jpeg_roundtrip(out, params["jpeg"])
    ncx, ncy = m @ np.array([(x0 + x1) / 2, (y0 + y1) / 2, 1.0])
    half = bw * f / 2
    return np.ascontiguousarray(out), (ncx - half, ncy - (y1 - y0) * f / 2, ncx + half, ncy + (y1 - y0) * f / 2)


def build(out_dir, per_nuaa: int = 2, seed: int = 0, data_dir=SHARED, photo_share: float = 0.0,
          frame_share: float = 0.0, captured_area: bool = False) -> dict:
    """Write ``samples.npz`` (crops, labels, sources, groups, teacher softmax) into ``out_dir``;
    ``captured_area``: crops inside the captured area, as the product places them at inference
    (:mod:`fasfinder.liveness.padding`), instead of over any black fill."""

    import torch

    from ..evaluation.nuaa import face_cache, read_split
    from ..imaging import load_image
    from ..liveness.croppair import pair_crops
    from ..liveness.minifasnet import reference_model
    from ..liveness.padding import captured_areas
    from .fas_synth import camera, camera_params, composite, make_print

    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    faces = json.loads((out_dir / "celeba_faces.json").read_text())
    nuaa = Path(data_dir) / "nuaa"
    nuaa_faces = face_cache(nuaa, "train")
    rng = np.random.default_rng(seed)
    crops, labels, sources, groups, splits = [], [], [], [], []

    def add(rgb, box, label, source, group, split="train"):
        crops.append(pair_crops(rgb, box, bounds=captured_areas(rgb, [box])[0] if captured_area else None))
        labels.append(label)
        sources.append(source)
        groups.append(group)
        splits.append(split)

    for rel, label in read_split(nuaa, "train"):
        add(load_image(nuaa / "db" / rel).pixels, nuaa_faces[rel]["box"], label, "nuaa", f"nuaa-{Path(rel).parent.name}")
    train_files = sorted(f for f, v in faces.items() if celeba_split(v["id"]) == "train" and v["detected"])
    cache: dict[str, np.ndarray] = {}

    def image(rel):
        if rel not in cache:
            cache[rel] = load_image(Path(data_dir) / rel).pixels
        return cache[rel]

    def random_print(exclude=None):
        while True:
            f = train_files[rng.integers(len(train_files))]
            if faces[f]["id"] != exclude:
                break
        return make_print(image(f), faces[f]["box"], np.asarray(faces[f]["landmarks"]), rng)

    t0 = time.time()
    for rel, label in read_split(nuaa, "train"):
        if label != 1:
            continue
        rgb, fc = load_image(nuaa / "db" / rel).pixels, nuaa_faces[rel]
        for _ in range(per_nuaa):
            spoof, sbox, _ = composite(rgb, fc["box"], *random_print(), rng)
            cam = camera_params(rng)
            add(camera(rgb, cam), fc["box"], 1, "nuaa-bg", f"nuaa-{Path(rel).parent.name}")
            add(camera(spoof, cam), sbox, 0, "nuaa-bg", f"nuaa-{Path(rel).parent.name}")
    log(f"nuaa backgrounds done ({time.time() - t0:.0f}s)")
    # CelebA: every detected image of every split as a genuine capture (train ones are training data,
    # calib ones choose the threshold and band, heldout ones are only reported); synthetic prints over
    # TRAINING backgrounds only
    for i, (rel, fc) in enumerate(sorted(faces.items())):
        if not fc["detected"]:
            continue
        split = celeba_split(fc["id"])
        rgb = image(rel) if split == "train" else load_image(Path(data_dir) / rel).pixels
        add(rgb, fc["box"], 1, "celeba", f"celeba-{fc['id']}", split)
        if split != "heldout":
            spoof, sbox, _ = composite(rgb, fc["box"], *random_print(fc["id"]), rng)
            add(camera(spoof, camera_params(rng)), sbox, 0, "celeba-print", f"celeba-{fc['id']}", split)
            if photo_share > 0 and rng.random() < photo_share:
                params = photo_params(rng)
                add(*photo(rgb, fc["box"], params), 1, "celeba-photo", f"celeba-{fc['id']}", split)
                add(*photo(spoof, sbox, params), 0, "celeba-photo-print", f"celeba-{fc['id']}", split)
            if frame_share > 0 and rng.random() < frame_share:
                params = frame_params(rng)
                add(*frame(rgb, fc["box"], params), 1, "celeba-frame", f"celeba-{fc['id']}", split)
                add(*frame(spoof, sbox, params), 0, "celeba-frame-print", f"celeba-{fc['id']}", split)
        if (i + 1) % 500 == 0:
            log(f"celeba {i + 1}/{len(faces)} ({time.time() - t0:.0f}s)")
    x = np.stack(crops)
    teacher = reference_model()
    probs = np.concatenate([teacher.softmax_crops(x[i: i + 256]) for i in range(0, len(x), 256)]).astype(np.float32)
    np.savez(out_dir / "samples.npz", crops=x, label=np.array(labels, np.int64), source=np.array(sources),
             group=np.array(groups), split=np.array(splits), teacher=probs,
             meta=np.array(json.dumps({"seed": seed, "per_nuaa": per_nuaa, "photo_share": photo_share,
                                       "frame_share": frame_share, "captured_area": captured_area})))
    return {"n": len(x), "spoof": int(np.sum(np.array(labels) == 0)), "seconds": round(time.time() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fasfinder.training.fas_distill_data", description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=["faces", "build"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=str(SHARED))
    ap.add_argument("--per-nuaa", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--photo-share", type=float, default=0.0,
                    help="share of CelebA train/calib photos also given an ordinary-photo degradation (pair)")
    ap.add_argument("--frame-share", type=float, default=0.0,
                    help="share of CelebA train/calib photos also put into a web-photo frame (pair)")
    ap.add_argument("--captured-area", action="store_true",
                    help="crops inside the captured area (as at inference), never over synthetic black fill")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.step == "faces":
        (out / "celeba_faces.json").write_text(json.dumps(detect_faces(celeba_files(a.data), a.data)))
        return 0
    print(json.dumps(build(out, a.per_nuaa, a.seed, a.data, a.photo_share, a.frame_share, a.captured_area)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
