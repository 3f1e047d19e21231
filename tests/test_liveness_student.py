"""The distilled two-crop students: fas-distilled (the shipped default), fas-student (the earlier
round) and fas-distilled-frame (a fourth cycle on web-photo frames), research models: their cards,
three-way verdict and gates."""

from __future__ import annotations

import numpy as np
import pytest

from fasfinder import liveness, modelfiles
from fasfinder.evaluation.nuaa import label_metrics
from fasfinder.faces import Face
from fasfinder.liveness.student import STUDENT_MODEL, UNCERTAIN, StudentPair, context

STUDENTS = [liveness.DEFAULT_MODEL, STUDENT_MODEL, "fas-distilled-frame"]


@pytest.fixture(scope="module", params=STUDENTS)
def student(request):
    return liveness.load_liveness_model(request.param)


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    from fasfinder.faces import FaceAnalyzer

    rgb = data.astronaut()
    return rgb, FaceAnalyzer().detect(rgb)


def test_the_default_is_the_distilled_student():
    # the earlier student (ACER 11.8 %) stays selectable; the default is the round-3 student
    assert liveness.DEFAULT_MODEL == "fas-distilled"
    assert isinstance(liveness.default_liveness_model(), StudentPair)
    card = modelfiles.load_card(liveness.DEFAULT_MODEL)
    for key in ("data", "recipe", "command", "teacher", "calibration", "metrics"):
        assert card.get(key), key


def test_student_card_is_complete_and_selectable(student):
    assert liveness.load_liveness_model(student.name) is student
    card = modelfiles.load_card(student.name)
    entry = next(f for f in card["files"] if f["name"] == "weights")
    assert modelfiles.sha256_file(modelfiles.models_dir() / entry["path"]) == entry["sha256"]
    lo, hi = card["band"]
    assert 0.0 < lo <= hi < 1.0 and lo <= card["threshold"] <= hi
    assert "teacher" in card and "Apache" in card["teacher"]["licence"]
    # no third-party weight file next to the card
    assert not list(modelfiles.models_dir().glob("*MiniFASNet*"))


def test_genuine_photo_is_never_spoof_and_has_a_heatmap(student, astronaut):
    """A genuine studio portrait: never ``spoof`` (the product's rule for genuine photos); ``uncertain``
    is allowed (the default scores this one 0.51, inside its band: docs/results/liveness.md)."""

    rgb, faces = astronaut
    v = student.predict(rgb, faces[:1])[0]
    assert v.label != "spoof" and v.score >= student.band[0]
    assert v.label == ("real" if v.score >= student.band[1] else "uncertain")
    heatmap, regions = student.explain(rgb, faces[0])
    assert heatmap.shape == rgb.shape[:2] and 0.0 <= heatmap.min() and heatmap.max() <= 1.0 and heatmap.max() > 0
    assert sorted(regions) == sorted(liveness.REGION_NAMES)


def test_three_way_band(student):
    lo, hi = student.band
    assert student.label(min(1.0, hi + 1e-3)) == "real"
    assert student.label(max(0.0, lo - 1e-3)) == "spoof"
    if hi > lo:
        assert student.label((lo + hi) / 2) == UNCERTAIN


def test_small_face_or_no_context_is_uncertain_never_spoof(student):
    lo = student.band[0]
    tiny = Face(box=(100, 100, 120, 120), landmarks=np.zeros((68, 2), np.float32), shape5=np.zeros((5, 2), np.float32))
    assert student.label(lo / 2, tiny, (480, 640)) == UNCERTAIN
    big = Face(box=(200, 100, 400, 300), landmarks=np.zeros((68, 2), np.float32), shape5=np.zeros((5, 2), np.float32))
    assert student.label(lo / 2, big, (2000, 2000)) == "spoof"
    assert context(big, (2000, 2000)) == pytest.approx(1.0)
    assert context(big, (300, 400)) < 0.5


def test_flat_grey_card_is_not_called_real(student):
    rgb = np.full((480, 640, 3), 128, np.uint8)
    face = Face(box=(240, 160, 400, 320), landmarks=np.zeros((68, 2), np.float32), shape5=np.zeros((5, 2), np.float32))
    assert student.predict(rgb, [face])[0].label != "real"


def test_uncertain_enrollment_is_flagged_not_refused(tmp_path, astronaut):
    """With a band covering every score, the astronaut is 'uncertain': enrolled, flagged for review."""

    import cv2

    from fasfinder.service import FasFinder
    from fasfinder.settings import Settings

    card = dict(modelfiles.load_card(liveness.DEFAULT_MODEL))
    card["band"] = [0.0, 1.01]
    wide = StudentPair(card)
    ff = FasFinder(tmp_path / "g.db", settings=Settings(gallery=str(tmp_path / "g.db"), refuse_spoof=True))
    ff._liveness = wide
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut[0][..., ::-1])
    res = ff.enroll_one(photo, label="Eileen Collins")
    assert res.error is None and res.record_id is not None
    assert res.liveness[0]["label"] == UNCERTAIN and "uncertain" in res.review


def test_label_metrics_count_uncertain_apart():
    m = label_metrics(["real", "uncertain", "spoof", "spoof", "uncertain", "real"], [1, 1, 1, 0, 0, 0])
    assert m["bpcer"] == pytest.approx(1 / 3) and m["apcer"] == pytest.approx(1 / 3)
    assert m["uncertain_real"] == pytest.approx(1 / 3) and m["uncertain_spoof"] == pytest.approx(1 / 3)
    assert m["errors"] == {"spoof_accepted": 1, "real_rejected": 1}
