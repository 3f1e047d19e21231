"""Where the service runs: in a helper process (default) or in this process. No Qt here.

dlib's C++ descriptor holds Python's GIL for the whole forward pass (0.5-1.5 s per face on this
machine), so running :class:`fasfinder.service.FasFinder` on a thread of the GUI process freezes the
window however the threads are arranged. :class:`ProcessHost` therefore owns the service in a
spawned child process; GUI worker threads call it and *wait* on a pipe (waiting releases the
GIL). :class:`LocalHost` runs the same calls in-process (tests, benchmarks, debugging).

Searches (:data:`QUERY_OPERATIONS`) run on their own thread of the child, never queued behind
explanations, heatmaps or imports; the other calls share a pool whose threads run at a lower OS
priority, so a search wins the cores. A call cancelled before it started never runs.

Every call names an operation of :data:`fasfinder.service.OPERATIONS`, the one explicit list of
service methods a front end may call; :func:`dispatch` refuses anything else. Arguments and results
are the plain values and result objects of :mod:`fasfinder.results` (pickled over the pipe); query
images are named by sha256, never sent back.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import os
import threading
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from collections.abc import Callable

from . import errors
from .errors import BadArgument, Cancelled, FasFinderError, ModelError
from .operations import CancelToken
from .service import OPERATIONS, FasFinder
from .settings import Settings

log = logging.getLogger("fasfinder.host")

#: Operations that run on the child's search thread (a person waits for these on screen).
QUERY_OPERATIONS = frozenset({"analyze", "search"})

#: How much lower (nice) the child's other threads run than its search thread.
BACKGROUND_NICE = 5


def dispatch(service: FasFinder, method: str, args: tuple, kwargs: dict,
             progress: Callable | None, cancel: CancelToken) -> object:
    """Run the operation ``method`` of :data:`OPERATIONS` on ``service``."""

    op = OPERATIONS.get(method)
    if op is None:
        raise BadArgument(f"unknown operation {method!r}; the service offers: {', '.join(OPERATIONS)}")
    if op.progress:
        kwargs = dict(kwargs, progress=progress, cancel=cancel)
    return getattr(service, method)(*args, **kwargs)


def _configure_threads() -> None:
    """One compute thread per model call: the GUI process keeps the other core."""

    import torch

    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)


def _background_thread() -> None:
    """Lower this thread's OS priority (Linux: per thread): the search thread wins the cores."""

    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICE)
    except (AttributeError, OSError):  # pragma: no cover - not Linux / not permitted
        pass


def _error_tuple(exc: BaseException) -> tuple:
    code = getattr(exc, "code", None)
    return (type(exc).__name__, code, str(getattr(exc, "message", None) or exc) or type(exc).__name__,
            traceback.format_exc())


def _rebuild_error(name: str, code: str | None, message: str, tb: str) -> Exception:
    """The caller's side of an error raised by an operation: the same typed error of fasfinder.errors."""

    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, FasFinderError):
        return cls(message, code=code) if cls is not Cancelled else Cancelled(message)
    if name in ("ImportError", "ModuleNotFoundError"):
        return ModelError(message, code="model_missing")
    if code:
        return FasFinderError(message, code=code)
    log.error("service error %s: %s\n%s", name, message, tb)
    return FasFinderError(f"{name}: {message}", code="internal_error")


class Host:
    """Interface: ``call(method, *args, progress=None, cancel=None, **kwargs)`` blocks until done."""

    settings: Settings

    def call(self, method: str, *args, progress=None, cancel: CancelToken | None = None, **kwargs):
        raise NotImplementedError

    def close(self) -> None:
        pass


class LocalHost(Host):
    """The service in this process (the GIL-holding dlib engine will stall the GUI)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        _configure_threads()
        self.service = FasFinder(settings=settings)

    def call(self, method, *args, progress=None, cancel=None, **kwargs):
        cancel = cancel or CancelToken()
        try:
            return dispatch(self.service, method, args, kwargs, progress, cancel)
        except FasFinderError:
            raise
        except Exception as exc:
            raise _rebuild_error(*_error_tuple(exc)) from exc

    def close(self) -> None:
        self.service.close()


# ---------------------------------------------------------------------------------------------
# Process host
# ---------------------------------------------------------------------------------------------
def _serve(conn, settings: dict, threads: int) -> None:  # runs in the child process
    try:  # the GUI process wins the CPU when the cores are contended
        os.nice(5)
    except (AttributeError, OSError):  # pragma: no cover - Windows / not permitted
        pass
    _configure_threads()
    from .compute import compute_pool

    compute_pool()  # its threads are started here, at the search thread's priority, not by a background call
    service = FasFinder(settings=Settings(**settings))
    send_lock = threading.Lock()
    tokens: dict[int, CancelToken] = {}

    def send(msg) -> None:
        with send_lock:
            conn.send(msg)

    def run(call_id, method, args, kwargs):
        token = tokens[call_id]

        def progress(done, total, message=""):
            send(("progress", call_id, int(done), int(total), str(message)))

        try:
            if token.cancelled:  # cancelled while it waited for a thread: never started
                raise Cancelled(f"{method}: cancelled before it started")
            value = dispatch(service, method, args, kwargs, progress, token)
            send(("ok", call_id, value))
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
            send(("err", call_id, _error_tuple(exc)))
        finally:
            tokens.pop(call_id, None)

    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fasfinder-host", initializer=_background_thread)
    queries = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fasfinder-host-query")
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "call":
                _, call_id, method, args, kwargs = msg
                tokens[call_id] = CancelToken()
                (queries if method in QUERY_OPERATIONS else pool).submit(run, call_id, method, args, kwargs)
            elif kind == "cancel":
                tok = tokens.get(msg[1])
                if tok is not None:
                    tok.cancel()
            elif kind == "stop":
                for tok in list(tokens.values()):
                    tok.cancel()
                break
    finally:
        queries.shutdown(wait=True, cancel_futures=True)
        pool.shutdown(wait=True, cancel_futures=True)
        service.close()


class ProcessHost(Host):
    """The service in a spawned child process; calls are multiplexed over one pipe."""

    def __init__(self, settings: Settings, threads: int = 2):
        self.settings = settings
        self.threads = threads
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Future, Callable | None]] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._proc = None
        self._conn = None
        self._start()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=_serve, args=(child, asdict(self.settings), self.threads),
                                 name="fasfinder-host", daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        self._reader = threading.Thread(target=self._read, args=(parent,), name="fasfinder-host-reader", daemon=True)
        self._reader.start()

    def _read(self, conn) -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            kind, call_id = msg[0], msg[1]
            with self._lock:
                entry = self._pending.get(call_id)
            if entry is None:
                continue
            fut, progress = entry
            if kind == "progress":
                if progress is not None:
                    try:
                        progress(msg[2], msg[3], msg[4])
                    except Exception:  # pragma: no cover - a broken callback must not kill the reader
                        log.exception("progress callback failed")
                continue
            with self._lock:
                self._pending.pop(call_id, None)
            if kind == "ok":
                fut.set_result(msg[2])
            else:
                fut.set_exception(_rebuild_error(*msg[2]))
        # The child is gone: fail whatever is still waiting.
        with self._lock:
            pending, self._pending = self._pending, {}
        for fut, _ in pending.values():
            if not fut.done():
                fut.set_exception(FasFinderError("the inference process stopped", code="host_stopped"))

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def call(self, method, *args, progress=None, cancel=None, **kwargs):
        if cancel is not None and cancel.cancelled:
            raise Cancelled(f"{method}: cancelled before it started")
        if not self.alive:
            self._start()
        call_id = next(self._ids)
        fut: Future = Future()
        with self._lock:
            self._pending[call_id] = (fut, progress)
        with self._send_lock:
            self._conn.send(("call", call_id, method, args, kwargs))
        cancel_sent = False
        while True:
            try:
                return fut.result(timeout=0.1)
            except TimeoutError:
                if cancel is not None and cancel.cancelled and not cancel_sent:
                    cancel_sent = True
                    with self._send_lock:
                        self._conn.send(("cancel", call_id))
                if not self.alive and not fut.done():
                    raise FasFinderError("the inference process stopped", code="host_stopped") from None

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            with self._send_lock:
                self._conn.send(("stop",))
        except (OSError, ValueError):
            pass
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
        self._conn.close()
        self._proc = None


def make_host(settings: Settings, kind: str | None = None) -> Host:
    kind = kind or os.environ.get("FASFINDER_HOST", "process")
    return LocalHost(settings) if kind == "local" else ProcessHost(settings)
