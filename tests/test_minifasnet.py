"""The reference MiniFASNet pair (fasfinder.liveness.minifasnet): our network definitions load the
third-party state dicts strictly, the crop rule, parity with the original pipeline's outputs
(reference.jsonl) and the typed error when the weights are absent."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fasfinder.errors import ModelError
from fasfinder.liveness import minifasnet as mf

from .conftest import shared_data, shared_models


# -- crop rule (inputs made here) ------------------------------------------------------------
def test_crop_box_centred_inside_the_image():
    # box 100x80 at (200, 150) in a 640x480 image, scale 2: 200x160 about the centre (250, 190)
    assert mf.crop_box((200, 150, 100, 80), (480, 640), 2.0) == (150, 110, 350, 270)


def test_crop_box_shifted_back_inside_at_the_border():
    x0, y0, x1, y1 = mf.crop_box((10, 400, 100, 60), (480, 640), 2.7)
    assert x0 == 0 and y1 == 479  # shifted, not clipped: the size is kept
    assert x1 - x0 == pytest.approx(270, abs=1) and y1 - y0 == pytest.approx(162, abs=1)


def test_crop_box_scale_capped_to_fit():
    # 4.0 x a 200x200 box cannot fit 640x480: the scale is capped to (480-1)/200 on both axes
    x0, y0, x1, y1 = mf.crop_box((220, 140, 200, 200), (480, 640), 4.0)
    assert (y0, y1) == (0, 479)
    assert x1 - x0 == pytest.approx(479, abs=1)


def test_crop_is_80x80_bgr():
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    out = mf.crop(img, (60, 40, 40, 40), 2.7)
    assert out.shape == (80, 80, 3) and out.dtype == np.uint8


def test_dlib_map_is_linear_in_the_box():
    m = {"cx": 0.1, "cy": -0.2, "w": 0.9, "h": 1.1}
    x, y, w, h = mf.dlib_to_retina((100, 100, 200, 200), m)
    assert (x + w / 2, y + h / 2, w, h) == pytest.approx((160.0, 130.0, 90.0, 110.0))


# -- weights ---------------------------------------------------------------------------------
def test_missing_weights_raise_model_missing(tmp_path, monkeypatch):
    monkeypatch.setenv(mf.ENV_DIR, str(tmp_path))
    with pytest.raises(ModelError) as exc:
        mf.MiniFasNetPair()
    assert exc.value.code == "model_missing"
    assert mf.MEMBERS[0][0] in str(exc.value) and mf.ENV_DIR in str(exc.value)


def test_env_dir_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv(mf.ENV_DIR, str(tmp_path / "elsewhere"))
    assert mf.default_dir() == tmp_path / "elsewhere"


@pytest.mark.parametrize("file,kind,params", [
    ("2.7_80x80_MiniFASNetV2.pth", "MiniFASNetV2", 444_978),
    ("4_0_0_80x80_MiniFASNetV1SE.pth", "MiniFASNetV1SE", 444_610),
])
def test_state_dicts_load_strictly(file, kind, params):
    import torch

    path = shared_models("minifasnet") / file
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    assert all(k.startswith("module.") for k in state)
    net = mf.build_network(kind)
    own = net.state_dict()
    assert set(own) == {k[len("module."):] for k in state}  # same names, nothing extra, nothing missing
    assert all(tuple(own[k[7:]].shape) == tuple(v.shape) for k, v in state.items())
    assert sum(v.numel() for v in own.values()) == params  # SOURCE.md's count: every stored element
    mf.load_network(path, kind)  # strict load succeeds


def test_wrong_state_dict_is_a_typed_error(tmp_path):
    import torch

    path = shared_models("minifasnet") / mf.MEMBERS[0][0]
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    state.pop("module.prob.weight")
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ModelError):
        mf.load_network(bad, "MiniFASNetV2")
    with pytest.raises(ModelError):  # V2 weights do not fit V1SE's widths
        mf.load_network(path, "MiniFASNetV1SE")


# -- parity with the original pipeline -------------------------------------------------------
def test_softmax_parity_given_reference_boxes(one_torch_thread):
    import cv2

    models = shared_models("minifasnet")
    db = shared_data("nuaa") / "db"
    refs = [json.loads(line) for line in (models / "reference.jsonl").read_text().splitlines() if line.strip()]
    sample = refs[::10]  # 40 of the 400, live and attack, train and test lists
    pair = mf.MiniFasNetPair(models)
    worst = 0.0
    for r in sample:
        probs = pair.softmax_bgr(cv2.imread(str(db / r["path"])), [r["box"]])[0]
        ref = np.array([r["models"][f] for f, _, _ in mf.MEMBERS])
        worst = max(worst, float(np.abs(probs - ref).max()))
        labels, scores = pair.fuse(probs[None])
        assert int(labels[0]) == r["label"], r["path"]
        assert scores[0] == pytest.approx(r["score"], abs=1e-4) or r["label"] != 1
    assert worst < 1e-4, worst


def test_predict_and_explain_on_a_product_face(one_torch_thread):
    from fasfinder.evaluation.nuaa import detect_face
    from fasfinder.faces import FaceAnalyzer
    from fasfinder.imaging import load_image

    models = shared_models("minifasnet")
    db = shared_data("nuaa") / "db"
    r = json.loads((models / "reference.jsonl").read_text().splitlines()[0])
    rgb = load_image(db / r["path"]).pixels
    face, _ = detect_face(FaceAnalyzer(), rgb)
    pair = mf.reference_model(models)
    v = pair.predict(rgb, [face])[0]
    assert v.label in ("real", "spoof") and 0.0 <= v.score <= 1.0 and v.model == "minifasnet"
    hm, imp = pair.explain(rgb, face)
    assert hm.shape == rgb.shape[:2] and 0.0 <= hm.min() and hm.max() <= 1.0 and hm.max() > 0.5
    assert len(imp) == 10


def test_eval_fas_selects_the_pair_by_name(tmp_path, monkeypatch):
    from fasfinder.evaluation.fas import evaluate_fas

    (tmp_path / "nuaa" / "db").mkdir(parents=True)
    monkeypatch.setenv(mf.ENV_DIR, str(tmp_path / "absent"))
    with pytest.raises(ModelError) as exc:  # "minifasnet" is not a model card: the pair is looked up, and is absent here
        evaluate_fas(tmp_path / "nuaa", model="minifasnet")
    assert exc.value.code == "model_missing" and mf.ENV_DIR in str(exc.value)
