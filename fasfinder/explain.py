"""Grad-CAM++ explanations of the product's matcher (dlib's ResNet, PyTorch port).

* :func:`explain_face` -- face attention: what in this face drives its own embedding;
* :func:`explain_match` -- per-match attention: for a query and a matched gallery face, what in
  each face made it match the other (target = cosine similarity to the other face's embedding);

Heatmaps are computed on dlib's 150x150 aligned chip (exactly what the matcher sees), then mapped
back to the original image with the inverse of :func:`fasfinder.faces.chip_transform` (0 outside
the chip), and summarised over the 10 regions of docs/BENCHMARKS.md section 5 with
:func:`fasfinder.regions.region_importance`.

Target layer: ``level2`` by default, the output of the last 128-channel residual stage (8 x 8
cells on the 150 px chip, about 19 px per cell). The network's last stages are too coarse for
faces: ``level1`` is 4 x 4 and ``level0`` (the last block before the pool) is 2 x 2, so a
Grad-CAM++ map there can only say "upper-left quarter". ``level2`` still sees most of the face
(receptive field well over the chip) while keeping enough resolution to separate eyes, nose,
mouth and cheeks; see docs/results/explain.md for the comparison.

Self target: the cosine of an embedding to its own (detached) embedding is at its maximum, so its
gradient is zero (only rounding noise is left); the self target therefore uses the projection of
the embedding onto its own detached unit direction, ``<f(x), f(x0)/|f(x0)|>``, whose gradient is the
first-order direction of the cosine around the face. The match target is the plain cosine.

Thread-safe: one lock around the model; callable from GUI worker threads. Never call inside
``torch.inference_mode()``/``torch.no_grad()`` -- the functions re-enable gradients themselves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from .faces import CHIP_SIZE, Face, chip_transform, face_chip
from .gradcam import LayerRecorder, grad_cam_plus_plus
from .modelfiles import cached_model
from .regions import region_importance

DEFAULT_LAYER = "level2"


@dataclass
class Explanation:
    heatmap: np.ndarray  # H x W float32 in [0, 1], original image coordinates (0 outside the chip)
    chip_heatmap: np.ndarray  # 150 x 150 float32 in [0, 1]
    regions: dict[str, float]  # region_importance(heatmap, face.landmarks)
    target: str  # "self" or "match"
    layer: str  # name of the target layer
    score: float = float("nan")  # target value: |embedding| along itself (self) or cosine (match)
    extra: dict = field(default_factory=dict)


class SimilarityToConceptTarget:
    """Grad-CAM target: similarity of the model output (one 128-d row) to a fixed concept vector.

    ``mode="cosine"``: cos(output, concept). ``mode="projection"``: <output, concept/|concept|>.
    (grad-cam 1.5.7 has no such target; this is ours; it is also a valid target for that package.)
    """

    def __init__(self, concept, mode: str = "cosine"):
        import torch

        if mode not in ("cosine", "projection"):
            raise ValueError(f"unknown similarity mode {mode!r}")
        c = torch.as_tensor(concept, dtype=torch.float32).detach().reshape(-1)
        self.mode = mode
        self.concept = c if mode == "cosine" else c / c.norm().clamp_min(1e-12)

    def __call__(self, model_output):
        import torch

        out = model_output.reshape(-1)
        concept = self.concept.to(out.device).clone()  # a normal tensor even if made in inference mode
        if self.mode == "cosine":
            return torch.nn.functional.cosine_similarity(out, concept, dim=0)
        return (out * concept).sum()


def chip_to_image(chip_heatmap: np.ndarray, face: Face, shape: tuple[int, int]) -> np.ndarray:
    """Map a chip-sized heatmap back to image coordinates (``shape`` = H, W); 0 outside the chip."""

    import cv2

    m = chip_transform(face)  # image -> chip, which is what WARP_INVERSE_MAP expects
    h, w = shape
    out = cv2.warpAffine(
        np.asarray(chip_heatmap, dtype=np.float32),
        m,
        (int(w), int(h)),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)


class Explainer:
    """Grad-CAM++ (:func:`fasfinder.gradcam.grad_cam_plus_plus`) on a chosen layer of the
    (unfused) PyTorch port of dlib's ResNet."""

    def __init__(self, model=None, layer: str = DEFAULT_LAYER):
        if model is None:
            from .engines.dlib_torch import load_model

            model = load_model(fused=False)
        self.model = model.eval()
        self.layer = layer
        self.model.get_submodule(layer)  # fail early on a bad layer name
        self._lock = threading.Lock()

    # -- low level -------------------------------------------------------------------------
    def _inputs(self, chips: list[np.ndarray]):
        return self.model.preprocess(np.stack([np.asarray(c, dtype=np.uint8) for c in chips]))

    def embed_chips(self, chips: list[np.ndarray]) -> np.ndarray:
        """Raw descriptors (n, 128) of chips, from this explainer's model."""

        import torch

        with self._lock, torch.inference_mode():
            return self.model(self._inputs(chips)).numpy().copy()

    def chip_cams(self, chips: list[np.ndarray], targets: list[SimilarityToConceptTarget]) -> tuple[np.ndarray, np.ndarray]:
        """Grad-CAM++ maps (n, 150, 150) in [0, 1] and the target values (n,)."""

        import torch

        with self._lock, torch.inference_mode(False), torch.enable_grad():
            x = self._inputs(chips)  # a normal tensor even when the caller is in inference mode
            with LayerRecorder([self.model.get_submodule(self.layer)]) as rec:
                outputs = self.model(x)
                (acts,), (grads,) = rec.gradients(sum(t(o) for t, o in zip(targets, outputs)))
            outputs = outputs.detach()
            scores = np.array([float(t(o)) for t, o in zip(targets, outputs)], dtype=np.float64)
        return grad_cam_plus_plus(acts.numpy(), grads.numpy(), x.shape[-2:]), scores

    def _explanation(self, rgb, face, chip_map, target, score) -> Explanation:
        heat = chip_to_image(chip_map, face, rgb.shape[:2])
        return Explanation(
            heatmap=heat,
            chip_heatmap=chip_map.astype(np.float32),
            regions=region_importance(heat, face.landmarks),
            target=target,
            layer=self.layer,
            score=float(score),
        )

    # -- public ----------------------------------------------------------------------------
    def explain_face(self, rgb: np.ndarray, face: Face) -> Explanation:
        chip = face_chip(rgb, face)
        emb = self.embed_chips([chip])[0]
        maps, scores = self.chip_cams([chip], [SimilarityToConceptTarget(emb, "projection")])
        return self._explanation(rgb, face, maps[0], "self", scores[0])

    def explain_match(
        self, query_rgb: np.ndarray, query_face: Face, gallery_rgb: np.ndarray, gallery_face: Face
    ) -> tuple[Explanation, Explanation]:
        chips = [face_chip(query_rgb, query_face), face_chip(gallery_rgb, gallery_face)]
        emb = self.embed_chips(chips)
        targets = [SimilarityToConceptTarget(emb[1], "cosine"), SimilarityToConceptTarget(emb[0], "cosine")]
        maps, scores = self.chip_cams(chips, targets)
        q = self._explanation(query_rgb, query_face, maps[0], "match", scores[0])
        g = self._explanation(gallery_rgb, gallery_face, maps[1], "match", scores[1])
        return q, g


def default_explainer() -> Explainer:
    """The process-wide :class:`Explainer` of the installed dlib port (loaded once)."""

    return cached_model(("explainer", DEFAULT_LAYER), Explainer)


def explain_face(rgb: np.ndarray, face: Face) -> Explanation:
    """Face attention: Grad-CAM++ for the face's own embedding (target ``"self"``)."""

    return default_explainer().explain_face(rgb, face)


def explain_match(
    query_rgb: np.ndarray, query_face: Face, gallery_rgb: np.ndarray, gallery_face: Face
) -> tuple[Explanation, Explanation]:
    """Per-match attention: (query map, gallery map), each for the cosine to the other's embedding."""

    return default_explainer().explain_match(query_rgb, query_face, gallery_rgb, gallery_face)


__all__ = [
    "Explanation",
    "Explainer",
    "SimilarityToConceptTarget",
    "explain_face",
    "explain_match",
    "chip_to_image",
    "default_explainer",
    "DEFAULT_LAYER",
    "CHIP_SIZE",
]
