"""One generic worker (napari/superqt shape) on a QThreadPool.

``Worker(fn, *args, **kwargs)`` runs ``fn`` on a pool thread; if ``fn`` accepts ``progress`` and/or
``cancel`` keyword arguments it gets a ``progress(done, total, message)`` callable and a
:class:`CancelToken`. Its ``signals`` (started, progress, returned, errored, finished) are
emitted on the GUI thread: the worker thread emits on a private QObject whose signals are
relayed through slots of a QObject living in the GUI thread, so any callable -- lambdas too --
connected to ``worker.signals`` runs on the GUI thread. Results reach widgets only this way.
"""

from __future__ import annotations

import inspect
import logging
import time

from PySide6.QtCore import QCoreApplication, QElapsedTimer, QObject, QRunnable, QThreadPool, Signal, Slot

from fasfinder.errors import Cancelled
from fasfinder.service import CancelToken

log = logging.getLogger("fasfinder.ui")


class WorkerSignals(QObject):
    started = Signal()
    progress = Signal(int, int, str)
    returned = Signal(object)
    errored = Signal(object)
    finished = Signal()


class _Relay(WorkerSignals):
    """Lives in the GUI thread; re-emits what the worker thread sent (queued connections)."""

    @Slot()
    def on_started(self):
        self.started.emit()

    @Slot(int, int, str)
    def on_progress(self, done, total, msg):
        self.progress.emit(done, total, msg)

    @Slot(object)
    def on_returned(self, value):
        self.returned.emit(value)

    @Slot(object)
    def on_errored(self, exc):
        self.errored.emit(exc)

    @Slot()
    def on_finished(self):
        self.finished.emit()


class Worker(QRunnable):
    def __init__(self, fn, *args, name: str = "", **kwargs):
        super().__init__()
        self.setAutoDelete(False)
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.name = name or getattr(fn, "__name__", "worker")
        self.token = CancelToken()
        self._raw = WorkerSignals()
        self.signals = _Relay()
        self._raw.started.connect(self.signals.on_started)
        self._raw.progress.connect(self.signals.on_progress)
        self._raw.returned.connect(self.signals.on_returned)
        self._raw.errored.connect(self.signals.on_errored)
        self._raw.finished.connect(self.signals.on_finished)
        try:
            params = inspect.signature(fn).parameters
            takes_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
            self._pass_progress = takes_kw or "progress" in params
            self._pass_cancel = takes_kw or "cancel" in params
        except (TypeError, ValueError):
            self._pass_progress = self._pass_cancel = False
        self._last_progress = 0.0
        self.done = False

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    def _progress(self, done: int, total: int, message: str = "") -> None:
        # Throttle to ~30 updates/s so a fast loop cannot flood the event queue; always send the last.
        now = time.monotonic()
        if done >= total or now - self._last_progress > 0.03:
            self._last_progress = now
            self._raw.progress.emit(int(done), int(total), str(message))

    def run(self) -> None:
        self._raw.started.emit()
        if self.token.cancelled:  # cancelled while it waited for a thread: never started
            self._raw.errored.emit(Cancelled(f"{self.name}: cancelled before it started"))
            self._raw.finished.emit()
            return
        try:
            kwargs = dict(self.kwargs)
            if self._pass_progress:
                kwargs["progress"] = self._progress
            if self._pass_cancel:
                kwargs["cancel"] = self.token
            value = self.fn(*self.args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported through `errored`, never raised into Qt
            if not getattr(exc, "code", None):
                log.exception("worker %s failed", self.name)
            self._raw.errored.emit(exc)
        else:
            self._raw.returned.emit(value)
        finally:
            self._raw.finished.emit()


class WorkerPool(QObject):
    """A QThreadPool plus the set of live workers (so they can be cancelled and awaited).

    ``lanes``: {name: threads} of extra thread pools; a worker started with ``lane=name`` runs on
    its own lane, never queued behind the main pool's workers (searches: ui/session.py). The set
    of live workers, :meth:`cancel_all` and :meth:`wait_idle` cover every lane."""

    idle = Signal()

    def __init__(self, max_threads: int = 4, parent=None, lanes: dict[str, int] | None = None):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.lanes: dict[str, QThreadPool] = {}
        for lane, threads in (lanes or {}).items():
            self.lanes[lane] = QThreadPool(self)
            self.lanes[lane].setMaxThreadCount(threads)
        self.active: set[Worker] = set()

    def start(self, fn, *args, on_result=None, on_error=None, on_progress=None, on_finished=None,
              name: str = "", lane: str = "", **kwargs) -> Worker:
        w = Worker(fn, *args, name=name, **kwargs)
        if on_result:
            w.signals.returned.connect(on_result)
        if on_error:
            w.signals.errored.connect(on_error)
        if on_progress:
            w.signals.progress.connect(on_progress)
        if on_finished:
            w.signals.finished.connect(on_finished)
        w.signals.finished.connect(lambda w=w: self._done(w))
        self.active.add(w)
        self.lanes.get(lane, self.pool).start(w)
        return w

    def _done(self, w: Worker) -> None:
        w.done = True
        self.active.discard(w)
        if not self.active:
            self.idle.emit()

    def cancel_all(self) -> None:
        for w in list(self.active):
            w.cancel()

    def wait_idle(self, timeout_ms: int = 300_000, settle_ms: int = 300) -> bool:
        """Process events until no worker has run for ``settle_ms`` (chained workers included)."""

        timer = QElapsedTimer()
        timer.start()
        quiet = QElapsedTimer()
        quiet.start()
        while timer.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            if self.active:
                quiet.restart()
            elif quiet.elapsed() >= settle_ms:
                return True
            time.sleep(0.01)
        return False
