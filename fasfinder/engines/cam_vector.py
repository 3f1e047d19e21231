"""``cam-vector``: the seed system's retrieval variant, measured as an engine.

The face's Grad-CAM++ heatmap (the definition of :mod:`fasfinder.engines.heatmap_input`:
``dlib-resnet-torch`` at ``level2``, self target, on dlib's 150 px chip) resized to 128 x 128,
flattened to 16,384 values and L2-normalised; matching is cosine similarity. The mirror view is
the mirrored map. It encodes *where* the matcher looks, not *who* the face is -- see
docs/results/heatmap_models.md for how it compares.
"""

from __future__ import annotations

import numpy as np

from ..faces import Face, face_chip
from .base import Engine, l2_normalise

NAME = "cam-vector"
SIDE = 128


class CamVectorEngine(Engine):
    name = NAME
    #: whether embedding needs the Grad-CAM++ heatmap of fasfinder.engines.heatmap_input
    needs_heatmap = True
    dim = SIDE * SIDE
    card_name = NAME

    def maps(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        from .heatmap_input import default_cam

        maps, _ = default_cam()([face_chip(rgb, f) for f in faces])
        return maps

    def embed_maps(self, chip_maps: np.ndarray, *, mirror: bool = True):
        """(plain, mirrored) embeddings of chip heatmaps (n, 150, 150) already computed (e.g. on
        perturbed chips by the robustness protocol)."""

        import cv2

        if len(chip_maps) == 0:
            empty = np.zeros((0, self.dim), dtype=np.float32)
            return empty, (empty if mirror else None)
        m = np.stack([cv2.resize(np.asarray(c, np.float32), (SIDE, SIDE), interpolation=cv2.INTER_AREA) for c in chip_maps])
        plain = l2_normalise(m.reshape(len(m), -1))
        mirrored = l2_normalise(np.ascontiguousarray(m[:, :, ::-1]).reshape(len(m), -1)) if mirror else None
        return plain, mirrored

    def embed_views(self, rgb: np.ndarray, faces: list[Face], *, mirror: bool = True):
        return self.embed_maps(self.maps(rgb, faces) if faces else np.zeros((0, 150, 150), np.float32), mirror=mirror)

    def verify(self) -> None:
        """The heatmaps come from dlib-resnet-torch: its weights are this engine's weights."""

        from . import get_engine

        get_engine("dlib-resnet-torch").verify()

    def card(self) -> dict:
        from ..modelfiles import load_card

        try:
            return load_card(NAME)
        except Exception:
            return {"name": NAME, "based_on": "dlib-resnet-torch"}


def register_engines(register) -> None:
    register(NAME, CamVectorEngine, "Grad-CAM++ heatmap of dlib-resnet-torch as a 16,384-d vector (the seed's retrieval variant)")


__all__ = ["CamVectorEngine", "register_engines"]
