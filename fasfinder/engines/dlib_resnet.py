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

    def embed_faces(self, rgb: np.ndarray, faces: list[Face], *, flip: bool = False) -> np.ndarray:
        chips = [face_chip(rgb, f) for f in faces]
        emb = self.descriptors_from_chips(chips)
        if flip and chips:
            emb = emb + self.descriptors_from_chips([c[:, ::-1] for c in chips])
        return l2_normalise(emb)
