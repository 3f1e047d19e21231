"""Registry of embedding engines.

An engine turns the faces of an image into L2-normalised embeddings. Engines register a
factory under a stable name; :func:`get_engine` builds each one once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..errors import UnknownEngine
from .base import Engine

_FACTORIES: dict[str, Callable[[], Engine]] = {}
_DESCRIPTIONS: dict[str, str] = {}
_INSTANCES: dict[str, Engine] = {}
_LOCK = threading.Lock()

DEFAULT_ENGINE = "dlib-resnet-torch"


def register(name: str, factory: Callable[[], Engine], description: str = "") -> None:
    _FACTORIES[name] = factory
    _DESCRIPTIONS[name] = description


def engine_names() -> list[str]:
    _register_builtins()
    return list(_FACTORIES)


def describe(name: str) -> str:
    return _DESCRIPTIONS.get(name, "")


def get_engine(name: str | None = None) -> Engine:
    _register_builtins()
    name = name or DEFAULT_ENGINE
    if name not in _FACTORIES:
        raise UnknownEngine(f"unknown engine {name!r}; installed: {', '.join(_FACTORIES)}")
    with _LOCK:
        if name not in _INSTANCES:
            _INSTANCES[name] = _FACTORIES[name]()
        return _INSTANCES[name]


_registered = False


def _register_builtins() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    from . import dlib_resnet

    register("dlib-resnet", dlib_resnet.DlibResNetEngine, "dlib's ResNet-29 face descriptor (128-d), dlib C++")
    # Optional engines register themselves when their modules exist.
    for module in ("dlib_torch", "heatmap_nets", "cam_vector"):
        try:
            mod = __import__(f"{__name__}.{module}", fromlist=["register_engines"])
        except ImportError:
            continue
        hook = getattr(mod, "register_engines", None)
        if hook:
            hook(register)


__all__ = ["Engine", "register", "get_engine", "engine_names", "describe", "DEFAULT_ENGINE"]
