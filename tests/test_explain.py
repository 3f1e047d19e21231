"""Grad-CAM++ explanations on the PyTorch port of dlib's ResNet."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from fasfinder import explain
from fasfinder.engines.dlib_torch import load_model
from fasfinder.faces import FaceAnalyzer
from fasfinder.regions import REGION_NAMES
from fasfinder.results import overlay

from .conftest import shared_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rho(a, b) -> float:
    return float(spearmanr(np.ravel(a), np.ravel(b))[0])


@pytest.fixture(scope="module")
def analyzer():
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def astronaut(analyzer):
    from skimage import data

    rgb = data.astronaut()
    faces = analyzer.detect(rgb)
    assert faces
    return rgb, faces[0]


@pytest.fixture(scope="module")
def face_explanation(astronaut):
    return explain.explain_face(*astronaut)


def test_explain_face_result(astronaut, face_explanation):
    rgb, face = astronaut
    e = face_explanation
    assert e.target == "self" and e.layer == explain.DEFAULT_LAYER
    assert e.heatmap.shape == rgb.shape[:2] and e.heatmap.dtype == np.float32
    assert e.chip_heatmap.shape == (150, 150) and e.chip_heatmap.dtype == np.float32
    for h in (e.heatmap, e.chip_heatmap):
        assert h.min() >= 0 and h.max() <= 1
    assert e.chip_heatmap.max() > 0.9 and e.chip_heatmap.std() > 0.05  # a real map, not noise/zeros
    # mapped back into the image: energy near the face, zero far outside the chip
    x0, y0, x1, y1 = face.box
    assert e.heatmap[y0:y1, x0:x1].mean() > 0.1
    assert e.heatmap[-20:, -20:].max() == 0 and e.heatmap[:10, :10].max() == 0
    assert set(e.regions) == set(REGION_NAMES)
    assert all(0 <= v <= 1 for v in e.regions.values())


def test_self_cosine_has_no_gradient_so_projection_is_used(astronaut):
    """Why the self target is the projection: cos(f, f.detach()) is flat at its maximum."""

    from fasfinder.faces import face_chip

    ex = explain.default_explainer()
    chip = face_chip(*astronaut)
    emb = ex.embed_chips([chip])[0]
    cos_map, cos_score = ex.chip_cams([chip], [explain.SimilarityToConceptTarget(emb, "cosine")])
    assert cos_score[0] == pytest.approx(1.0, abs=1e-5)
    proj_map, proj_score = ex.chip_cams([chip], [explain.SimilarityToConceptTarget(emb, "projection")])
    assert proj_score[0] == pytest.approx(np.linalg.norm(emb), rel=1e-5)
    assert proj_map.std() > 0.05


def test_maps_equal_pytorch_grad_cam_on_the_dlib_port(astronaut, analyzer):
    """explain's maps (fasfinder.gradcam) are the reference package's GradCAMPlusPlus maps."""

    from pytorch_grad_cam import GradCAMPlusPlus

    from fasfinder.faces import face_chip

    rgb, face = astronaut
    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    chips = [face_chip(rgb, face), face_chip(mirrored, analyzer.detect(mirrored)[0])]
    ex = explain.default_explainer()
    emb = ex.embed_chips(chips)
    targets = [explain.SimilarityToConceptTarget(emb[0], "projection"), explain.SimilarityToConceptTarget(emb[0], "cosine")]
    ours, scores = ex.chip_cams(chips, targets)
    with GradCAMPlusPlus(model=ex.model, target_layers=[ex.model.get_submodule(ex.layer)]) as cam:
        ref = cam(input_tensor=ex._inputs(chips), targets=targets)
    ex.model.zero_grad(set_to_none=True)
    assert ours.shape == ref.shape == (2, 150, 150)
    assert np.abs(ours - ref).max() < 1e-5
    assert scores[0] == pytest.approx(np.linalg.norm(emb[0]), rel=1e-5) and -1 <= scores[1] <= 1


def _occlude_eyes(rgb, face):
    out = rgb.copy()
    lm = face.landmarks
    y0 = int(lm[36:48, 1].min()) - 6
    y1 = int(lm[36:48, 1].max()) + 6
    x0, x1 = int(lm[36:48, 0].min()) - 6, int(lm[36:48, 0].max()) + 6
    out[y0:y1, x0:x1] = 128
    return out


def test_match_map_changes_with_gallery_face(astronaut, analyzer):
    rgb, face = astronaut
    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    g1 = (mirrored, analyzer.detect(mirrored)[0])
    occluded = _occlude_eyes(rgb, face)
    g2 = (occluded, analyzer.face_at(occluded, face.box))
    q1, gm1 = explain.explain_match(rgb, face, *g1)
    q2, gm2 = explain.explain_match(rgb, face, *g2)
    for e in (q1, gm1, q2, gm2):
        assert e.target == "match" and e.heatmap.shape[:2] == e.heatmap.shape[:2]
        assert -1 <= e.score <= 1
    assert q1.score != pytest.approx(q2.score, abs=1e-4)
    diff = np.abs(q1.chip_heatmap - q2.chip_heatmap)
    assert diff.mean() > 0.02 and diff.max() > 0.1
    assert rho(q1.chip_heatmap, q2.chip_heatmap) < 0.99
    # same inputs, same maps (deterministic)
    q1b, _ = explain.explain_match(rgb, face, *g1)
    assert np.allclose(q1b.chip_heatmap, q1.chip_heatmap, atol=1e-5)


def test_match_map_changes_with_gallery_identity_lfw(astronaut, analyzer):
    from fasfinder.imaging import load_image

    LFW = shared_data("lfw") / "images_deepfunneled"
    rgb, face = astronaut
    maps = []
    for name in ("Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0001.jpg"):
        g = load_image(LFW / name).pixels
        q, _ = explain.explain_match(rgb, face, g, analyzer.detect(g)[0])
        maps.append(q.chip_heatmap)
    diff = np.abs(maps[0] - maps[1])
    assert diff.mean() > 0.02 and rho(*maps) < 0.99


def _randomised(blocks, seed=0):
    model = load_model()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in blocks:
            for p in model.get_submodule(name).parameters():
                p.copy_(torch.randn(p.shape, generator=g) * p.std() + (p.mean() if p.ndim == 1 else 0))
    return model


def test_sanity_randomised_last_block_changes_heatmap(astronaut, face_explanation):
    """'Sanity checks for saliency maps': cascading randomisation from the top of the network
    down to the last block of the explained layer (fc, level0, level1, level2.2) must change the map."""

    rgb, face = astronaut
    trained = face_explanation.chip_heatmap
    model = _randomised(["fc", "level0", "level1", f"{explain.DEFAULT_LAYER}.2"])
    random_map = explain.Explainer(model).explain_face(rgb, face).chip_heatmap
    assert rho(trained, random_map) < 0.5
    # randomising only the explained layer's last block already breaks it
    model = _randomised([f"{explain.DEFAULT_LAYER}.2"], seed=1)
    assert rho(trained, explain.Explainer(model).explain_face(rgb, face).chip_heatmap) < 0.5


def test_thread_safe(astronaut, face_explanation):
    rgb, face = astronaut
    results = [None, None]

    def work(i):
        results[i] = explain.explain_face(rgb, face).chip_heatmap

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert np.allclose(r, face_explanation.chip_heatmap, atol=1e-5)


def test_works_inside_inference_mode(astronaut, face_explanation):
    with torch.inference_mode():
        e = explain.explain_face(*astronaut)
    assert np.allclose(e.chip_heatmap, face_explanation.chip_heatmap, atol=1e-5)


def test_overlay(astronaut, face_explanation):
    rgb, _ = astronaut
    out = overlay(rgb, face_explanation.heatmap)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert not np.array_equal(out, rgb)
    grey = overlay(rgb[..., 0], face_explanation.heatmap, alpha=0.0)
    assert np.array_equal(grey[..., 0], rgb[..., 0])
