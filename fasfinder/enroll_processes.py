"""Worker processes for large enrollments: the compute of a batch (decode, detection, landmarks,
liveness, embeddings) on one process per core, the checks and writes in the calling process.

Threads of one Python process do not scale here: dlib's detector, the liveness CNNs and the
embedding network each release the GIL inside their kernels, but the many small operations between
them take it back, and two threads of one process reached about 1.3x of one (measured,
docs/results/throughput.md); two processes reach 2x. A worker process costs a few seconds to start
(torch, dlib and the models load), so only enrollments of at least :data:`PROCESS_MIN_FILES` files
use them, and the pool stays up for the service's lifetime (``FasFinder.close`` ends it).

A worker has no gallery: it never opens the database (the duplicate check runs again at the write),
and sends back each file's decoded image, faces, liveness verdicts and embeddings. A daemonic
process (the GUI's service host) cannot have children: there the enrollment runs on threads.
``FASFINDER_ENROLL_PROCESSES=0`` switches the processes off, ``=N`` sets their number.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

log = logging.getLogger(__name__)

#: Enrollments of fewer files stay in this process (starting the workers costs seconds).
PROCESS_MIN_FILES = 64
PROCESSES_ENV = "FASFINDER_ENROLL_PROCESSES"

_SERVICE = None  # the worker process's own service object (set by _start_worker)


def process_count() -> int:
    """Worker processes to use: ``$FASFINDER_ENROLL_PROCESSES``, else one per core (0 on one core
    or inside a daemonic process, which may not start children)."""

    if mp.current_process().daemon:
        return 0
    raw = os.environ.get(PROCESSES_ENV, "").strip()
    if raw:
        try:
            return max(0, int(raw))
        except ValueError:
            log.warning("%s=%r is not a number: enrollment workers off", PROCESSES_ENV, raw)
            return 0
    cores = os.cpu_count() or 1
    return cores if cores > 1 else 0


def _start_worker(service_class, gallery: str, settings: dict) -> None:
    """Process initializer: one compute thread, a service of our own with the caller's settings."""

    import cv2
    import torch

    from .compute import set_compute_threads
    from .settings import Settings

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    set_compute_threads(0)  # one thread per process: the processes are the parallelism
    global _SERVICE
    _SERVICE = service_class(gallery, settings=Settings(**settings))  # the gallery is never opened here
    _SERVICE.warm_up()


def _compute(paths: list[str], label, label_from: str, refuse: str | None) -> list:
    """Runs in a worker: prepare (no duplicate check) and the networks of one chunk, one after the other."""

    items = [_SERVICE._enroll_prepare(Path(p), label, label_from, refuse, check_duplicate=False) for p in paths]
    return _SERVICE._enroll_compute(items, threads=False)


class EnrollProcesses:
    """A pool of worker processes with the settings of one service."""

    def __init__(self, service, processes: int):
        self.processes = processes
        self._pool = ProcessPoolExecutor(
            max_workers=processes, mp_context=mp.get_context("spawn"), initializer=_start_worker,
            initargs=(type(service), str(service.gallery_path), asdict(service.settings)))
        self.broken = False

    def submit(self, paths: list, label, label_from: str, refuse: str | None) -> list[tuple[list, Future]]:
        """The files split into one chunk per worker: [(chunk, future of its prepared items)]."""

        n = self.processes
        size = -(-len(paths) // n)
        chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
        out = []
        for c in chunks:
            try:
                fut = self._pool.submit(_compute, [str(p) for p in c], label, label_from, refuse)
            except Exception as exc:  # noqa: BLE001 - a broken pool: the caller computes the chunk itself
                fut = Future()
                fut.set_exception(exc)
            out.append((c, fut))
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
