"""Liveness model: loading + integrity, predict, Grad-CAM++ heatmap, Area Importance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fasfinder import modelfiles
from fasfinder.errors import ModelError, ModelIntegrityError
from fasfinder.regions import REGION_NAMES

REPO = Path(__file__).resolve().parent.parent
NUAA = REPO.parent / "shared" / "data" / "nuaa"

liveness = pytest.importorskip("fasfinder.liveness")
DLIB_CARD = "fas-nuaa-dlib"


@pytest.fixture(scope="module")
def model():
    return liveness.default_liveness_model()


@pytest.fixture(scope="module")
def dlib_model():
    """The frozen-dlib-trunk model (fas-nuaa-dlib): not the default (worse on the NUAA test
    subset, docs/results/fas.md), but shipped and loadable by name."""

    return liveness.LivenessModel.from_card(DLIB_CARD)


@pytest.fixture(scope="module")
def astronaut_face():
    from skimage import data

    from fasfinder.faces import FaceAnalyzer

    rgb = data.astronaut()
    faces = FaceAnalyzer().detect(rgb)
    assert faces, "dlib finds the astronaut's face"
    return rgb, faces


def test_card_lists_sha256_of_weights(model):
    card = modelfiles.load_card(liveness.DEFAULT_MODEL)
    entry = next(f for f in card["files"] if f["name"] == "weights")
    assert modelfiles.sha256_file(modelfiles.models_dir() / entry["path"]) == entry["sha256"]
    assert 0.0 < model.threshold < 1.0
    assert model.name == card["name"]


def test_default_model_is_cached(model):
    assert liveness.default_liveness_model() is model


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    src = modelfiles.models_dir()
    card = json.loads((src / f"{liveness.DEFAULT_MODEL}.card.json").read_text())
    shutil.copy(src / f"{liveness.DEFAULT_MODEL}.card.json", tmp_path)
    weights = card["files"][0]["path"]
    data = bytearray((src / weights).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / weights).write_bytes(bytes(data))
    monkeypatch.setenv("FASFINDER_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelIntegrityError):
        liveness.LivenessModel.from_card(liveness.DEFAULT_MODEL)


def test_missing_weights_raise_model_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FASFINDER_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError):
        liveness.LivenessModel.from_card(liveness.DEFAULT_MODEL)


def test_predict_astronaut(model, astronaut_face):
    rgb, faces = astronaut_face
    out = model.predict(rgb, faces)
    assert len(out) == len(faces)
    for v in out:
        assert v.label in ("real", "spoof")
        assert 0.0 <= v.score <= 1.0
        assert v.model == model.name
        d = v.to_dict()
        assert set(d) == {"label", "score"} and d["score"] == round(v.score, 4)
    assert model.predict(rgb, []) == []


def test_explain_astronaut(model, astronaut_face):
    rgb, faces = astronaut_face
    heatmap, importance = model.explain(rgb, faces[0])
    assert heatmap.shape == rgb.shape[:2]
    assert heatmap.dtype == np.float32
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    assert list(importance) == list(REGION_NAMES) and len(importance) == 10
    assert all(0.0 <= v <= 1.0 for v in importance.values())
    # zero outside the crop, non-zero somewhere on the face
    x0, y0, x1, y1 = faces[0].box
    assert heatmap[y0:y1, x0:x1].max() > 0.0


def test_crop_matrix_matches_crop():
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[90:110, 140:160] = 255  # a white square at the box centre
    box = (120, 70, 180, 130)
    crop = liveness.face_crop(rgb, box, 2.0, 64)
    m = liveness.crop_matrix(box, 2.0, 64)
    cx, cy = m @ np.array([150.0, 100.0, 1.0])
    assert abs(cx - 32) <= 1 and abs(cy - 32) <= 1
    assert crop[32, 32].min() > 200 and crop[2, 2].max() == 0


def test_dlib_card_describes_frozen_dlib_head(dlib_model):
    model = dlib_model
    card = modelfiles.load_card(DLIB_CARD)
    entry = next(f for f in card["files"] if f["name"] == "weights")
    assert modelfiles.sha256_file(modelfiles.models_dir() / entry["path"]) == entry["sha256"]
    arch = card["architecture"]
    assert arch["type"] == "DlibStatsFas" and model.arch_type == "DlibStatsFas"
    assert arch["dim"] == model.net.dim == model.net.head.in_features
    # only the head is trainable (the dlib trunk is frozen and loaded from dlib's checked .dat)
    trainable = [n for n, p in model.net.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]
    # the threshold rule is training-data only and recorded with its validation
    assert "cross-session" in card["threshold_rule"] and card["validation"]["pooled"]["threshold"] == pytest.approx(card["threshold"])


def test_score_is_sigmoid_of_head_logit(dlib_model, astronaut_face):
    import torch

    model = dlib_model
    rgb, faces = astronaut_face
    crop = model.crops(rgb, faces[:1])
    with torch.inference_mode():
        x = model.net.preprocess(crop)
        z = float(model.net.logit_from_features(model.net.features(x))[0])
    assert model.scores_from_crops(crop)[0] == pytest.approx(1.0 / (1.0 + np.exp(-z)), abs=1e-6)


@pytest.mark.parametrize("which", ["default", "dlib"])
def test_flat_grey_card_is_not_called_real(which, model, dlib_model):
    # a uniform grey square has no skin texture at all: neither model may call it live
    m = model if which == "default" else dlib_model
    crop = np.full((1, int(m.input["size"]), int(m.input["size"]), 3), 128, np.uint8)
    assert m.scores_from_crops(crop)[0] < m.threshold


def test_dlib_explain_astronaut(dlib_model, astronaut_face):
    rgb, faces = astronaut_face
    heatmap, importance = dlib_model.explain(rgb, faces[0])
    assert heatmap.shape == rgb.shape[:2] and heatmap.dtype == np.float32
    assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0 and heatmap.max() > 0.0
    assert list(importance) == list(REGION_NAMES)
    assert all(0.0 <= v <= 1.0 for v in importance.values())


def test_cam_is_target_sensitive(dlib_model, astronaut_face):
    model = dlib_model
    rgb, faces = astronaut_face
    crop = model.crops(rgb, faces[:1])[0]
    spoof_map, t0 = model.cam_from_crop(crop, target=0)
    real_map, t1 = model.cam_from_crop(crop, target=1)
    assert (t0, t1) == (0, 1)
    assert spoof_map.shape == real_map.shape == crop.shape[:2]
    assert not np.allclose(spoof_map, real_map)


def test_unknown_architecture_is_a_model_error():
    card = dict(modelfiles.load_card(DLIB_CARD))
    card["architecture"] = {"type": "NoSuchNet"}
    with pytest.raises(ModelError):
        liveness.LivenessModel(card)


@pytest.mark.skipif(not NUAA.is_dir(), reason=f"NUAA data not present at {NUAA}")
@pytest.mark.xfail(strict=False, reason="known: the shipped fas-nuaa-cnn misses the ACER target (15.5% on the NUAA "
                   "session-3 test subset; docs/results/fas.md); real images of subject 0004 are rejected")
def test_nuaa_handful_classified(model):
    from fasfinder.faces import FaceAnalyzer
    from fasfinder.imaging import load_image
    from fasfinder.training.fas import detect_face, read_split

    items = read_split(NUAA, "test")
    picks = items[:: len(items) // 6][:6]  # 3 real, 3 spoof, spread over subjects
    analyzer = FaceAnalyzer()
    for rel, label in picks:
        rgb = load_image(NUAA / "db" / rel).pixels
        face, _ = detect_face(analyzer, rgb)
        verdict = model.predict(rgb, [face])[0]
        assert verdict.label == ("real" if label == 1 else "spoof"), (rel, verdict)
