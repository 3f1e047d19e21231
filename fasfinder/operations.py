"""The vocabulary of the service API: operations, progress callbacks and cancel tokens. No Qt.

Every method of :class:`fasfinder.service.FasFinder` that a front end may call is marked with
:func:`operation`; :func:`operation_table` collects them into the one explicit list of operations
(``fasfinder.service.OPERATIONS``) that :mod:`fasfinder.host` forwards by name. Long operations
are marked ``progress=True``: they take ``progress(done, total, message)`` and ``cancel`` keyword
arguments, so the same code drives the CLI's progress output and the GUI's progress bar.
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from collections.abc import Callable

from .errors import Cancelled

Progress = Callable[[int, int, str], None]

_MARK = "__fasfinder_operation__"


class CancelToken:
    """Set from any thread to stop a long operation at its next checkpoint."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


@dataclass(frozen=True)
class Operation:
    name: str
    progress: bool  # takes ``progress=`` and ``cancel=`` keyword arguments
    doc: str


def operation(func=None, *, progress: bool = False):
    """Mark a service method as an operation front ends may call (``@operation`` or ``@operation(progress=True)``)."""

    def mark(f):
        if progress:
            params = inspect.signature(f).parameters
            missing = {"progress", "cancel"} - set(params)
            if missing:
                raise TypeError(f"operation {f.__name__} is marked progress=True but lacks {sorted(missing)}")
        setattr(f, _MARK, progress)
        return f

    return mark(func) if func is not None else mark


def operation_table(cls) -> dict[str, Operation]:
    """``{name: Operation}`` of every method of ``cls`` (and its bases) marked with :func:`operation`."""

    table = {}
    for name in sorted(dir(cls)):
        member = getattr(cls, name)
        if callable(member) and hasattr(member, _MARK):
            doc = (inspect.getdoc(member) or "").split("\n", 1)[0]
            table[name] = Operation(name=name, progress=getattr(member, _MARK), doc=doc)
    return table
