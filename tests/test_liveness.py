"""Liveness model: loading + integrity, predict, Grad-CAM++ heatmap, Area Importance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fasfinder import liveness, modelfiles
from fasfinder.errors import ModelError, ModelIntegrityError
from fasfinder.regions import REGION_NAMES

REPO = Path(__file__).resolve().parent.parent

DLIB_CARD = "fas-nuaa-dlib"
#: The previous default, kept as a selectable research model (the default is now the distilled
#: student: tests/test_liveness_student.py).
WIDE = "fas-nuaa-wide"


@pytest.fixture(scope="module")
def model():
    return liveness.load_liveness_model(WIDE)


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
    card = modelfiles.load_card(WIDE)
    entry = next(f for f in card["files"] if f["name"] == "weights")
    assert modelfiles.sha256_file(modelfiles.models_dir() / entry["path"]) == entry["sha256"]
    assert 0.0 < model.threshold < 1.0
    assert model.name == card["name"]


def test_model_is_cached(model):
    assert liveness.load_liveness_model(WIDE) is model


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    src = modelfiles.models_dir()
    card = json.loads((src / f"{WIDE}.card.json").read_text())
    shutil.copy(src / f"{WIDE}.card.json", tmp_path)
    weights = card["files"][0]["path"]
    data = bytearray((src / weights).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / weights).write_bytes(bytes(data))
    monkeypatch.setenv("FASFINDER_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelIntegrityError):
        liveness.LivenessModel.from_card(WIDE)


def test_missing_weights_raise_model_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FASFINDER_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError):
        liveness.LivenessModel.from_card(WIDE)


def test_predict_astronaut(model, astronaut_face):
    rgb, faces = astronaut_face
    out = model.predict(rgb, faces)
    assert len(out) == len(faces)
    for v in out:
        assert v.label in ("real", "spoof")
        assert 0.0 <= v.score <= 1.0
        assert v.model == model.name
        d = v.to_dict()
        assert set(d) == {"label", "score"} and d["score"] == round(v.score, 6)
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


@pytest.mark.parametrize("which", [
    pytest.param("wide", marks=pytest.mark.xfail(strict=True, reason=(
        "known limit of fas-nuaa-wide: it looks for the print (paper edges, margin, hands) in the wide crop; a "
        "crop with nothing in it shows none, so it is called live (score 0.81). A print filling the whole frame "
        "would show none either (not in NUAA; not measured) - docs/results/fas.md, README limits"))),
    "dlib",
])
def test_flat_grey_card_is_not_called_real(which, model, dlib_model):
    # a uniform grey square has no skin texture at all: no model should call it live
    m = model if which == "wide" else dlib_model
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


@pytest.mark.slow  # about 11 s: 40 NUAA images through the default model
def test_nuaa_sample_separates_real_from_print(model):
    """Regression guard on 40 test-subset images (20 real, 20 print, spread over subjects): the
    shipped model ranks them well and errs rarely. (The full protocol misses the ACER <= 0.5%
    target: 5.0% - docs/results/fas.md; this only catches a broken model or input pipeline.)"""

    from fasfinder.evaluation.nuaa import detect_face, fas_metrics, read_split
    from fasfinder.faces import FaceAnalyzer
    from fasfinder.imaging import load_image

    from .conftest import shared_data

    nuaa = shared_data("nuaa")  # skips when ../shared/data is absent
    items = read_split(nuaa, "test")
    real = [it for it in items if it[1] == 1][::15][:20]
    spoof = [it for it in items if it[1] == 0][::15][:20]
    analyzer = FaceAnalyzer()
    scores = {0: [], 1: []}
    for rel, label in real + spoof:
        rgb = load_image(nuaa / "db" / rel).pixels
        face, _ = detect_face(analyzer, rgb)
        scores[label].append(model.predict(rgb, [face])[0].score)
    m = fas_metrics(np.array(scores[1]), np.array(scores[0]), model.threshold)
    assert m["auc"] >= 0.95, m
    assert m["acer"] <= 0.15, m


def test_ensemble_card_matches_its_members(model):
    """The default card is an ensemble: its score is the mean of the members' probabilities, each
    member looking at its own window of the same stored crop."""

    import torch

    assert model.arch_type == "FasNetEnsemble"
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(3, model.input["size"], model.input["size"], 3), dtype=np.uint8)
    p = model.scores_from_crops(crops)
    x = model.net.preprocess(crops)
    with torch.inference_mode():
        per = [torch.softmax(m(xi), 1)[:, 1].double().numpy() for m, xi in zip(model.net.members, model.net.member_inputs(x))]
    np.testing.assert_allclose(p, np.mean(per, axis=0), rtol=1e-5, atol=1e-6)
    assert sorted(set(m.window for m in model.net.members)) == sorted(set(model.card["architecture"]["windows"]))


def test_training_and_inference_see_the_same_pixels(model):
    """fas_wide's un-jittered batch transform == the model's own preprocess (one resampling)."""

    import torch

    from fasfinder.training.fas_wide import augment_batch

    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, size=(2, 144, 144, 3), dtype=np.uint8)
    for member in model.net.members[:2]:
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
        a = augment_batch(x, rng, member.window, member.net_size, jitter=False)
        b = member.preprocess(crops)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_window_cam_is_zero_outside_the_window():
    from fasfinder.liveness import paste_window, window_box

    x0, y0, side = window_box(144, 0.675)
    assert side == 97 and x0 == y0 == 24
    cam = paste_window(np.ones((side, side), np.float32), x0, y0, (144, 144))
    assert cam[y0 : y0 + side, x0 : x0 + side].min() == 1.0
    assert cam.sum() == side * side  # nothing outside
    edge = paste_window(np.ones((40, 40), np.float32), -10, 120, (144, 144))  # clipped at the borders
    assert edge.sum() == 30 * 24


@pytest.mark.parametrize("name, cls", [("fas-nuaa-wide", "FasNetEnsemble"), ("fas-nuaa-cnn", "FasNet"),
                                       ("fas-nuaa-dlib", "DlibStatsFas")])
def test_shipped_weights_load_into_the_module_level_networks(name, cls):
    """The three networks are plain nn.Module classes; each shipped file's keys are exactly theirs."""

    import torch

    from fasfinder.liveness import networks

    m = liveness.LivenessModel.from_card(name)
    assert type(m.net) is getattr(networks, cls) and type(m.net).__module__ == "fasfinder.liveness.networks"
    stored = torch.load(modelfiles.card_file(m.card, "weights"), map_location="cpu", weights_only=True)
    if cls == "DlibStatsFas":  # the head is stored; the frozen trunk comes from dlib's checked .dat
        assert set(stored) == {"mu", "sd", "weight", "bias"}
    else:
        assert list(stored) == list(m.net.state_dict())


def test_importing_the_package_loads_no_torch():
    import subprocess
    import sys

    code = ("import sys, fasfinder.liveness as l; l.face_crop, l.window_box, l.LivenessModel; "
            "assert 'torch' not in sys.modules; l.build_network; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
