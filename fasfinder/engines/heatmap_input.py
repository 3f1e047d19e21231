"""The heatmap channel and the input crops, identical at training and at query time.

Definition (for any face, seen in training or not): Grad-CAM++ of the PyTorch port of dlib's
ResNet (``dlib-resnet-torch``) at its layer ``level2`` (8 x 8 cells on the 150 px chip), target =
the projection of the face's embedding on its own detached unit direction (the class-agnostic
"self" target of :mod:`fasfinder.explain`), ReLU, min-max normalised to [0, 1], resized to the
150 px chip (bilinear) and normalised again -- exactly ``explain_face(rgb, face).chip_heatmap``
(both maps come from :func:`fasfinder.gradcam.grad_cam_plus_plus`), but computed here with the
affine layers folded into the convolutions, gradients only from ``level2`` upwards and batched,
which is several times faster. The chip map is then resized to the model's input (``size`` x ``size``, area
interpolation) like the RGB crop, which is dlib's aligned 150 px chip resized the same way, so
pixels and heatmap stay registered. The mirror view uses the mirrored heatmap (as the training
augmentation does when it flips an image).

Teacher embeddings for distillation come out of the same forward pass.

Runtime code (the heatmap engines and ``cam-vector`` use it at query time); the training code in
:mod:`fasfinder.training` imports it so that both sides share this one definition.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from ..faces import CHIP_SIZE, Face, face_chip
from ..gradcam import grad_cam_plus_plus
from ..modelfiles import cached_model

LAYER = "level2"
HEATMAP_DEFINITION = (
    "Grad-CAM++ of dlib-resnet-torch at layer level2, self-projection target "
    "<f(x), f(x0)/|f(x0)|>, ReLU, min-max to [0,1], bilinear to the 150 px dlib chip, "
    "min-max again (= fasfinder.explain.explain_face(...).chip_heatmap), then INTER_AREA-resized "
    "to the model input; mirror view = mirrored map"
)


def chip_to_input(chip: np.ndarray, size: int) -> np.ndarray:
    """A 150 px chip (RGB uint8 or a float heatmap) resized to the model input size."""

    import cv2

    if chip.shape[0] == size:
        return chip
    return cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA)


class FastCam:
    """Batched Grad-CAM++ (self target) + teacher descriptors from the fused dlib port."""

    memo_size = 256

    def __init__(self, model=None, layer: str = LAYER, device: str = "cpu"):
        import torch

        from .dlib_torch import STAGES, load_model

        self.device = torch.device(device)
        self.model = (model or load_model(fused=True)).eval().to(self.device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        names = [s[0] for s in STAGES]
        if layer not in names:
            raise ValueError(f"unknown layer {layer!r}")
        i = names.index(layer)
        self.head_stages, self.tail_stages = names[: i + 1], names[i + 1 :]
        self.layer = layer
        self._lock = threading.Lock()
        self._torch = torch
        self._memo: OrderedDict = OrderedDict()
        self._memo_lock = threading.Lock()

    def _head(self, x):
        F = self._torch.nn.functional
        m = self.model
        x = F.max_pool2d(F.relu(m.stem(x)), 3, 2)
        for name in self.head_stages:
            x = getattr(m, name)(x)
        return x

    def _tail(self, a):
        m = self.model
        for name in self.tail_stages:
            a = getattr(m, name)(a)
        return m.fc(a.mean(dim=(2, 3)))

    def __call__(self, chips: np.ndarray | list[np.ndarray], batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """(heatmaps (n, 150, 150) float32 in [0, 1], raw teacher descriptors (n, 128)).

        The last ``memo_size`` chips' results are remembered (keyed by the chip's bytes), so that
        several engines needing the same face's heatmap (the Heatmap models, ``cam-vector``, the
        GUI's docks, a multi-engine evaluation) compute it once.
        """

        chips = np.stack([np.asarray(c, dtype=np.uint8) for c in chips]) if len(chips) else np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
        keys = [hashlib.blake2b(c.tobytes(), digest_size=16).digest() for c in chips]
        with self._memo_lock:
            known = {k: self._memo[k] for k in keys if k in self._memo}
        todo = [i for i, k in enumerate(keys) if k not in known]
        if todo:
            maps, descs = self._compute(chips[todo], batch)
            with self._memo_lock:
                for i, m, d in zip(todo, maps, descs):
                    known[keys[i]] = self._memo[keys[i]] = (m, d)
                    while len(self._memo) > self.memo_size:
                        self._memo.popitem(last=False)
        if not keys:
            return np.zeros((0, CHIP_SIZE, CHIP_SIZE), np.float32), np.zeros((0, 128), np.float32)
        return np.stack([known[k][0] for k in keys]), np.stack([known[k][1] for k in keys])

    def clear_memo(self) -> None:
        """Forget remembered chips (benchmarks time the computation itself)."""

        with self._memo_lock:
            self._memo.clear()

    def _compute(self, chips: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        maps, descs = [], []
        with self._lock, torch.inference_mode(False), torch.enable_grad():
            for s in range(0, len(chips), batch):
                x = self.model.preprocess(torch.from_numpy(chips[s : s + batch]).to(self.device))
                with torch.no_grad():
                    a = self._head(x)
                a = a.detach().requires_grad_(True)
                f = self._tail(a)
                f0 = f.detach()
                target = (f * (f0 / f0.norm(dim=1, keepdim=True).clamp_min(1e-12))).sum()
                (g,) = torch.autograd.grad(target, a)
                A = a.detach().cpu().numpy().astype(np.float32)
                G = g.cpu().numpy().astype(np.float32)
                maps.append(grad_cam_plus_plus(A, G, (CHIP_SIZE, CHIP_SIZE)))
                descs.append(f0.cpu().numpy())
        if not maps:
            return np.zeros((0, CHIP_SIZE, CHIP_SIZE), np.float32), np.zeros((0, 128), np.float32)
        return np.concatenate(maps), np.concatenate(descs).astype(np.float32)


def default_cam() -> FastCam:
    """The process-wide :class:`FastCam` (its memo is shared by every engine and dock)."""

    return cached_model(("heatmap-channel", "FastCam"), FastCam)


def face_inputs(rgb: np.ndarray, faces: list[Face], size: int, *, heatmap: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Model inputs for faces: crops (n, size, size, 3) uint8 and heatmaps (n, size, size) or None."""

    chips = [face_chip(rgb, f) for f in faces]
    crops = np.stack([chip_to_input(c, size) for c in chips]) if chips else np.zeros((0, size, size, 3), np.uint8)
    if not heatmap:
        return crops, None
    maps, _ = default_cam()(chips)
    heat = np.stack([chip_to_input(m, size) for m in maps]) if len(maps) else np.zeros((0, size, size), np.float32)
    return crops, heat.astype(np.float32)
