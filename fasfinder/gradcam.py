"""Grad-CAM++ (Chattopadhay et al., WACV 2018): the one implementation behind every heatmap.

Every explanation map of the product comes from :func:`grad_cam_plus_plus`:

* :mod:`fasfinder.explain` -- face and per-match attention of the matcher (dlib port);
* :class:`fasfinder.engines.heatmap_input.FastCam` -- the heatmap channel of the heatmap-channel
  recognizers (batched, on the fused dlib port);
* :mod:`fasfinder.liveness` -- the liveness models' maps.

It computes what ``pytorch_grad_cam.GradCAMPlusPlus`` (grad-cam 1.5.7) computes for one target
layer (``tests/test_gradcam.py`` checks the two agree): per channel ``k`` the weight

    w_k = sum_ij relu(g_kij) * a_kij,   a_kij = g^2 / (2 g^2 + sum_ij(A_k) g^3 + 1e-6)  (0 where g = 0)

then ``cam = relu(sum_k w_k A_k)``, min-max scaled to [0, 1], resized (bilinear) to the image and
scaled again. The arithmetic runs in the dtype of the arrays given (float32 for the matcher and
the heatmap channel, float64 for the liveness models, as each did before it was shared), so
every caller's numbers are exactly what they were. Written out rather than imported: the package
costs seconds at start-up (it pulls in torchvision) and has no batched, memoised path.

:class:`LayerRecorder` collects the activations of target layers during a forward pass (every
pass through a layer: a network may run a layer several times) and their gradients for a scalar
target.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6  # grad-cam's eps in the alpha denominator


def cam_weights(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Grad-CAM++ channel weights (n, K) from activations and gradients (n, K, h, w)."""

    g2 = gradients**2
    g3 = g2 * gradients
    sum_a = activations.sum(axis=(2, 3), keepdims=True)
    alpha = g2 / (2 * g2 + sum_a * g3 + EPS)
    alpha = np.where(gradients != 0, alpha, 0)
    return (np.maximum(gradients, 0) * alpha).sum(axis=(2, 3))


def scale_map(cam: np.ndarray) -> np.ndarray:
    """Min-max scale one map to [0, 1] (grad-cam's ``scale_cam_image``, without the resize)."""

    cam = cam - cam.min()
    return cam / (1e-7 + cam.max())


def grad_cam_plus_plus(activations, gradients, size: tuple[int, int] | None = None) -> np.ndarray:
    """Grad-CAM++ maps (n, H, W) float32 in [0, 1] of one layer.

    ``activations`` and ``gradients``: (n, K, h, w) arrays (numpy or torch, any float dtype; the
    computation keeps it). ``size`` = (H, W) of the output (bilinear resize); None keeps h x w.
    """

    import cv2

    A = _numpy(activations)
    G = _numpy(gradients)
    if A.ndim != 4 or A.shape != G.shape:
        raise ValueError(f"expected activations and gradients of one shape (n, K, h, w), got {A.shape} and {G.shape}")
    out_h, out_w = (int(size[0]), int(size[1])) if size is not None else A.shape[2:]
    if len(A) == 0:
        return np.zeros((0, out_h, out_w), np.float32)
    w = cam_weights(A, G)
    cams = np.maximum((w[:, :, None, None] * A).sum(axis=1), 0)
    maps = []
    for cam in cams:
        m = scale_map(cam).astype(np.float32)
        if size is not None:
            m = cv2.resize(m, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        maps.append(scale_map(np.maximum(m, 0)))
    return np.clip(np.nan_to_num(np.stack(maps), nan=0.0), 0.0, 1.0).astype(np.float32)


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        return x.detach().cpu().numpy()
    return np.asarray(x)


class LayerRecorder:
    """Forward hooks on target layers: ``passes`` lists (layer index, output) for every pass.

    ::

        with LayerRecorder([layer]) as rec, torch.enable_grad():
            out = model(x)
            acts, grads = rec.gradients(target(out))   # one (A, G) pair of tensors per pass

    The outputs stay in the autograd graph; :meth:`gradients` differentiates the scalar target
    with respect to each of them (zeros for a pass the target does not depend on).
    """

    def __init__(self, layers):
        self.layers = list(layers)
        self.passes: list[tuple[int, object]] = []
        self._handles = []

    def __enter__(self) -> LayerRecorder:
        self.passes = []
        for i, layer in enumerate(self.layers):
            self._handles.append(layer.register_forward_hook(lambda _m, _inp, out, i=i: self.passes.append((i, out))))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def gradients(self, target) -> tuple[list, list]:
        """(activations, gradients): detached tensors, one of each per recorded pass."""

        import torch

        outs = [o for _, o in self.passes]
        grads = torch.autograd.grad(target, outs, allow_unused=True)
        grads = [torch.zeros_like(o) if g is None else g for o, g in zip(outs, grads)]
        return [o.detach() for o in outs], [g.detach() for g in grads]


__all__ = ["LayerRecorder", "cam_weights", "grad_cam_plus_plus", "scale_map"]
