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


def _enrolled(ff):
    """(label, liveness score, embedding) of every stored face, in enrollment order."""

    ids, vecs = ff.gallery.stored_embeddings("dlib-resnet-torch")
    order = np.argsort(ids)
    rows = [ff.gallery.face_row(int(i)) for i in ids[order]]
    return rows, vecs[order]


@pytest.mark.slow
def test_worker_processes_enroll_what_threads_enroll(tmp_path, monkeypatch, caplog):
    """A large enrollment on worker processes (fasfinder.enroll_processes) stores the same faces,
    liveness and embeddings as the threads do, keeps each bad file's typed error, and goes on in this
    process when its workers die."""

    from fasfinder import enroll_processes

    lfw = sorted((shared_data("lfw") / "images_deepfunneled").glob("*/*.jpg"))
    folder = tmp_path / "in"
    folder.mkdir()
    files = [shutil.copy(f, folder / f"{i:03d}_{f.name}") for i, f in enumerate(lfw[: enroll_processes.PROCESS_MIN_FILES])]
    (folder / "050_broken.jpg").write_bytes(b"not a jpeg")
    files.insert(50, folder / "050_broken.jpg")
    out = {}
    for mode in ("0", "2"):
        monkeypatch.setenv(enroll_processes.PROCESSES_ENV, mode)
        db = tmp_path / f"g{mode}.db"
        ff = FasFinder(db, settings=Settings(gallery=str(db)))
        try:
            results = ff.enroll(files, label_from="stem")
            assert (ff._procs is not None) == (mode == "2")
            assert [r.path for r in results] == [str(f) for f in files]
            codes = [r.error["code"] if r.error else None for r in results]
            assert codes[50] in ("unsupported_format", "unreadable_image")
            assert codes.count(None) == len(files) - 1
            out[mode] = (results, *_enrolled(ff))
        finally:
            ff.close()
    (r0, rows0, v0), (r2, rows2, v2) = out["0"], out["2"]
    assert [(r["box"] if "box" in r else None) for r in rows0] == [(r["box"] if "box" in r else None) for r in rows2]
    assert np.abs(v0 - v2).max() < 1e-5
    assert np.allclose([r.liveness[0]["score"] for r in r0 if r.liveness], [r.liveness[0]["score"] for r in r2 if r.liveness],
                       atol=1e-5)

    monkeypatch.setenv(enroll_processes.PROCESSES_ENV, "2")
    db = tmp_path / "crash.db"
    ff = FasFinder(db, settings=Settings(gallery=str(db)))
    try:
        first = ff.enroll(files[:64], label_from="stem")
        assert ff._procs is not None and sum(r.error is None for r in first) == 63
        for p in list(ff._procs._pool._processes.values()):
            p.kill()
        more = [shutil.copy(f, folder / f"more_{f.name}") for f in lfw[100 : 100 + enroll_processes.PROCESS_MIN_FILES]]
        with caplog.at_level("WARNING"):
            second = ff.enroll(more, label_from="stem")
        assert all(r.error is None for r in second), [r.error for r in second if r.error]
        assert "enrollment worker process failed" in caplog.text
        assert ff.gallery.counts()["images"] == 63 + len(more)
    finally:
        ff.close()
