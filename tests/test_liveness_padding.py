"""Synthetic padding (fasfinder/liveness/padding.py): found where a warp left black fill, never in a
real dark scene; the two-crop models place their crops inside the captured area."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fasfinder.faces import Face
from fasfinder.liveness.croppair import captured, crop_box
from fasfinder.liveness.padding import captured_areas, captured_bounds, padding_mask


def textured(seed: int = 0, size: int = 250) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.normal(120, 35, (size, size, 3)).clip(0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (5, 5), 0)


def jpeg(rgb: np.ndarray, quality: int = 70) -> np.ndarray:
    ok, enc = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)


def turned(rgb: np.ndarray, degrees: float, zoom: float = 1.0) -> np.ndarray:
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, zoom)
    return cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


FACE = (85, 75, 165, 175)


@pytest.mark.parametrize("degrees", [3, 8, 12])
def test_rotation_fill_is_found_and_the_bounds_leave_it_out(degrees):
    img = jpeg(turned(textured(), degrees), 70)
    mask = padding_mask(img)
    assert mask is not None
    x0, y0, x1, y1 = captured_bounds(mask, FACE, img.shape[:2])
    assert x0 > 0 and y0 > 0 and x1 < 249 and y1 < 249  # every side moved off the corners' wedges
    assert not mask[y0 : y1 + 1, x0 : x1 + 1].any()
    assert x0 <= FACE[0] and y0 <= FACE[1] and x1 >= FACE[2] - 1 and y1 >= FACE[3] - 1
    # a small turn costs little of the image
    assert (x1 - x0 + 1) * (y1 - y0 + 1) > (0.5 if degrees > 8 else 0.7) * 250 * 250


def test_large_images_are_checked_on_a_subsample_with_the_same_result():
    rng = np.random.default_rng(2)
    big = cv2.GaussianBlur(rng.normal(120, 35, (1500, 2000, 3)).clip(0, 255).astype(np.uint8), (5, 5), 0)
    m = cv2.getRotationMatrix2D((1000, 750), 8, 1.0)
    turned_big = jpeg(cv2.warpAffine(big, m, (2000, 1500)), 80)
    truth = cv2.warpAffine(np.full((1500, 2000), 255, np.uint8), m, (2000, 1500)) < 128
    face = (700, 500, 1000, 900)
    x0, y0, x1, y1 = captured_areas(turned_big, [face])[0]
    assert not truth[y0 : y1 + 1, x0 : x1 + 1].any()
    assert (x1 - x0 + 1) * (y1 - y0 + 1) > 0.7 * 2000 * 1500


def test_black_strips_of_a_shifted_window_are_found():
    img = textured()
    img[:, :30] = 0
    img[:18] = 0
    img = jpeg(img, 85)
    x0, y0, x1, y1 = captured_bounds(padding_mask(img), FACE, img.shape[:2])
    assert 30 <= x0 <= 34 and 18 <= y0 <= 22 and x1 == 249 and y1 == 249


def test_real_captures_have_no_padding():
    assert padding_mask(textured()) is None  # nothing dark at the border
    rng = np.random.default_rng(1)
    dark = textured()
    dark[:, :80] = rng.normal(9, 3, (250, 80, 3)).clip(0, 255).astype(np.uint8)  # a dark scene: sensor noise
    assert padding_mask(jpeg(dark, 90)) is None
    person = textured()
    person[:] = 0  # a flat black backdrop around a bright figure: not convex, so not a warp's fill
    cv2.ellipse(person, (125, 250), (70, 120), 0, 0, 360, (180, 150, 130), -1)
    cv2.circle(person, (125, 95), 45, (190, 160, 140), -1)
    assert padding_mask(person) is None
    hair = textured()
    cv2.ellipse(hair, (125, 0), (80, 60), 0, 0, 360, (3, 2, 2), -1)  # crushed-black hair at the top: curved, not lines
    assert padding_mask(jpeg(hair, 85)) is None
    held = np.zeros((250, 250, 3), np.uint8)  # a print held in front of a flat black backdrop: fill with a hole
    quad = np.array([[60, 40], [200, 55], [190, 215], [50, 200]], np.int32)
    cv2.fillConvexPoly(held, quad, (170, 150, 140))
    assert padding_mask(jpeg(held, 85)) is None


def test_the_face_box_is_never_cut():
    img = textured()
    img[:, :120] = 0  # fill reaching into the face box
    x0, y0, x1, y1 = captured_bounds(padding_mask(img), FACE, img.shape[:2])
    assert x0 <= FACE[0]


def test_crop_box_with_bounds_is_the_rule_on_the_captured_rectangle():
    box = (100.0, 90.0, 60.0, 70.0)
    bounds = (20, 10, 229, 239)
    x0, y0, x1, y1 = crop_box(box, (250, 250), 4.0, bounds)
    assert x0 >= 20 and y0 >= 10 and x1 <= 229 and y1 <= 239
    sub = crop_box((80.0, 80.0, 60.0, 70.0), (230, 210), 4.0)
    assert (x0, y0, x1, y1) == (sub[0] + 20, sub[1] + 10, sub[2] + 20, sub[3] + 10)
    assert crop_box(box, (250, 250), 2.7, (0, 0, 249, 249)) == crop_box(box, (250, 250), 2.7)


def test_models_switch_the_rule_per_image():
    face = Face(box=FACE, landmarks=np.zeros((68, 2), np.float32), shape5=np.zeros((5, 2), np.float32))
    plain = textured()
    assert captured(plain, [face]) == [(0, 0, 249, 249)]
    img = jpeg(turned(plain, 8), 80)
    assert captured(img, [face]) != [(0, 0, 249, 249)]
    assert captured(img, [face], strip=False) == [(0, 0, 249, 249)]


def test_the_default_reads_a_padded_photo_as_the_photo_cut_to_its_captured_area():
    """Crops over the fill (the original rule) differ; crops in the captured area are exactly those
    of the photo cut to that rectangle, so the verdict cannot depend on the fill."""

    from skimage import data

    from fasfinder import liveness
    from fasfinder.faces import FaceAnalyzer

    model = liveness.default_liveness_model()
    rgb = data.astronaut()
    h, w = rgb.shape[:2]
    padded = cv2.warpAffine(rgb, cv2.getRotationMatrix2D((w / 2, h / 2), 8, 1.0), (w, h))
    face = FaceAnalyzer().detect(padded)[0]
    ((x0, y0, x1, y1),) = captured(padded, [face])
    assert (x0, y0, x1, y1) != (0, 0, w - 1, h - 1)
    cut = np.ascontiguousarray(padded[y0 : y1 + 1, x0 : x1 + 1])
    bx0, by0, bx1, by1 = face.box
    moved = Face(box=(bx0 - x0, by0 - y0, bx1 - x0, by1 - y0), landmarks=face.landmarks - [x0, y0], shape5=face.shape5)
    assert captured(cut, [moved]) == [(0, 0, cut.shape[1] - 1, cut.shape[0] - 1)]
    inside = model.predict(padded, [face])[0]
    assert inside.score == pytest.approx(model.predict(cut, [moved])[0].score, abs=1e-6)
    try:
        model.strip_padding = False
        over = model.predict(padded, [face])[0]
    finally:
        model.strip_padding = True
    assert abs(over.score - inside.score) > 1e-4
    heatmap, _ = model.explain(padded, face)
    assert heatmap.shape == (h, w) and float(heatmap[:y0].max(initial=0.0)) == 0.0
