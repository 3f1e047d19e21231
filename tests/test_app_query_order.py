"""A new query is never stuck behind the previous query's explanations (pytest-qt, offscreen).

The window runs on the real helper process; a thin wrapper holds every explanation call at a gate
(cancelled or not: like a heatmap already running), so the window's worker threads fill up with
the first query's heatmaps, per-match maps and thumbnails as on a slow machine. The second query
must show its matches while they are held; the first query's queued explanations must never start
and its held ones must never run in the service.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from fasfinder import perturb
from fasfinder.errors import Cancelled
from fasfinder.host import Host
from fasfinder.operations import CancelToken
from fasfinder.settings import Settings
from tests.casework_util import main_window, save_png

EXPLAIN = {"explain_face", "liveness_explain", "explain_match", "face_crops", "severity"}
SLOW_MS = 180_000


class GatedHost(Host):
    """The real host; explanation calls wait at ``gate`` whether cancelled or not (like a heatmap the
    service has already started: it cannot be interrupted), then go on to the real host."""

    def __init__(self, inner: Host):
        self.inner, self.settings = inner, inner.settings
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.reached: list[tuple[str, str]] = []  # (method, query sha256) that reached the host
        self.ran: list[tuple[str, str]] = []  # and that the service ran

    def call(self, method, *args, progress=None, cancel=None, **kwargs):
        if method not in EXPLAIN:
            return self.inner.call(method, *args, progress=progress, cancel=cancel, **kwargs)
        key = (method, str(args[0]) if method != "face_crops" else "crops")
        with self.lock:
            self.reached.append(key)
        self.gate.wait()
        value = self.inner.call(method, *args, progress=progress, cancel=cancel, **kwargs)
        with self.lock:
            self.ran.append(key)
        return value


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    from skimage import data

    from fasfinder.host import ProcessHost

    root = tmp_path_factory.mktemp("order")
    astro = data.astronaut()
    settings = replace(Settings(gallery=str(root / "gallery.db")), liveness=True)
    host = ProcessHost(settings)
    res = host.call("enroll", [str(save_png(astro, root / "enroll" / "Eileen" / "a.png"))])
    assert all(r.error is None for r in res), [r.error for r in res]
    queries = [save_png(perturb.brightness(astro, 1.1), root / "q1.png"),
               save_png(perturb.brightness(astro[:, ::-1].copy(), 0.9), root / "q2.png")]
    yield settings, host, queries
    host.close()


@pytest.mark.slow
def test_second_query_is_not_stuck_behind_the_first_querys_explanations(qtbot, gallery):
    settings, inner, (q1, q2) = gallery
    host = GatedHost(inner)
    with main_window(qtbot, settings, host) as win:
        win.session.pool.pool.setMaxThreadCount(2)  # a slow machine: fewer threads than explanation calls
        win.open_query(str(q1))
        qtbot.waitUntil(lambda: win.last_result is not None and win.last_result.query == str(q1), timeout=SLOW_MS)
        first = win.last_result
        assert first.error is None
        # the general worker threads are now all waiting at the gate with the first query's explanations
        threads = win.session.pool.pool.maxThreadCount()
        qtbot.waitUntil(lambda: len(host.reached) >= threads, timeout=30_000)
        assert win.session.pool.pool.activeThreadCount() == threads
        queued = len(win.session.pool.active) - threads  # first-query workers still waiting for a thread
        assert queued >= 1

        t0 = time.perf_counter()
        win.open_query(str(q2))
        qtbot.waitUntil(lambda: win.last_result.query == str(q2), timeout=60_000)  # not behind the gate
        assert win.last_result.error is None and win.matches.list.count() >= 1
        assert not host.gate.is_set() and time.perf_counter() - t0 < 60
        second = win.last_result

        host.gate.set()
        qtbot.waitUntil(lambda: not win.session.pool.active, timeout=SLOW_MS)
        reached = [k for k in host.reached if k[1] == first.sha256]
        assert len(reached) <= threads  # the queued ones were cancelled before they started
        assert first.sha256 not in {sha for _m, sha in host.ran}  # the started ones were refused by the host
        assert second.sha256 in {sha for _m, sha in host.ran}  # the second query's own explanations ran
        assert "Could not compute" not in win.heatmap.status.text()


@pytest.mark.slow
def test_the_service_runs_a_search_beside_busy_background_work(gallery):
    """In the helper process a search has its own thread: it finishes while the one background thread is
    busy with severity curves (seconds), and a call cancelled before it was sent never runs."""

    from fasfinder.host import ProcessHost

    settings, _inner, (q1, q2) = gallery
    host = ProcessHost(settings, threads=1)
    try:
        res = host.call("analyze", str(q1), record=False)
        assert res.error is None
        face_id = res.faces[0].matches[0].face_id
        jobs = [("liveness", "face", None), ("liveness", "image", None), ("similarity", "face", face_id),
                ("similarity", "image", face_id)]  # distinct keys: no cached curves, seconds of work in all
        with ThreadPoolExecutor(len(jobs) + 1) as ex:
            curves = [ex.submit(host.call, "severity", res.sha256, 0, fid, target=target, region=region, path=str(q1))
                      for target, region, fid in jobs]
            time.sleep(0.3)  # the first is running on the one background thread, the others wait behind it
            queued = ex.submit(host.call, "info")  # waits behind all of them on the same thread
            t0 = time.perf_counter()
            again = host.call("analyze", str(q2), record=False)
            took = time.perf_counter() - t0
            assert again.error is None
            assert not queued.done(), f"search took {took:.1f} s, after the background calls"
            for c in curves:
                c.result(timeout=SLOW_MS / 1e3)
            queued.result(timeout=SLOW_MS / 1e3)
        token = CancelToken()
        token.cancel()
        with pytest.raises(Cancelled):
            host.call("explain_face", res.sha256, 0, cancel=token)
    finally:
        host.close()
