"""PyTorch port of dlib's ResNet: the .dat reader, the network, parity with dlib, the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fasfinder import modelfiles
from fasfinder.engines import dlib_torch
from fasfinder.modelfiles import dlib_file

from .conftest import shared_data

TOL = 1e-4
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def analyzer():
    from fasfinder.faces import FaceAnalyzer

    return FaceAnalyzer()


@pytest.fixture(scope="module")
def astronaut_chips(analyzer):
    from skimage import data

    from fasfinder.faces import face_chip

    rgb = data.astronaut()
    faces = analyzer.detect(rgb)
    assert faces, "dlib finds the astronaut's face"
    chips = [face_chip(rgb, f) for f in faces]
    return rgb, faces, chips + [np.ascontiguousarray(c[:, ::-1]) for c in chips]


@pytest.fixture(scope="module")
def dlib_ref():
    from fasfinder.engines.dlib_resnet import DlibResNetEngine

    return DlibResNetEngine()


def test_reader_finds_dlib_structure():
    w = dlib_torch.read_dlib_resnet(dlib_file("resnet"))
    assert w.input_size == 150
    assert np.allclose(w.means, (122.782, 117.001, 104.298), atol=1e-3)
    assert len(w.convs) == 29 and len(w.affines) == 29
    assert w.convs[0].weight.shape == (32, 3, 7, 7) and w.convs[0].stride == 2 and w.convs[0].padding == 0
    # k//2 padding at stride 1, 0 at stride 2: the module builds exactly these convolutions
    model = dlib_torch.load_model()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    for spec, conv in zip(w.convs, convs):
        assert spec.stride == conv.stride[0] and spec.padding == conv.padding[0]
        assert tuple(spec.weight.shape) == tuple(conv.weight.shape)
    assert w.fc.shape == (128, 256)


def test_add_zero_padded_keeps_larger_size_top_left():
    a = torch.ones(1, 4, 3, 3)
    b = torch.full((1, 2, 4, 4), 10.0)
    out = dlib_torch.add_zero_padded(a, b)
    assert out.shape == (1, 4, 4, 4)
    assert out[0, 0, 0, 0] == 11 and out[0, 0, 3, 3] == 10 and out[0, 3, 0, 0] == 1 and out[0, 3, 3, 3] == 0


def test_parity_with_dlib_on_astronaut(astronaut_chips, dlib_ref):
    _, _, chips = astronaut_chips
    ref = dlib_ref.descriptors_from_chips(chips)
    plain = dlib_torch.load_model(fused=False)
    with torch.inference_mode():
        out_plain = plain(plain.preprocess(np.stack(chips))).numpy()
    out_engine = dlib_torch.DlibTorchEngine().descriptors_from_chips(chips)
    for out in (out_plain, out_engine):
        assert np.abs(out - ref).max() <= TOL
        cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
        assert cos.min() >= 0.99999


def test_engine_registered_and_embeds_like_dlib(astronaut_chips, dlib_ref):
    from fasfinder.engines import engine_names, get_engine

    assert "dlib-resnet-torch" in engine_names()
    eng = get_engine("dlib-resnet-torch")
    ref = dlib_ref
    rgb, faces, _ = astronaut_chips
    for flip in (False, True):
        e = eng.embed_faces(rgb, faces, flip=flip)
        r = ref.embed_faces(rgb, faces, flip=flip)
        assert e.shape == (len(faces), 128) and e.dtype == np.float32
        assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
        assert np.abs(e - r).max() <= TOL
    assert eng.embed_faces(rgb, []).shape == (0, 128)


def test_converted_tensors_cache_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    modelfiles.forget_cached_models(dlib_torch.STATE_DICT_KEY)
    a = dlib_torch.load_model()  # converts and writes the cache
    assert list(tmp_path.rglob("dlib-resnet-torch-*.pt"))
    modelfiles.forget_cached_models(dlib_torch.STATE_DICT_KEY)
    b = dlib_torch.load_model()  # reads the cache (torch.load weights_only=True)
    for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_parity_on_lfw_sample(dlib_ref, analyzer):
    from fasfinder.faces import face_chip
    from fasfinder.imaging import load_image

    LFW = shared_data("lfw") / "images_deepfunneled"
    fa = analyzer
    chips = []
    for f in sorted(LFW.glob("*/*.jpg"))[:3]:
        rgb = load_image(f).pixels
        h, w = rgb.shape[:2]  # deep-funneled faces are centred: landmarks in the central box
        face = fa.face_at(rgb, (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
        chips.append(face_chip(rgb, face))
    ref = dlib_ref.descriptors_from_chips(chips)
    out = dlib_torch.DlibTorchEngine().descriptors_from_chips(chips)
    assert np.abs(out - ref).max() <= TOL
