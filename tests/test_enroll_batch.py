"""The batched enrollment pipeline (fasfinder.service_enroll) gives what one photo at a time gave."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from .conftest import shared_data
from fasfinder.faces import FaceAnalyzer
from fasfinder.service import FasFinder
from fasfinder.settings import Settings


@pytest.fixture(scope="module")
def lfw_files():
    root = shared_data("lfw") / "images_deepfunneled"
    return sorted(root.glob("*/*.jpg"))[:6]


def test_batched_liveness_and_embeddings_equal_the_per_photo_ones(lfw_files):
    from fasfinder.engines import get_engine
    from fasfinder.imaging import load_image
    from fasfinder.liveness import default_liveness_model, predict_many

    an = FaceAnalyzer()
    items = [(im, an.detect(im)[:1]) for im in (load_image(f).pixels for f in lfw_files)]
    lv, eng = default_liveness_model(), get_engine("dlib-resnet-torch")
    batched = predict_many(lv, items)
    for (im, faces), got in zip(items, batched):
        want = lv.predict(im, faces)
        assert [v.label for v in got] == [v.label for v in want]
        assert np.allclose([v.score for v in got], [v.score for v in want], atol=1e-5)
    for (im, faces), got in zip(items, eng.embed_faces_many(items, flip=True)):
        assert np.allclose(got, eng.embed_faces(im, faces, flip=True), atol=1e-5)


def test_largest_rule_finds_the_same_largest_face(lfw_files):
    from fasfinder.imaging import load_image

    an = FaceAnalyzer()
    for f in lfw_files:
        im = load_image(f).pixels
        full, quick = an.detect(im), an.detect(im, largest=True)
        assert quick, f"no face in {f}"
        a, b = full[0].box, quick[0].box  # the same face (boxes of two pyramid levels differ a little)
        inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        assert inter / union > 0.5


def test_a_batch_keeps_order_and_each_files_error(tmp_path, lfw_files):
    folder = tmp_path / "in"
    folder.mkdir()
    files = []
    for i, f in enumerate(lfw_files[:3]):
        files.append(shutil.copy(f, folder / f"{i}_{f.name}"))
    (folder / "9_broken.jpg").write_bytes(b"not a jpeg")
    files.insert(1, folder / "9_broken.jpg")
    files.append(shutil.copy(lfw_files[0], folder / "dup.jpg"))  # same content as the first, same batch
    ff = FasFinder(tmp_path / "g.db", settings=Settings(gallery=str(tmp_path / "g.db")))
    try:
        results = ff.enroll(files, label_from="stem")
        assert [r.path for r in results] == [str(f) for f in files]
        codes = [r.error["code"] if r.error else None for r in results]
        assert codes[1] == "unsupported_format" or codes[1] in ("unreadable_image",)
        assert codes[0] is None and codes[2] is None and codes[3] is None
        assert codes[4] == "duplicate" and results[4].record_id == results[0].record_id
        assert all(r.liveness for i, r in enumerate(results) if codes[i] is None)
        assert ff.gallery.counts()["images"] == 3
        one = ff.enroll_one(lfw_files[4], label="x")
        assert one.error is None and one.faces >= 1
    finally:
        ff.close()
