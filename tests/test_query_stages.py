"""The query's stages side by side (fasfinder.compute): same results as serial, every timing reported."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fasfinder.compute import ComputePool, compute_pool, default_workers, in_pool, set_compute_threads, torch_threads

torch = pytest.importorskip("torch")


@pytest.fixture
def restore_pool():
    yield
    set_compute_threads(default_workers())


def test_pool_keeps_part_order_and_lets_the_caller_help():
    pool = ComputePool(1)
    try:
        gate, started = threading.Event(), threading.Event()
        names = []

        def part(i):
            if i == 0:
                started.set()
                gate.wait(5)  # the worker is held on part 0: the caller must run the others itself
            names.append((i, threading.current_thread().name, in_pool()))
            return i * i

        pending = pool.start(part, range(6))
        assert pending.concurrent
        assert started.wait(5)
        threading.Timer(0.3, gate.set).start()
        assert pending.result() == [0, 1, 4, 9, 16, 25]  # the parts' order, not the finishing order
        by_caller = {i for i, name, worker in names if not worker}
        assert by_caller and 0 not in by_caller
        assert pending.span_ms > 0
    finally:
        pool.shutdown()


def test_a_failing_part_raises_after_every_part_finished():
    pool = ComputePool(1)
    try:
        done = []

        def part(i):
            if i == 2:
                raise ValueError("part 2")
            done.append(i)
            return i

        with pytest.raises(ValueError, match="part 2"):
            pool.map(part, range(5))
        assert sorted(done) == [0, 1, 3, 4]
    finally:
        pool.shutdown()


def test_a_part_on_a_worker_never_waits_on_the_pool():
    """Nested use (a pool task that starts parts) runs them inline: no deadlock with one worker."""

    pool = ComputePool(1)
    try:
        assert pool.map(lambda i: pool.map(lambda j: (i, j), range(3)), range(2)) == [
            [(0, 0), (0, 1), (0, 2)], [(1, 0), (1, 1), (1, 2)]]
    finally:
        pool.shutdown()


def test_torch_threads_are_per_thread_and_the_default_is_given_back():
    torch.set_num_threads(2)
    pool = ComputePool(1)
    try:
        assert pool.map(lambda _p: torch.get_num_threads(), [0]) == [1]  # the worker runs one intra-op thread
        assert torch.get_num_threads() == 2  # the creating thread kept its count
        seen = []
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        t.start()
        t.join()
        assert seen == [2]  # and threads started later get the creator's count, not the workers' 1
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        pool.shutdown()
        torch.set_num_threads(1)


def test_serial_pool_runs_inline():
    pool = ComputePool(0)
    pending = pool.start(lambda p: threading.current_thread().name, [0, 1])
    assert not pending.concurrent
    assert pending.result() == [threading.current_thread().name] * 2


@pytest.fixture(scope="module")
def model():
    """The wide ensemble (``fas-nuaa-wide``, selectable): the model whose members are split over the pool."""

    from fasfinder.liveness import load_liveness_model

    try:
        return load_liveness_model("fas-nuaa-wide")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"liveness model unavailable: {exc}")


def test_ensemble_split_equals_serial(model, restore_pool):
    """Members on the pool (one part per member and batch) == the whole network in one thread."""

    rng = np.random.default_rng(0)
    size = model.input["size"]
    crops = rng.integers(0, 256, size=(model.batch_size + 3, size, size, 3), dtype=np.uint8)  # two batches
    set_compute_threads(0)
    serial = model.scores_from_crops(crops)
    set_compute_threads(default_workers())
    pending = model.start_scores(crops)
    assert pending.concurrent
    split = pending.result()
    np.testing.assert_allclose(split, serial, rtol=0, atol=1e-6)
    x = model.net.preprocess(crops[:4])  # the fused channels-last copy == the card's network
    with torch.inference_mode():
        plain = torch.softmax(model.net(x), 1)[:, 1].double().numpy()
    np.testing.assert_allclose(split[:4], plain, rtol=0, atol=1e-6)
    assert len(model.start_scores(crops[:0]).result()) == 0


def test_member_costs_are_equal_for_one_architecture(model):
    costs = model._inference_net().member_costs()
    assert len(costs) == len(model.card["architecture"]["windows"]) and min(costs) == max(costs) > 0


@pytest.fixture(scope="module")
def gallery_service(tmp_path_factory):
    from PIL import Image
    from skimage import data

    from fasfinder.service import FasFinder
    from fasfinder.settings import Settings

    tmp = tmp_path_factory.mktemp("stages")
    img = tmp / "astronaut" / "a.png"
    img.parent.mkdir()
    Image.fromarray(data.astronaut()).save(img)
    db = tmp / "g.db"
    ff = FasFinder(db, settings=Settings(gallery=str(db), liveness=True))
    if ff.liveness_model() is None:
        pytest.skip(f"liveness model unavailable: {ff.liveness_unavailable}")
    assert ff.enroll_one(img).error is None
    query = tmp / "q.png"
    Image.fromarray(data.astronaut()[:, ::-1]).save(query)
    yield ff, query
    ff.close()


def test_concurrent_liveness_gives_the_serial_result(gallery_service, restore_pool):
    ff, query = gallery_service
    set_compute_threads(0)
    serial = ff.search(query, record=False)
    set_compute_threads(default_workers())
    both = ff.search(query, record=False)
    assert serial.error is None and both.error is None
    assert len(serial.faces) == len(both.faces) >= 1
    for a, b in zip(serial.faces, both.faces):
        assert a.liveness.label == b.liveness.label
        assert a.liveness.score == pytest.approx(b.liveness.score, abs=1e-6)
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-6)
        assert [m.face_id for m in a.matches] == [m.face_id for m in b.matches]
        assert [p.person_id for p in a.persons] == [p.person_id for p in b.persons]
        assert a.decision == b.decision


def test_timings_keys(gallery_service):
    ff, query = gallery_service
    assert compute_pool().workers >= 0
    t = ff.search(query, record=False).timings_ms
    assert {"decode", "detect_landmarks", "embed", "search", "liveness", "liveness_wait", "total"} <= set(t)
    assert all(v >= 0 for v in t.values())
    # the stages overlap: the total is the wall time, not their sum, and no stage outlasts it
    assert t["total"] >= max(t["decode"] + t["detect_landmarks"] + t["embed"] + t["search"], t["liveness"]) * 0.99
    live = ff.liveness(query).timings_ms  # liveness only: nothing to overlap with, no embed / search
    assert {"liveness", "total"} <= set(live) and "embed" not in live


def test_liveness_from_the_boxes_equals_liveness_from_the_faces(gallery_service):
    """The query starts the check from the detector's boxes, before the landmarks: same crops, same scores."""

    from fasfinder.imaging import load_image

    ff, query = gallery_service
    model = ff.liveness_model()
    assert model.needs_landmarks is False  # the default card's crop is the box's: the early start is taken
    rgb = load_image(query).pixels
    early = []
    faces = ff.analyzer.detect(rgb, on_boxes=early.append)
    assert [f.box for f in early[0]] == [f.box for f in faces]
    res = ff.search(query, record=False)
    assert [fr.liveness.score for fr in res.faces] == pytest.approx([v.score for v in model.predict(rgb, faces)], abs=1e-6)


def test_torch_threads_narrows_faiss_too():
    """faiss has its own OpenMP runtime: the query thread's gallery search must be narrowed as well."""

    import faiss

    from fasfinder.compute import torch_threads

    faiss.omp_set_num_threads(2)
    with torch_threads(1):
        inside = faiss.omp_get_max_threads()
    assert inside == 1
    assert faiss.omp_get_max_threads() == 2  # given back
