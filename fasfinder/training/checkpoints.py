"""Resumable training checkpoints loaded without unpickling arbitrary objects.

Every checkpoint is read with ``torch.load(weights_only=True)``: tensors, dicts, lists, strings and
numbers only, so a checkpoint file someone else wrote cannot run code. What goes into one is made
plain first (:func:`plain`: numpy scalars -> Python numbers), and checkpoints written before that
(numpy scalars in their history) are still read through an allowlist of numpy's scalar and dtype
reconstructors only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def plain(obj):
    """``obj`` (a JSON-like record) with numpy scalars and arrays turned into Python numbers and lists."""

    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if isinstance(o, (np.generic, np.ndarray)) else str(o)))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    import torch

    numpy_globals = [np._core.multiarray.scalar, np.dtype, *{type(np.dtype(t)) for t in (np.float16, np.float32, np.float64,
                                                                                       np.int32, np.int64, np.bool_)}]
    with torch.serialization.safe_globals(numpy_globals):
        return torch.load(path, weights_only=True, map_location=map_location)
