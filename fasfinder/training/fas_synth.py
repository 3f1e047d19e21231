"""Synthetic print attacks: more people, backgrounds and prints than NUAA's nine training subjects.

The NUAA training lists hold 9 people in 2 sessions; a liveness model trained on them alone learns
those people and rooms (docs/results/fas.md: 114 of 116 print attacks of the test session's new
people were accepted). What separates a print attack from a live face whatever the person or room
is the *print*: a flat piece of paper with edges (often a white margin) around the face, held by
hands, with the printer's contrast and colour. This module makes such attacks from training data
only, and pairs each with its live original so that the person and the room stop being cues:

* a **print** is cut from a CelebA training face image around its face (portrait proportions, face in the
  upper middle), degraded like a print (contrast, saturation, gamma, blur) and optionally given a
  paper margin;
* it is **composited** into a background image that shows a live person (a NUAA training image of
  a real face, or a CelebA in-the-wild image), covering that person's face, under a random
  rotation and perspective tilt, with lighting change, and with hand-like skin blobs over its edges;
* both the composite (spoof) and the untouched background (real) then get the SAME random camera
  degradation (blur, noise, JPEG), so the camera pipeline is no cue either.

The face box of the printed face in the composite is the source's dlib box carried through the same
geometry (no detection needed). Everything is numpy + OpenCV, deterministic given the seed.

    python -m fasfinder.training.fas_synth --nuaa ../shared/data/nuaa --celeba ../shared/data \
        --celeba-faces celeba_faces.json --out /tmp/fas-synth.npz [--per-nuaa 2] [--seed 0] [--preview preview.png]

The output npz holds JPEG-encoded wide crops (4.0 x the face box by default) with labels, sources
and group ids (NUAA subject + session, CelebA identity) for grouped validation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

#: Where synthetic samples come from (the npz's ``source`` column).
SOURCES = ("nuaa", "nuaa-bg", "celeba")


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------
def box_corners(box) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def square_box(corners: np.ndarray) -> tuple[int, int, int, int]:
    """dlib-like square box with the centre and mean side length of a (warped) quadrilateral."""

    c = corners.mean(axis=0)
    side = 0.5 * (np.linalg.norm(corners[1] - corners[0]) + np.linalg.norm(corners[2] - corners[1]))
    h = side / 2.0
    return (int(round(c[0] - h)), int(round(c[1] - h)), int(round(c[0] + h)), int(round(c[1] + h)))


def warp_points(points: np.ndarray, homography: np.ndarray) -> np.ndarray:
    pts = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ homography.T
    return pts[:, :2] / pts[:, 2:3]


# --------------------------------------------------------------------------------------------
# Prints
# --------------------------------------------------------------------------------------------
def make_print(src: np.ndarray, box, landmarks: np.ndarray, rng: np.random.Generator):
    """A "printed photo" cut from ``src`` around ``box``: (print RGB uint8, face box corners in it,
    the 68 landmarks in it)."""

    import cv2

    x0, y0, x1, y1 = (float(v) for v in box)
    fw, cx, cy = x1 - x0, (x0 + x1) / 2, (y0 + y1) / 2
    pw = fw * rng.uniform(1.4, 2.6)
    ph = pw * rng.uniform(1.1, 1.5)
    fx, fy = rng.uniform(0.42, 0.58), rng.uniform(0.38, 0.55)
    px0, py0 = cx - fx * pw, cy - fy * ph
    # the cut, with the source's border replicated where it leaves the image
    m = np.array([[1, 0, -px0], [0, 1, -py0]], np.float64)
    out_w, out_h = max(8, int(round(pw))), max(8, int(round(ph)))
    img = cv2.warpAffine(src, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    face = box_corners(box) - np.array([px0, py0])
    points = np.asarray(landmarks, np.float64) - np.array([px0, py0])
    # print look: contrast compression towards paper white, saturation, gamma, softness
    f = img.astype(np.float32) / 255.0
    grey = f.mean(axis=2, keepdims=True)
    f = grey + (f - grey) * rng.uniform(0.55, 1.1)
    f = np.clip(f, 0, 1) ** rng.uniform(0.75, 1.3)
    lo, hi = rng.uniform(0.0, 0.12), rng.uniform(0.85, 1.0)
    f = lo + (hi - lo) * f
    f = f * rng.uniform(0.92, 1.04, size=3)[None, None, :]  # ink / paper tint
    img = np.clip(f * 255.0, 0, 255).astype(np.uint8)
    sigma = rng.uniform(0.0, 1.2)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    if rng.random() < 0.6:  # paper margin (white border of a photo print)
        margin = rng.uniform(0.02, 0.1) * pw
        bottom = margin * rng.uniform(1.0, 2.5)
        paper = np.clip(rng.uniform(215, 255) * rng.uniform(0.95, 1.0, size=3), 0, 255).astype(np.uint8)
        t, b, lr = int(round(margin)), int(round(bottom)), int(round(margin))
        img = cv2.copyMakeBorder(img, t, b, lr, lr, cv2.BORDER_CONSTANT, value=tuple(int(v) for v in paper))
        face = face + np.array([lr, t])
        points = points + np.array([lr, t])
    return img, face, points


# --------------------------------------------------------------------------------------------
# Compositing
# --------------------------------------------------------------------------------------------
SKIN_TONES = np.array([[224, 172, 140], [198, 134, 100], [170, 120, 90], [141, 85, 36], [235, 190, 160], [190, 150, 130]], np.float32)


def skin_colour(bg: np.ndarray, bg_box, rng: np.random.Generator) -> np.ndarray:
    """Hand colour: the middle of the background person's face when there is one, else a palette tone."""

    if bg_box is not None and rng.random() < 0.7:
        x0, y0, x1, y1 = (int(v) for v in bg_box)
        h, w = bg.shape[:2]
        cx0, cx1 = max(0, x0 + (x1 - x0) // 3), min(w, x1 - (x1 - x0) // 3)
        cy0, cy1 = max(0, y0 + (y1 - y0) // 2), min(h, y1 - (y1 - y0) // 5)
        if cx1 > cx0 and cy1 > cy0:
            return np.median(bg[cy0:cy1, cx0:cx1].reshape(-1, 3), axis=0).astype(np.float32) * rng.uniform(0.85, 1.15)
    return SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.8, 1.1)


def draw_hands(canvas: np.ndarray, quad: np.ndarray, colour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Skin-coloured thumbs/palms over one or two edges of the print quadrilateral (in place)."""

    import cv2

    width = np.linalg.norm(quad[1] - quad[0])
    height = np.linalg.norm(quad[3] - quad[0])
    edges = [(quad[0], quad[3]), (quad[1], quad[2]), (quad[3], quad[2])]  # left, right, bottom
    picks = rng.choice(3, size=int(rng.integers(1, 3)), replace=False)
    layer = np.zeros(canvas.shape[:2], np.uint8)
    for e in picks:
        a, b = edges[e]
        p = a + (b - a) * rng.uniform(0.3, 0.8)
        centre = (int(round(p[0])), int(round(p[1])))
        axes = (int(max(3, width * rng.uniform(0.08, 0.16))), int(max(3, height * rng.uniform(0.1, 0.2))))
        angle = float(np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0])))
        cv2.ellipse(layer, centre, axes, angle, 0, 360, 255, -1)  # thumb over the edge
        out = (p - quad.mean(axis=0)) / (np.linalg.norm(p - quad.mean(axis=0)) + 1e-6)  # away from the print
        palm = p + out * width * rng.uniform(0.15, 0.3)
        cv2.ellipse(layer, (int(palm[0]), int(palm[1])), (int(axes[0] * 1.8), int(axes[1] * 1.6)), angle, 0, 360, 255, -1)
    alpha = cv2.GaussianBlur(layer, (0, 0), 1.2).astype(np.float32)[..., None] / 255.0
    shade = rng.uniform(0.85, 1.1) + rng.normal(0, 6, size=canvas.shape[:2] + (1,)).astype(np.float32) / 255.0
    hand = np.clip(colour[None, None, :] * shade, 0, 255)
    canvas[:] = (canvas * (1 - alpha) + hand * alpha).astype(np.uint8)
    return canvas


def composite(bg: np.ndarray, bg_box, print_img: np.ndarray, print_face: np.ndarray, print_points: np.ndarray,
              rng: np.random.Generator):
    """Paste the print over the background person's face: (spoof image, printed face's square box,
    its 68 landmarks in the composite)."""

    import cv2

    h, w = bg.shape[:2]
    ph, pw = print_img.shape[:2]
    pf_w = np.linalg.norm(print_face[1] - print_face[0])
    pf_c = print_face.mean(axis=0)
    if bg_box is not None:
        bx0, by0, bx1, by1 = (float(v) for v in bg_box)
        bw = bx1 - bx0
        target_w = bw * rng.uniform(0.7, 1.3)  # printed faces as large as live ones: face size is no cue
        target_c = np.array([(bx0 + bx1) / 2 + rng.uniform(-0.35, 0.35) * bw, (by0 + by1) / 2 + rng.uniform(-0.1, 0.8) * bw])
    else:
        target_w = min(h, w) * rng.uniform(0.12, 0.35)
        target_c = np.array([w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.7)])
    k = target_w / pf_w
    theta = np.radians(rng.uniform(-15, 15))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float64)
    dst = ((src - pf_c) * k) @ rot.T + target_c
    dst = dst + rng.normal(0, rng.uniform(0.0, 0.05) * k * max(pw, ph), size=(4, 2))  # perspective tilt / bend
    hom = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    warped = cv2.warpPerspective(print_img, hom, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), hom, (w, h), flags=cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur(mask, (0, 0), 0.7).astype(np.float32)[..., None] / 255.0
    light = rng.uniform(0.7, 1.15)
    if rng.random() < 0.4:  # uneven light / glare across the print
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        d = rng.normal(size=2)
        d /= np.linalg.norm(d) + 1e-6
        ramp = ((xx - target_c[0]) * d[0] + (yy - target_c[1]) * d[1]) / (target_w * 3.0)
        light = light * (1.0 + np.clip(ramp, -0.5, 0.5) * rng.uniform(0.2, 0.6))[..., None]
    out = bg.astype(np.float32) * (1 - alpha) + np.clip(warped.astype(np.float32) * light, 0, 255) * alpha
    out = out.astype(np.uint8)
    if rng.random() < 0.75:
        draw_hands(out, dst, skin_colour(bg, bg_box, rng), rng)
    face_quad = warp_points(print_face, hom)
    return out, square_box(face_quad), warp_points(print_points, hom).astype(np.float32)


def camera(img: np.ndarray, params: dict) -> np.ndarray:
    """The shared "camera" degradation applied to both members of a pair."""

    import cv2

    out = img
    if params["blur"] > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), params["blur"])
    if params["noise"] > 0:
        rng = np.random.default_rng(params["seed"])
        out = np.clip(out.astype(np.float32) + rng.normal(0, params["noise"], out.shape), 0, 255).astype(np.uint8)
    if params["jpeg"] < 100:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(params["jpeg"])])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(out)


def camera_params(rng: np.random.Generator) -> dict:
    if rng.random() < 0.4:
        return {"blur": 0.0, "noise": 0.0, "jpeg": 100, "seed": 0}
    return {"blur": float(rng.uniform(0, 1.2)), "noise": float(rng.uniform(0, 5)), "jpeg": int(rng.integers(55, 96)),
            "seed": int(rng.integers(1 << 31))}


# --------------------------------------------------------------------------------------------
# Data set
# --------------------------------------------------------------------------------------------
def encode_crop(rgb: np.ndarray, box, scale: float, size: int, quality: int = 92) -> bytes:
    import cv2

    from ..liveness import face_crop

    crop = face_crop(rgb, box, scale, size)
    ok, buf = cv2.imencode(".jpg", crop[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes()


def build(nuaa_dir, celeba_root, celeba_faces: dict, out_path, per_nuaa: int = 2, seed: int = 0, scale: float = 4.0,
          size: int = 144, preview: str | None = None) -> dict:
    """Write the training set (NUAA training lists + synthetic pairs) as JPEG crops into ``out_path``.

    Prints are cut from CelebA faces only, so a NUAA subject held out for validation appears in no
    training sample (not even as a print). Each sample keeps its 68 landmarks in crop coordinates
    (for the region-only retraining of the efficient-FAS experiment).
    """

    from ..evaluation.nuaa import face_cache, read_split, session_of
    from ..imaging import load_image
    from ..liveness import crop_matrix, transform_points

    rng = np.random.default_rng(seed)
    nuaa_dir = Path(nuaa_dir)
    faces = face_cache(nuaa_dir, "train")
    items = read_split(nuaa_dir, "train")
    jpgs, labels, sources, groups, sessions, marks = [], [], [], [], [], []
    previews = []

    def add(rgb, box, points, label, source, group, session):
        jpgs.append(np.frombuffer(encode_crop(rgb, box, scale, size), np.uint8))
        marks.append(transform_points(np.asarray(points, np.float32), crop_matrix(box, scale, size)))
        labels.append(label)
        sources.append(source)
        groups.append(group)
        sessions.append(session)

    # 1) the NUAA training images themselves
    nuaa_rgb = {}
    for rel, label in items:
        rgb = load_image(nuaa_dir / "db" / rel).pixels
        subject = Path(rel).parent.name
        add(rgb, faces[rel]["box"], faces[rel]["landmarks"], label, "nuaa", f"nuaa-{subject}", session_of(rel))
        if label == 1:
            nuaa_rgb[rel] = rgb
    celeba_root = Path(celeba_root)
    celeba_files = sorted(celeba_faces)
    celeba_cache: dict[str, np.ndarray] = {}

    def celeba_image(f):
        if f not in celeba_cache:
            celeba_cache[f] = load_image(celeba_root / "Celeb" / f).pixels
        return celeba_cache[f]

    def random_print(exclude_identity: str | None = None):
        while True:
            f = celeba_files[rng.integers(len(celeba_files))]
            if celeba_faces[f]["id"] != exclude_identity:
                break
        fc = celeba_faces[f]
        return make_print(celeba_image(f), fc["box"], np.asarray(fc["landmarks"]), rng)

    t0 = time.time()
    # 2) NUAA real training images as backgrounds: (degraded real, spoof) pairs, group = the background's subject
    for i, (rel, rgb) in enumerate(sorted(nuaa_rgb.items())):
        subject = Path(rel).parent.name
        for _ in range(per_nuaa):
            spoof, sbox, spts = composite(rgb, faces[rel]["box"], *random_print(), rng)
            cam = camera_params(rng)
            add(camera(rgb, cam), faces[rel]["box"], faces[rel]["landmarks"], 1, "nuaa-bg", f"nuaa-{subject}", session_of(rel))
            add(camera(spoof, cam), sbox, spts, 0, "nuaa-bg", f"nuaa-{subject}", session_of(rel))
            if preview and len(previews) < 12 and i % 25 == 0:
                previews.append((spoof, sbox))
        if (i + 1) % 100 == 0:
            log(f"nuaa backgrounds {i + 1}/{len(nuaa_rgb)} ({time.time() - t0:.0f}s)")
    # 3) CelebA in-the-wild images as backgrounds, prints of OTHER CelebA identities
    for i, f in enumerate(celeba_files):
        rgb = celeba_image(f)
        fc = celeba_faces[f]
        spoof, sbox, spts = composite(rgb, fc["box"], *random_print(fc["id"]), rng)
        cam = camera_params(rng)
        add(camera(rgb, cam), fc["box"], fc["landmarks"], 1, "celeba", f"celeba-{fc['id']}", 0)
        add(camera(spoof, cam), sbox, spts, 0, "celeba", f"celeba-{fc['id']}", 0)
        if preview and len(previews) < 24 and i % 150 == 0:
            previews.append((spoof, sbox))
        if (i + 1) % 400 == 0:
            log(f"celeba backgrounds {i + 1}/{len(celeba_files)} ({time.time() - t0:.0f}s)")
    # the JPEGs packed into one uint8 buffer + offsets: no object array, so loading needs no pickle
    offsets = np.cumsum([0] + [len(j) for j in jpgs]).astype(np.int64)
    np.savez(out_path, jpeg_bytes=np.concatenate(jpgs).astype(np.uint8), jpeg_offsets=offsets, label=np.array(labels, np.int64), source=np.array(sources), group=np.array(groups),
             session=np.array(sessions, np.int64), landmarks=np.stack(marks).astype(np.float16),
             meta=np.array(json.dumps({"scale": scale, "size": size, "seed": seed, "per_nuaa": per_nuaa})))
    if preview:
        write_preview(previews, preview)
    return {"n": len(jpgs), "spoof": int(np.sum(np.array(labels) == 0)), "bytes": int(sum(len(j) for j in jpgs))}


def write_preview(previews, path) -> None:
    import cv2

    from ..liveness import face_crop

    tiles = [face_crop(img, box, 4.0, 160) for img, box in previews]
    while len(tiles) % 6:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + 6]) for i in range(0, len(tiles), 6)]
    cv2.imwrite(str(path), np.vstack(rows)[..., ::-1])


def load(path) -> dict:
    """The npz written by :func:`build`, JPEGs decoded: {"images": N x S x S x 3 uint8, ...}."""

    import cv2

    z = np.load(path, allow_pickle=False)
    if "jpeg_offsets" in z.files:
        buf, off = z["jpeg_bytes"], z["jpeg_offsets"]
        jpegs = [buf[off[i]:off[i + 1]] for i in range(len(off) - 1)]
    else:
        # files written before the packed layout hold the JPEGs as an object array, which only
        # unpickling can read: only that one array, and only from a file the user names (not a cache)
        jpegs = list(np.load(path, allow_pickle=True)["jpeg"])
    images = np.stack([cv2.imdecode(np.asarray(j, np.uint8), cv2.IMREAD_COLOR)[..., ::-1] for j in jpegs])
    return {"images": images, "label": z["label"], "source": z["source"], "group": z["group"], "session": z["session"],
            "landmarks": z["landmarks"].astype(np.float32), "meta": json.loads(str(z["meta"]))}


def detect_celeba(celeba_root, out_path) -> dict:
    """dlib HOG on every CelebA subset image: {file: {box, landmarks, n, id, hw}} of the largest face
    (files without a face are left out), written to ``out_path`` as JSON."""

    from ..faces import FaceAnalyzer
    from ..imaging import load_image

    root = Path(celeba_root)
    lines = [ln.split() for ln in (root / "identity_CelebA_subset.txt").read_text().splitlines() if ln.strip()]
    analyzer = FaceAnalyzer()
    out = {}
    t0 = time.time()
    for i, (f, ident) in enumerate(lines):
        rgb = load_image(root / "Celeb" / f).pixels
        faces = analyzer.detect(rgb)
        if faces:
            fc = max(faces, key=lambda x: x.width * x.height)
            out[f] = {"box": [int(v) for v in fc.box], "landmarks": fc.landmarks.tolist(), "n": len(faces), "id": ident,
                      "hw": list(rgb.shape[:2])}
        if (i + 1) % 200 == 0:
            log(f"celeba faces {i + 1}/{len(lines)} ({time.time() - t0:.0f}s)")
    Path(out_path).write_text(json.dumps(out))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nuaa", required=True)
    ap.add_argument("--celeba", required=True, help="folder holding celeba_subset/")
    ap.add_argument("--celeba-faces", required=True, help="JSON {file: {box, landmarks, id}} of dlib detections on "
                    "celeba_subset/Celeb (made here first when it does not exist)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-nuaa", type=int, default=2)
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=144)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preview", default="")
    args = ap.parse_args(argv)
    faces_path = Path(args.celeba_faces)
    if faces_path.is_file():
        faces = json.loads(faces_path.read_text())
    else:
        faces = detect_celeba(Path(args.celeba) / "celeba_subset", faces_path)
    t0 = time.time()
    summary = build(args.nuaa, Path(args.celeba) / "celeba_subset", faces, args.out, args.per_nuaa, args.seed, args.scale,
                    args.size, args.preview or None)
    summary["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
