"""Person-level, open-set search on real LFW faces: fusion, threshold, confidence model, decisions
(fasfinder.identify, the search JSON of docs/BENCHMARKS.md section 1 "Additions")."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fasfinder.evaluation.ident_open import rates, threshold_at_fpir
from fasfinder.identify import FUSIONS, IdentModel, confidence_features, fuse, fuse_matrix, group_persons
from tests.conftest import shared_data

ENROLLED = {"Aaron_Peirsol": ["0001", "0003"], "Adam_Sandler": ["0001", "0002"], "Ahmed_Chalabi": ["0001"]}
PROBE_IN = ("Aaron_Peirsol", "0004")  # enrolled person, a photo not in the gallery
PROBE_OUT = ("Abdullah_Gul", "0001")  # never enrolled


def lfw_image(lfw, name, num):
    return lfw / "images_deepfunneled" / name / f"{name}_{num}.jpg"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    lfw = shared_data("lfw")
    import torch

    torch.set_num_threads(1)
    from fasfinder.service import FasFinder
    from fasfinder.settings import Settings

    root = tmp_path_factory.mktemp("ident")
    for name, nums in ENROLLED.items():
        (root / "g" / name).mkdir(parents=True)
        for n in nums:
            shutil.copy(lfw_image(lfw, name, n), root / "g" / name)
    ff = FasFinder(root / "g.db", settings=Settings(gallery=str(root / "g.db"), liveness=False))
    results = ff.enroll([root / "g"])
    assert all(r.error is None for r in results)
    yield ff, lfw
    ff.close()


def test_search_by_person_lists_each_person_once_with_its_photos(service):
    ff, lfw = service
    res = ff.search(lfw_image(lfw, *PROBE_IN), record=False)
    fr = res.faces[0]
    labels = [p.label for p in fr.persons]
    assert labels[0] == "Aaron_Peirsol" and len(labels) == len(set(labels)) == 3
    top = fr.persons[0]
    assert len(top.photos) == 2 and top.photos[0].similarity >= top.photos[1].similarity
    assert top.similarity == pytest.approx(fuse([p.similarity for p in top.photos], IdentModel.from_card(ff.engine.card()).fusion))
    photo_labels = [m.label for m in ff.search(lfw_image(lfw, *PROBE_IN), record=False, by="photo").faces[0].matches]
    assert photo_labels[:2] == ["Aaron_Peirsol", "Aaron_Peirsol"]  # the old photo list keeps both photos


def test_fusions_order_on_real_similarities(service):
    ff, lfw = service
    sims = [p.similarity for p in ff.search(lfw_image(lfw, *PROBE_IN), record=False).faces[0].persons[0].photos]
    got = {f: fuse(sims, f) for f in FUSIONS}
    assert got["mean_top2"] <= got["softmax"] <= got["max"] == max(sims)
    m = fuse_matrix(np.array([sims + [0.1]]), np.array([0, 0, 1]), 2, "mean_top2")
    assert m[0, 0] == pytest.approx(np.mean(sims)) and m[0, 1] == pytest.approx(0.1)


def test_decisions_and_json_shape_on_real_faces(service):
    ff, lfw = service
    card = ff.engine.card()
    if "open_set" not in card:
        pytest.fail("the engine card has no open_set threshold: run eval identify-fit --write")
    inside = ff.search(lfw_image(lfw, *PROBE_IN), record=False).faces[0]
    outside = ff.search(lfw_image(lfw, *PROBE_OUT), record=False).faces[0]
    assert inside.decision.in_gallery and not outside.decision.in_gallery
    assert inside.decision.threshold == pytest.approx(IdentModel.from_card(card).threshold(5))
    assert inside.persons[0].confidence > outside.persons[0].confidence and outside.persons[0].confidence < 0.5
    d = json.loads(json.dumps(ff.search(lfw_image(lfw, *PROBE_IN), record=False).to_dict()))["faces"][0]
    assert set(d["decision"]) >= {"in_gallery", "threshold", "fpir"} and d["decision"]["fpir"] == 0.01
    assert 0 <= d["quality"]["score"] <= 1 and isinstance(d["quality"]["flags"], list)
    m = d["matches"][0]
    assert set(m) >= {"rank", "person_id", "label", "case_id", "similarity", "confidence", "photos", "record_id", "image"}
    assert {"record_id", "image", "similarity"} <= set(m["photos"][0])


def test_threshold_override_from_settings(service):
    ff, lfw = service
    old = ff.settings.open_set_threshold
    try:
        ff.settings.open_set_threshold = 0.999
        fr = ff.search(lfw_image(lfw, *PROBE_IN), record=False).faces[0]
        assert not fr.decision.in_gallery and fr.decision.threshold == 0.999 and fr.decision.fpir is None
    finally:
        ff.settings.open_set_threshold = old


def test_card_thresholds_grow_with_gallery_size():
    from fasfinder.engines import DEFAULT_ENGINE, get_engine

    model = IdentModel.from_card(get_engine(DEFAULT_ENGINE).card())
    if not model.thresholds:
        pytest.fail("no open_set thresholds in the default engine's card")
    ts = [model.threshold(n) for n in (1, 10, 100, 1000, 10000, 100000)]
    assert ts == sorted(ts) and ts[0] < ts[-1]
    g, t = model.thresholds[3]
    assert model.threshold(g) == pytest.approx(t)


def test_confidence_model_uses_margin_and_gallery_size():
    from fasfinder.engines import DEFAULT_ENGINE, get_engine

    model = IdentModel.from_card(get_engine(DEFAULT_ENGINE).card())
    if not model.weights:
        pytest.fail("no identification model in the default engine's card")
    clear = model.confidence(np.array([0.97, 0.88]), 100)[0]
    close = model.confidence(np.array([0.97, 0.96]), 100)[0]
    assert clear > close  # a clear winner is more likely the person than one of two look-alikes
    assert model.confidence(np.array([0.97, 0.90]), 100)[0] > model.confidence(np.array([0.94, 0.87]), 100)[0]
    lo, hi = model.faces_range  # the gallery sizes of the fit: beyond them the model is not extrapolated
    assert model.confidence(np.array([0.95, 0.9]), hi * 100)[0] == model.confidence(np.array([0.95, 0.9]), hi)[0]
    f = confidence_features(np.array([0.9, 0.8, 0.7]), 1000)
    assert f[:, 1].tolist() == pytest.approx([0.1, -0.1, -0.2]) and f[0, 2] == pytest.approx(3.0)


def test_threshold_at_fpir_meets_the_target():
    rng = np.random.default_rng(0)
    non = rng.normal(0.8, 0.03, 1000)
    t = threshold_at_fpir(non, 0.01)
    fnir, fpir = rates(np.full(10, 0.9), non, t)
    assert fpir <= 0.01 and (non >= np.nextafter(t, -np.inf) - 1e-12).mean() >= fpir
    assert (non >= np.sort(non)[::-1][10]).mean() > 0.01  # one step lower would exceed the target


def test_group_persons_keeps_best_first():
    class H:
        def __init__(self, pid, s):
            self.person_id, self.similarity = pid, s

    hits = [H(1, 0.9), H(2, 0.85), H(1, 0.8), H(3, 0.7)]
    persons = group_persons(hits, 2, "max")
    assert [p[1][0].person_id for p in persons] == [1, 2] and len(persons[0][1]) == 2


def test_quality_flags_blur_and_size_on_a_real_face(astronaut):
    import cv2

    from fasfinder.faces import FaceAnalyzer
    from fasfinder.quality import face_quality

    rgb = astronaut  # a sharp, frontal, well-exposed real photo
    (face,) = [f for f in FaceAnalyzer().detect(rgb) if f.width > 60][:1]
    sharp = face_quality(rgb, face)
    blurred = face_quality(cv2.GaussianBlur(rgb, (0, 0), 4), face)
    assert "blurry" in blurred.flags and blurred.measures["sharpness"] < sharp.measures["sharpness"] / 3
    assert sharp.flags == [] and sharp.score > 0.5 and blurred.score < sharp.score
    small = cv2.resize(rgb, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    faces = FaceAnalyzer().detect(small)
    if faces:  # the detector upsamples small images; when it finds the 20-px face it is flagged small
        assert "small" in face_quality(small, faces[0]).flags
