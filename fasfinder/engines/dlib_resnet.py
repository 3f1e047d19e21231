"""Reference engine: dlib's ResNet face descriptor (128-d) running in dlib's C++."""

from __future__ import annotations

import threading

import numpy as np

from ..faces import Face, face_chip
from ..modelfiles import dlib_file
from .base import Engine, l2_normalise


class DlibResNetEngine(Engine):
    name = "dlib-resnet"
    dim = 128
    card_name = "dlib-resnet"

    def __init__(self) -> None:
        self._net = None
        self._lock = threading.Lock()

    def _model(self):
        import dlib

        if self._net is None:
            self._net = dlib.face_recognition_model_v1(str(dlib_file("resnet")))
        return self._net

    def descriptors_from_chips(self, chips: list[np.ndarray]) -> np.ndarray:
        """Raw (unnormalised) dlib descriptors of 150x150 aligned chips."""

        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            net = self._model()
            out = net.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
        return np.array([np.array(d) for d in out], dtype=np.float32)

    def embed_views(self, rgb: np.ndarray, faces: list[Face], *, mirror: bool = True):
        chips = [face_chip(rgb, f) for f in faces]
        views = chips + ([np.ascontiguousarray(c[:, ::-1]) for c in chips] if mirror else [])
        emb = l2_normalise(self.descriptors_from_chips(views)) if views else np.zeros((0, self.dim), np.float32)
        n = len(chips)
        return emb[:n], (emb[n:] if mirror else None)
