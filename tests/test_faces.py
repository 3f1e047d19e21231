"""Face detection, landmarks, chips and the 10 regions on a real face (skimage's astronaut)."""

from __future__ import annotations

import numpy as np
import pytest

from fasfinder.faces import CHIP_SIZE, DetectorSettings, FaceAnalyzer, auto_upsample, chip_transform, face_chip
from fasfinder.errors import BadArgument
from fasfinder.regions import REGION_NAMES, keep_regions, region_importance, region_masks


@pytest.fixture(scope="module")
def face(astronaut):
    faces = FaceAnalyzer().detect(astronaut)
    assert faces, "dlib must find Eileen Collins' face"
    return faces[0]


def test_largest_face_is_the_astronauts(face):
    x0, y0, x1, y1 = face.box
    assert 150 < x0 < 200 and 50 < y0 < 110 and 240 < x1 < 290 and 140 < y1 < 200
    assert face.landmarks.shape == (68, 2) and face.shape5.shape == (5, 2)
    inside = ((face.landmarks[:, 0] > x0 - 20) & (face.landmarks[:, 0] < x1 + 20)
              & (face.landmarks[:, 1] > y0 - 20) & (face.landmarks[:, 1] < y1 + 30))
    assert inside.all()


def test_chip_and_its_transform_agree(astronaut, face):
    import cv2

    chip = face_chip(astronaut, face)
    assert chip.shape == (CHIP_SIZE, CHIP_SIZE, 3)
    warped = cv2.warpAffine(astronaut, chip_transform(face), (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR)
    assert np.abs(chip.astype(float) - warped).mean() < 2.0


def test_upsampling_policy():
    assert auto_upsample(150, 150) == 2 and auto_upsample(250, 250) == 1 and auto_upsample(4000, 3000) == 0
    with pytest.raises(BadArgument):
        DetectorSettings(detector="nope").validate()


def test_small_face_found_by_upsampling(astronaut, face):
    import cv2

    small = cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA)  # face ~28 px wide
    faces = FaceAnalyzer().detect(small)
    assert faces and abs(faces[0].box[0] - face.box[0] * 160 / 512) < 10


def test_huge_image_is_detected_on_a_downscaled_copy(astronaut, face):
    import cv2

    big = cv2.resize(astronaut, (3000, 3000), interpolation=cv2.INTER_LINEAR)
    faces = FaceAnalyzer(DetectorSettings(max_side=1000)).detect(big)
    assert faces and abs(faces[0].box[0] - face.box[0] * 3000 / 512) < 40


def test_regions_cover_the_right_places(astronaut, face):
    masks = region_masks(face.landmarks, astronaut.shape[:2])
    assert tuple(masks) == REGION_NAMES and len(masks) == 10
    assert all(m.sum() > 0 for m in masks.values())
    eye_y = np.argwhere(masks["Left Eye"])[:, 0].mean()
    lip_y = np.argwhere(masks["Lips"])[:, 0].mean()
    chin_y = np.argwhere(masks["Chin"])[:, 0].mean()
    assert eye_y < lip_y < chin_y


def test_region_importance_formula(astronaut, face):
    h, w = astronaut.shape[:2]
    assert all(v == pytest.approx(1.0) for v in region_importance(np.ones((h, w)), face.landmarks).values())
    hm = np.zeros((h, w))
    hm[region_masks(face.landmarks, (h, w))["Nose"]] = 1.0
    imp = region_importance(hm, face.landmarks)
    assert imp["Nose"] == pytest.approx(1.0) and imp["Left Eyebrow"] == 0.0
    kept = keep_regions(astronaut, face.landmarks, ["Nose"])
    assert kept.sum() > 0 and (kept[~region_masks(face.landmarks, (h, w))["Nose"]] == 0).all()
