"""Compute threads: torch work side by side on the machine's cores, without oversubscription.

A query's liveness check and its embedding + search are independent, and the liveness ensemble's
members are independent of each other. Torch releases the GIL inside its operators, so these can
run on threads of one process at once. :func:`compute_pool` is one small persistent pool whose
threads each run torch with ONE intra-op thread. Work is cut into small parts
(:meth:`ComputePool.start`); the workers take them in order, and the thread that asks for the
result takes back every part no worker has started yet and runs it itself, also with one torch
thread (:class:`Pending`). The pool has one worker fewer than the machine has cores, because the
caller is always the other busy thread: on a 2-core machine one worker plus the caller, two
threads for two cores, whether the caller has its own work meanwhile (a query embeds and searches
while its liveness check runs) or only waits (then it shares the parts).

``torch.set_num_threads`` is per thread for threads that already ran torch (OpenMP keeps the count
per thread), but it also sets the count a NEW thread starts with; the pool therefore gives the
creating thread (and later threads) their count back after its workers have set theirs
(checked in tests/test_query_stages.py).

What keeps it deadlock-free and deterministic:

* a pool task never waits on the pool: on a worker, :meth:`ComputePool.start` runs the parts at
  once, serially, in that thread;
* values come back in the order of the parts, never in completion order, and the caller combines
  them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

__all__ = ["MAX_WORKERS", "ComputePool", "Pending", "compute_pool", "in_pool", "set_compute_threads", "torch_threads"]

#: The most worker threads the pool gets (the ensemble has 10 members: more buys nothing here).
MAX_WORKERS = 3

_local = threading.local()


def in_pool() -> bool:
    """True on a worker thread of a :class:`ComputePool` (it must not wait on the pool)."""

    return bool(getattr(_local, "worker", False))


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads in THIS thread (restored after): torch's and, when
    loaded, faiss's (each wheel brings its own OpenMP runtime, so torch's setting does not reach a
    gallery search; two faiss threads beside a busy compute worker made the 1e5 search of a query
    2-3x slower). A no-op for a library that is not loaded or already at ``n``."""

    libs = []
    for name, get, put in (("torch", "get_num_threads", "set_num_threads"),
                           ("faiss", "omp_get_max_threads", "omp_set_num_threads")):
        mod = sys.modules.get(name)
        if mod is not None:
            before = getattr(mod, get)()
            if before != n:
                libs.append((getattr(mod, put), before))
    for put, _ in libs:
        put(n)
    try:
        yield
    finally:
        for put, before in libs:
            put(before)


def _timed(fn: Callable, part):
    t0 = time.perf_counter()
    value = fn(part)
    return value, t0, time.perf_counter()


class Pending:
    """The values of :meth:`ComputePool.start`'s parts, in their order.

    :meth:`result` waits; a part no worker has started yet is taken back and run by the waiting
    thread itself (with one torch thread), so a caller that has finished its own work helps
    instead of idling. ``span_ms``: first start to last end of the parts (their own wall time,
    however they overlapped with the caller's work). ``concurrent``: False when the parts already
    ran inline (no pool, or called on a worker).
    """

    def __init__(self, fn: Callable, parts: Sequence, futures: list[Future] | None):
        self.fn, self.parts, self.futures = fn, list(parts), futures
        self._values: list | None = None
        self._then: list[Callable] = []
        self._out: tuple | None = None
        self.span_ms = 0.0
        if futures is None:
            self._finish([_timed(fn, p) for p in self.parts])

    @property
    def concurrent(self) -> bool:
        return self.futures is not None

    def _finish(self, timed: list) -> None:
        self._values = [v for v, _, _ in timed]
        if timed:
            self.span_ms = (max(t1 for _, _, t1 in timed) - min(t0 for _, t0, _ in timed)) * 1e3

    def then(self, fn: Callable) -> Pending:
        """Apply ``fn`` to the values (once, in the thread that asks for the result); returns self."""

        self._then.append(fn)
        return self

    def result(self):
        """The parts' values in order, after the :meth:`then` functions. Raises the first part's error
        (every part has finished or failed by then)."""

        if self._values is None:
            timed: list = [None] * len(self.parts)
            error: BaseException | None = None
            with torch_threads(1):
                for i, f in enumerate(self.futures):
                    if error is None and f.cancel():  # no worker has started it: this thread runs it
                        try:
                            timed[i] = _timed(self.fn, self.parts[i])
                        except BaseException as exc:  # noqa: BLE001 - raised below, once the others are done
                            error = exc
            wait([f for f in self.futures if not f.cancelled()])
            for i, f in enumerate(self.futures):
                if timed[i] is None and not f.cancelled():
                    if f.exception() is not None:
                        error = error or f.exception()
                    else:
                        timed[i] = f.result()
            if error is not None:
                raise error
            self._finish(timed)
        if self._out is None:
            out = self._values
            for fn in self._then:
                out = fn(out)
            self._out = (out,)
        return self._out[0]


def _worker_init(ready: threading.Barrier) -> None:
    _local.worker = True
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    ready.wait()


class ComputePool:
    """A persistent pool of ``workers`` threads, each running torch with one intra-op thread
    (0 workers: no threads, every part runs serially in the thread that starts it)."""

    def __init__(self, workers: int):
        self.workers = max(0, int(workers))
        self._ex: ThreadPoolExecutor | None = None
        if self.workers == 0:
            return
        torch = sys.modules.get("torch")
        before = torch.get_num_threads() if torch is not None else None
        ready = threading.Barrier(self.workers + 1)
        self._ex = ThreadPoolExecutor(self.workers, thread_name_prefix="fasfinder-compute",
                                      initializer=_worker_init, initargs=(ready,))
        for _ in range(self.workers):  # start every worker now (each sets its own torch thread count) ...
            self._ex.submit(int)
        ready.wait(timeout=30)
        if before is not None:  # ... then the creating thread, and threads started later, get theirs back
            torch.set_num_threads(before)

    def start(self, fn: Callable, parts: Sequence) -> Pending:
        """Start ``fn(p)`` for every part and return at once; ``.result()`` gives ``[fn(p) for p in
        parts]`` in the order of ``parts``. On a pool worker, or without workers, the parts run at
        once, serially, in this thread."""

        if self._ex is None or in_pool():
            return Pending(fn, parts, None)
        return Pending(fn, parts, [self._ex.submit(_timed, fn, p) for p in parts])

    def map(self, fn: Callable, parts: Sequence) -> list:
        """``[fn(p) for p in parts]``, shared between the pool and this thread."""

        return self.start(fn, parts).result()

    def shutdown(self) -> None:
        if self._ex is not None:
            self._ex.shutdown(wait=True)


_pool: ComputePool | None = None
_pool_lock = threading.Lock()


def default_workers() -> int:
    """``$FASFINDER_COMPUTE_THREADS`` when set (0: serial), else one per core but one (the caller's), at most
    :data:`MAX_WORKERS`."""

    env = os.environ.get("FASFINDER_COMPUTE_THREADS", "").strip()
    if env.isdigit():
        return int(env)
    return max(0, min(MAX_WORKERS, (os.cpu_count() or 1) - 1))


def compute_pool() -> ComputePool:
    """The process's pool (created on first use, :func:`default_workers` threads)."""

    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ComputePool(default_workers())
        return _pool


def set_compute_threads(workers: int) -> ComputePool:
    """Replace the process's pool by one of ``workers`` threads (0: serial, as before the pool existed)."""

    global _pool
    with _pool_lock:
        old, _pool = _pool, ComputePool(workers)
    if old is not None:
        old.shutdown()
    return _pool
