"""Synthetic print attacks (fasfinder.training.fas_synth) and the wide-crop training transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fasfinder.training import fas_synth
from fasfinder.training.fas_wide import fold_of_group, frame_cut


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    from fasfinder.faces import FaceAnalyzer

    rgb = data.astronaut()
    face = FaceAnalyzer().detect(rgb)[0]
    return rgb, face


def test_print_and_composite_carry_the_face_geometry(astronaut):
    rgb, face = astronaut
    rng = np.random.default_rng(0)
    pimg, pface, ppts = fas_synth.make_print(rgb, face.box, face.landmarks, rng)
    h, w = pimg.shape[:2]
    # the face box and its landmarks sit inside the print
    assert pface[:, 0].min() >= 0 and pface[:, 0].max() <= w and pface[:, 1].min() >= 0 and pface[:, 1].max() <= h
    assert ppts.shape == (68, 2)
    assert (ppts[:, 0] > 0).all() and (ppts[:, 0] < w).all()
    # background: a plain grey scene with a "person" box
    bg = np.full((480, 640, 3), 120, np.uint8)
    out, box, pts = fas_synth.composite(bg, (250, 150, 400, 300), pimg, pface, ppts, rng)
    assert out.shape == bg.shape and out.dtype == np.uint8
    assert not np.array_equal(out, bg)  # the print was pasted
    x0, y0, x1, y1 = box
    assert abs((x1 - x0) - (y1 - y0)) <= 1  # dlib-like square
    # the printed face's landmarks land inside (or at the edge of) its box, which lies on the pasted print
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert np.abs(pts.mean(axis=0) - [cx, cy]).max() < (x1 - x0) * 0.5
    assert out[int(cy), int(cx)].tolist() != [120, 120, 120]


def test_synthesis_is_deterministic(astronaut):
    rgb, face = astronaut
    bg = np.full((300, 400, 3), 90, np.uint8)
    outs = []
    for _ in range(2):
        rng = np.random.default_rng(7)
        p = fas_synth.make_print(rgb, face.box, face.landmarks, rng)
        outs.append(fas_synth.composite(bg, (150, 80, 250, 180), *p, rng)[0])
    assert np.array_equal(outs[0], outs[1])


def test_camera_degrades_both_members_of_a_pair_alike(astronaut):
    rgb, _ = astronaut
    params = {"blur": 1.0, "noise": 3.0, "jpeg": 70, "seed": 5}
    a = fas_synth.camera(rgb, params)
    b = fas_synth.camera(rgb, params)
    assert np.array_equal(a, b) and not np.array_equal(a, rgb)
    assert fas_synth.camera(rgb, {"blur": 0.0, "noise": 0.0, "jpeg": 100, "seed": 0}) is not None


def test_frame_cut_blackens_outside_and_keeps_the_face():
    x = torch.ones((4, 3, 144, 144))
    rng = np.random.default_rng(0)
    y = frame_cut(x, rng, face_frac=0.25, p=1.0)
    box = 36  # face box side in a 4.0x crop of 144 px
    c0, c1 = 72 - int(0.3 * box), 72 + int(0.3 * box)
    assert bool((y[:, :, c0:c1, c0:c1] == 1).all())  # the face centre stays
    assert float(y.mean()) < 1.0  # something was cut
    fixed = frame_cut(x, rng, face_frac=0.25, fixed=1.1)
    half = int(round(1.1 * box))
    assert bool((fixed[:, :, 72 - half + 1 : 72 + half - 1, 72 - half + 1 : 72 + half - 1] == 1).all())
    assert float(fixed[:, :, :, : 72 - half - 1].abs().sum()) == 0.0


def test_folds_hold_out_whole_subjects():
    assert [fold_of_group(f"nuaa-{i:04d}", 3) for i in range(1, 10)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert {fold_of_group(f"celeba-{i}", 3) for i in range(30)} == {0, 1, 2}


def _tiny_npz(path, astronaut):
    """A 36-sample data file with the fas_synth schema (astronaut crops, NUAA-like groups)."""

    import json

    import cv2

    from fasfinder.liveness import crop_matrix, face_crop, transform_points

    rgb, face = astronaut
    rng = np.random.default_rng(0)
    jpgs, labels, sources, groups, sessions, marks = [], [], [], [], [], []
    for i in range(36):
        img = rgb if i % 2 else fas_synth.composite(rgb, face.box, *fas_synth.make_print(rgb, face.box, face.landmarks, rng), rng)[0]
        crop = face_crop(img, face.box, 4.0, 64)
        jpgs.append(np.frombuffer(cv2.imencode(".jpg", crop[..., ::-1])[1].tobytes(), np.uint8))
        marks.append(transform_points(face.landmarks, crop_matrix(face.box, 4.0, 64)))
        labels.append(i % 2)
        subject = 1 + (i // 2) % 9
        sources.append("nuaa" if i < 24 else "celeba")
        groups.append(f"nuaa-{subject:04d}" if i < 24 else f"celeba-{i}")
        sessions.append(1 + i % 2)
    data = np.empty(len(jpgs), dtype=object)
    data[:] = jpgs
    np.savez(path, jpeg=data, label=np.array(labels), source=np.array(sources), group=np.array(groups),
             session=np.array(sessions), landmarks=np.stack(marks).astype(np.float16),
             meta=np.array(json.dumps({"scale": 4.0, "size": 64, "seed": 0, "per_nuaa": 1})))


@pytest.mark.slow  # about 12 s on the shared 2-core CPU
def test_train_export_load_roundtrip(tmp_path, astronaut):
    """fas_wide trains (CPU, 1 epoch, tiny net), the export writes an ensemble card + float16 weights
    with a threshold from the held-out folds, and LivenessModel loads and runs it."""

    import json

    from fasfinder.liveness import LivenessModel
    from fasfinder.modelfiles import sha256_file
    from fasfinder.training import fas_wide

    npz = tmp_path / "tiny.npz"
    _tiny_npz(npz, astronaut)
    runs = tmp_path / "runs"
    common = ["--data", str(npz), "--device", "cpu", "--epochs", "1", "--batch", "8", "--widths", "4,4,8,8,8",
              "--net-size", "32", "--sharpness-aug"]
    for fold in (0, 1, 2):
        assert fas_wide.main(common + ["--fold", str(fold), "--out", str(runs / f"c-f{fold}")]) == 0
    assert fas_wide.main(common + ["--out", str(runs / "c-all")]) == 0
    res = json.loads((runs / "c-f0" / "result.json").read_text())
    assert {"val", "val_cut"} <= set(res) and len(res["val"]["scores"]) == 12  # subjects 0001-0003: 12 NUAA samples
    card = fas_wide.export_ensemble([str(runs / "c-all"), str(runs / "c-all")], [str(runs / "c")], "tiny-fas",
                                    out_dir=tmp_path / "models")
    assert card["architecture"]["type"] == "FasNetEnsemble" and len(card["architecture"]["windows"]) == 2
    assert 0.0 < card["threshold"] < 1.0
    weights = tmp_path / "models" / "tiny-fas.pt"
    assert sha256_file(weights) == card["files"][0]["sha256"]
    model = LivenessModel(card, weights)
    crops = np.zeros((2, 64, 64, 3), np.uint8)
    p = model.scores_from_crops(crops)
    assert p.shape == (2,) and ((p >= 0) & (p <= 1)).all()
