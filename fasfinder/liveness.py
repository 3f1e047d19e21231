"""Face anti-spoofing (liveness) on a wide face crop, with Grad-CAM++.

The model sees a *wide* square crop around the detected face box (``crop_scale`` times the box,
zero-padded where it leaves the image), resized to ``size`` x ``size``. The wide crop takes in
the edge of a printed photo and the hand holding it, which is what separates NUAA's print
attacks best (measured; see docs/results/fas.md). Everything the input pipeline needs
(architecture, crop, window, threshold, optional region mask) is read from the model card, so the
training scripts, the evaluation and the app share one definition.

Architectures (the card's ``architecture.type``):

* ``FasNetEnsemble`` (card ``fas-nuaa-wide``, the default): small CNNs trained from scratch on NUAA
  plus synthetic print attacks (:mod:`fasfinder.training.fas_synth`, :mod:`fasfinder.training.fas_wide`),
  all reading one stored crop of 4.0x the face box at 144 px; each member looks at its centred
  ``window`` of it (0.675 = 2.7x the box, or 1.0 = 4.0x) resized to ``net_size`` through
  :func:`window_resample` (the same resampling as in training). Score = the members' mean P(real);
  Grad-CAM++ = the mean of the members' maps, each placed in its window.
* ``FasNet``: one such CNN (cards ``fas-nuaa-cnn``, the previous default, trained on NUAA alone).
* ``DlibStatsFas`` (card ``fas-nuaa-dlib``; best on session-held-out validation in its round, but
  worse on the NUAA test subset, so NOT the default): the FROZEN convolutional trunk of dlib's
  face-recognition ResNet (:mod:`fasfinder.engines.dlib_torch`, weights read from dlib's own
  sha256-checked .dat), run on the wide crop; the spatial standard deviation of every channel of
  each stage is pooled, standardised, and a logistic-regression head gives the liveness logit.

Public API::

    model = default_liveness_model()          # cached, thread-safe, sha256-checked
    verdicts = model.predict(rgb, faces)      # list[Liveness]
    heatmap, importance = model.explain(rgb, face)   # HxW float32 in [0, 1], {region: value}
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .errors import ModelError
from .faces import Face
from .modelfiles import card_file, load_card
from .regions import REGION_NAMES, keep_regions, region_importance

#: Name of the shipped model card (``models/<name>.card.json``).
DEFAULT_MODEL = "fas-nuaa-wide"

#: Stages of the dlib trunk (in forward order) whose channel statistics the DlibStatsFas head may use.
DLIB_STAGES = ("stem", "level4", "level3", "level2", "level1", "level0")
DLIB_CHANNELS = {"stem": 32, "level4": 32, "level3": 64, "level2": 128, "level1": 256, "level0": 256}

#: Default architecture / input (the card overrides them).
DEFAULT_WIDTHS = (16, 32, 64, 96, 128)
DEFAULT_SIZE = 128
DEFAULT_CROP_SCALE = 2.7

REAL, SPOOF = "real", "spoof"


@dataclass(frozen=True)
class Liveness:
    label: str  # "real" | "spoof"
    score: float  # probability of a live face
    model: str  # model card name

    def to_dict(self) -> dict:
        return {"label": self.label, "score": round(float(self.score), 4)}


# --------------------------------------------------------------------------------------------
# Input: wide square crop around the face box
# --------------------------------------------------------------------------------------------
def center_box(height: int, width: int, frac: float = 0.5) -> tuple[int, int, int, int]:
    """The fallback box when no face is found: a centred square, ``frac`` of the short side."""

    side = int(round(min(height, width) * frac))
    x0 = (width - side) // 2
    y0 = (height - side) // 2
    return (x0, y0, x0 + side, y0 + side)


def crop_geometry(box, scale: float) -> tuple[int, int, int]:
    """Integer square (x0, y0, side) in image coordinates: ``scale`` x the box, same centre."""

    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(4, int(round(scale * max(x1 - x0, y1 - y0))))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side


def crop_matrix(box, scale: float, size: int) -> np.ndarray:
    """2x3 affine mapping image coordinates to crop coordinates (what :func:`face_crop` does)."""

    cx0, cy0, side = crop_geometry(box, scale)
    k = size / side
    return np.array([[k, 0.0, -cx0 * k], [0.0, k, -cy0 * k]], dtype=np.float64)


def face_crop(rgb: np.ndarray, box, scale: float, size: int) -> np.ndarray:
    """``size`` x ``size`` x 3 uint8 crop: the square of ``scale`` x the box, zero-padded, area-resized."""

    import cv2

    h, w = rgb.shape[:2]
    cx0, cy0, side = crop_geometry(box, scale)
    canvas = np.zeros((side, side, 3), dtype=np.uint8)
    sx0, sy0 = max(0, cx0), max(0, cy0)
    sx1, sy1 = min(w, cx0 + side), min(h, cy0 + side)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - cy0 : sy1 - cy0, sx0 - cx0 : sx1 - cx0] = rgb[sy0:sy1, sx0:sx1, :3]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interp)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    return (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def model_input(rgb: np.ndarray, face: Face, config: dict) -> np.ndarray:
    """The exact uint8 crop the model with ``config`` (card ``input``) sees for ``face``."""

    scale = float(config.get("crop_scale", DEFAULT_CROP_SCALE))
    size = int(config.get("size", DEFAULT_SIZE))
    crop = face_crop(rgb, face.box, scale, size)
    keep = config.get("keep_regions")
    if keep:
        lm = transform_points(face.landmarks, crop_matrix(face.box, scale, size))
        crop = keep_regions(crop, lm, list(keep))
    return crop


def to_tensor(crops: np.ndarray):
    """uint8 N x H x W x 3 (or H x W x 3) -> float tensor N x 3 x H x W, roughly zero-mean."""

    import torch

    arr = np.asarray(crops)
    if arr.ndim == 3:
        arr = arr[None]
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    return (x / 255.0 - 0.5) / 0.25


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------
def window_box(size: int, window: float, jitter=None) -> tuple[int, int, int]:
    """Integer square (x0, y0, side) of the centred ``window`` fraction of a ``size`` crop;
    ``jitter`` = (log-scale, dx, dy) moves and scales it (training augmentation only)."""

    side = window * size
    cx = cy = size / 2.0
    if jitter is not None:
        ds, dx, dy = jitter
        side *= float(np.exp(ds))
        cx += dx * side
        cy += dy * side
    side_i = max(4, int(round(side)))
    return int(round(cx - side_i / 2.0)), int(round(cy - side_i / 2.0)), side_i


def window_resample(x, boxes, net_size: int):
    """Cut each sample's square box (x0, y0, side) from the N x C x S x S tensor (zero outside) and
    resize it to ``net_size`` (bilinear, antialiased): the one resampling used in training and at
    inference, so both see the same pixels."""

    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    out = []
    for i, (x0, y0, side) in enumerate(boxes):
        pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
        xi = x[i : i + 1]
        if pad:
            xi = F.pad(xi, (pad, pad, pad, pad))
        xi = xi[:, :, y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
        if side != net_size:
            xi = F.interpolate(xi, size=(net_size, net_size), mode="bilinear", antialias=True, align_corners=False)
        out.append(xi)
    return torch.cat(out, 0) if out else x.new_zeros((0, c, net_size, net_size))


def build_network(widths=DEFAULT_WIDTHS, dropout: float = 0.3, window: float | None = None, net_size: int | None = None):
    """Plain CNN: a stride-2 conv3x3 stem, then conv3x3-BN-ReLU blocks with 2x max-pool, a last
    conv block (at 1/16 of the input: 8 x 8 for 128 px), GAP, linear -> 2 logits.

    Output index 0 = spoof, 1 = real. ``net.last_conv`` is the last convolution block (the
    Grad-CAM++ target layer). With ``window`` and ``net_size`` the network looks at the centred
    ``window`` fraction of its crop, resized to ``net_size`` (:func:`window_resample`): one stored
    4.0x crop serves a 2.7x model (window 0.675) and a 4.0x one (window 1.0) alike.
    """

    import torch.nn as nn

    class FasNet(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            c_in = 3
            for i, c in enumerate(widths[:-1]):
                if i == 0:  # stem: stride-2 convolution (cheap on CPU at full resolution)
                    layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
                else:
                    layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
                c_in = c
            self.features = nn.Sequential(*layers)
            self.last_conv = nn.Sequential(
                nn.Conv2d(c_in, widths[-1], 3, padding=1, bias=False), nn.BatchNorm2d(widths[-1]), nn.ReLU(inplace=True)
            )
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(widths[-1], 2))
            self.window = window
            self.net_size = net_size

        def forward(self, x):
            return self.head(self.last_conv(self.features(x)))

        def preprocess(self, crops):
            x = to_tensor(crops)
            if self.window is None or self.net_size is None:
                return x
            box = window_box(x.shape[-1], self.window)
            return window_resample(x, [box] * x.shape[0], self.net_size)

        def cam_layers(self):
            return [(self.last_conv, self.window if self.net_size else None)]

    return FasNet()


def build_ensemble(widths, windows, net_size: int):
    """Several :func:`build_network` members on the same stored crop, each with its own window;
    the output is the log of the members' mean class probabilities (so softmax = mean probability).
    ``cam_layers()`` lists each member's last convolution with its window (Grad-CAM++ averages
    the members' maps in the crop frame)."""

    import torch
    import torch.nn as nn

    class FasNetEnsemble(nn.Module):
        def __init__(self):
            super().__init__()
            self.members = nn.ModuleList([build_network(widths, window=w, net_size=net_size) for w in windows])

        def forward(self, x):
            probs = [torch.softmax(m(m_in), dim=1) for m, m_in in zip(self.members, self.member_inputs(x))]
            return torch.log(torch.stack(probs, 0).mean(0).clamp_min(1e-12))

        def member_inputs(self, x):
            cache = {}
            out = []
            for m in self.members:
                key = m.window
                if key not in cache:
                    box = window_box(x.shape[-1], m.window)
                    cache[key] = window_resample(x, [box] * x.shape[0], m.net_size)
                out.append(cache[key])
            return out

        def preprocess(self, crops):
            return to_tensor(crops)

        def cam_layers(self):
            return [(m.last_conv, m.window) for m in self.members]

    return FasNetEnsemble()


def build_dlib_fas(stages=DLIB_STAGES[:5], pool: str = "std", sizes=(), trunk=None):
    """Frozen dlib face-recognition trunk + per-stage channel statistics + linear head.

    ``sizes``: the crop is also resized (bilinear, antialiased) to each of these sizes and the
    trunk runs on every version (a multi-resolution view of the same crop; the statistics of all
    are concatenated); empty = the crop as given only.

    ``forward(x)`` -> 2 logits (index 1 = real) with softmax = sigmoid of the head's logit;
    ``features(x)`` -> the pooled (unstandardised) statistics; ``last_conv`` -> the deepest stage
    used (its output is the last convolution block's output: the Grad-CAM++ target).
    ``pool``: "std" (spatial standard deviation per channel) or "meanstd" (mean and std).
    """

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from .engines.dlib_torch import load_model

    stages = tuple(stages)
    if not stages or stages[0] != "stem" or tuple(DLIB_STAGES[: len(stages)]) != stages:
        raise ModelError(f"DlibStatsFas stages must be a prefix of {DLIB_STAGES}, got {stages}")
    if pool not in ("std", "meanstd"):
        raise ModelError(f"unknown pooling {pool!r}")
    sizes = tuple(int(v) for v in sizes)
    dim = sum(DLIB_CHANNELS[s] for s in stages) * (2 if pool == "meanstd" else 1) * max(1, len(sizes))

    class DlibStatsFas(nn.Module):
        def __init__(self):
            super().__init__()
            net = trunk if trunk is not None else load_model(fused=True)
            self.register_buffer("means", net.means.clone())
            self.stem = net.stem
            for name in stages[1:]:
                setattr(self, name, getattr(net, name))
            for p in self.parameters():
                p.requires_grad_(False)
            self.stage_names = stages
            self.sizes = sizes
            self.pool = pool
            self.dim = dim
            self.register_buffer("mu", torch.zeros(dim))
            self.register_buffer("sd", torch.ones(dim))
            self.head = nn.Linear(dim, 1)

        @property
        def last_conv(self):
            return getattr(self, self.stage_names[-1])

        def preprocess(self, crops):
            """uint8 N x H x W x 3 RGB (or H x W x 3) -> dlib's input scaling, NCHW float32."""

            arr = np.asarray(crops)
            if arr.ndim == 3:
                arr = arr[None]
            t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).to(torch.float32)
            return (t - self.means) / 256.0

        def features(self, x):
            if not self.sizes:
                return self.stats(x)
            views = [x if s == x.shape[-1] else F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
                     for s in self.sizes]
            return torch.cat([self.stats(v) for v in views], 1)

        def stats(self, x):
            x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
            parts = []
            for i, name in enumerate(self.stage_names):
                if i:
                    x = getattr(self, name)(x)
                if self.pool == "meanstd":
                    parts.append(x.mean((2, 3)))
                parts.append(x.std((2, 3)))
            return torch.cat(parts, 1)

        def logit_from_features(self, f):
            return self.head((f - self.mu) / self.sd)[:, 0]

        def forward(self, x):
            z = self.logit_from_features(self.features(x))
            return torch.stack([-z / 2, z / 2], 1)

        def head_state(self) -> dict:
            return {"mu": self.mu.detach().clone(), "sd": self.sd.detach().clone(),
                    "weight": self.head.weight.detach().clone(), "bias": self.head.bias.detach().clone()}

        def load_head(self, state: dict) -> None:
            with torch.no_grad():
                self.mu.copy_(state["mu"])
                self.sd.copy_(state["sd"])
                self.head.weight.copy_(state["weight"])
                self.head.bias.copy_(state["bias"])

    return DlibStatsFas()


# --------------------------------------------------------------------------------------------
# Grad-CAM++
# --------------------------------------------------------------------------------------------
def grad_cam_plus_plus(activations: np.ndarray, grads: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Grad-CAM++ map from one layer's activations and gradients (K x h x w each), min-max scaled
    to [0, 1] and resized (bilinear) to ``out_shape``.

    The same computation as ``pytorch_grad_cam.GradCAMPlusPlus`` (grad-cam 1.5.7), written out
    here because importing that package costs seconds (it pulls in torchvision) on every start.
    """

    import cv2

    g2 = grads**2
    g3 = g2 * grads
    sum_a = activations.sum(axis=(1, 2))
    alpha = g2 / (2 * g2 + sum_a[:, None, None] * g3 + 1e-6)
    alpha = np.where(grads != 0, alpha, 0.0)
    weights = (np.maximum(grads, 0) * alpha).sum(axis=(1, 2))
    cam = np.maximum((weights[:, None, None] * activations).sum(axis=0), 0)
    cam = cam - cam.min()
    cam = cam / (1e-7 + cam.max())
    cam = cv2.resize(cam.astype(np.float32), (int(out_shape[1]), int(out_shape[0])), interpolation=cv2.INTER_LINEAR)
    cam = np.maximum(cam, 0)
    cam = cam - cam.min()
    cam = cam / (1e-7 + cam.max())
    return np.clip(np.nan_to_num(cam, nan=0.0), 0.0, 1.0).astype(np.float32)


def paste_window(cam: np.ndarray, x0: int, y0: int, shape: tuple[int, int]) -> np.ndarray:
    """Place a window's map (side x side) at (x0, y0) of a zero map of ``shape`` (clipped)."""

    out = np.zeros(shape, np.float32)
    side = cam.shape[0]
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(shape[1], x0 + side), min(shape[0], y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0:sy1, sx0:sx1] = cam[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
    return out


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------
class LivenessModel:
    """A trained liveness model described by a model card (weights sha256-checked on load)."""

    def __init__(self, card: dict, weights_path=None):
        import torch

        self.card = card
        self.name: str = card["name"]
        self.threshold: float = float(card["threshold"])
        self.input: dict = dict(card.get("input", {}))
        arch = card.get("architecture", {})
        self.arch_type = arch.get("type", "FasNet")
        self.widths = tuple(arch.get("widths", DEFAULT_WIDTHS))
        path = weights_path if weights_path is not None else card_file(card, "weights")
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt / wrong file
            raise ModelError(f"cannot load liveness weights {path}: {exc}") from exc
        if self.arch_type == "DlibStatsFas":
            self.net = build_dlib_fas(tuple(arch.get("stages", DLIB_STAGES[:5])), arch.get("pool", "std"), tuple(arch.get("sizes", ())))
            load = self.net.load_head
        elif self.arch_type == "FasNet":
            self.net = build_network(self.widths, window=self.input.get("window"), net_size=self.input.get("net_size"))
            load = self.net.load_state_dict
        elif self.arch_type == "FasNetEnsemble":
            windows = [float(w) for w in arch.get("windows", ())]
            if not windows:
                raise ModelError(f"card {self.name}: an ensemble needs architecture.windows")
            self.net = build_ensemble(self.widths, windows, int(self.input.get("net_size", 96)))

            def load(state, net=self.net):  # stored as float16; the network runs in float32
                net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        else:
            raise ModelError(f"unknown liveness architecture {self.arch_type!r} in card {self.name}")
        try:
            load(state)
        except Exception as exc:
            raise ModelError(f"liveness weights {path} do not fit the card's architecture: {exc}") from exc
        self.net.eval()
        self._lock = threading.Lock()

    @classmethod
    def from_card(cls, name: str = DEFAULT_MODEL) -> "LivenessModel":
        return cls(load_card(name))

    # -- inference -----------------------------------------------------------------------
    def crops(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        return np.stack([model_input(rgb, f, self.input) for f in faces]) if faces else np.zeros((0,), np.uint8)

    def scores_from_crops(self, crops: np.ndarray) -> np.ndarray:
        """Probability of a live face for each uint8 crop (N x S x S x 3)."""

        import torch

        if len(crops) == 0:
            return np.zeros((0,), dtype=np.float64)
        with self._lock, torch.inference_mode():
            logits = self.net(self.net.preprocess(crops))
            return torch.softmax(logits, dim=1)[:, 1].double().numpy()

    def verdict(self, score: float) -> Liveness:
        return Liveness(label=REAL if score >= self.threshold else SPOOF, score=float(score), model=self.name)

    def predict(self, rgb: np.ndarray, faces: list[Face]) -> list[Liveness]:
        if not faces:
            return []
        return [self.verdict(s) for s in self.scores_from_crops(self.crops(rgb, faces))]

    # -- explanation ---------------------------------------------------------------------
    def cam_from_crop(self, crop: np.ndarray, target: int | None = None) -> tuple[np.ndarray, int]:
        """Grad-CAM++ (S x S, [0, 1]) of the last convolution for one crop; explains ``target``
        (0 = spoof, 1 = real; default: the predicted class at this model's threshold). A model
        that runs its trunk at several sizes gets the mean of the per-size maps."""

        import torch

        x = self.net.preprocess(crop).requires_grad_(True)  # frozen trunk: the graph starts at the input
        layers = self.net.cam_layers() if hasattr(self.net, "cam_layers") else [(self.net.last_conv, None)]
        with self._lock:
            acts = []  # (output, window) per pass through a target layer (several: multi-size trunk, ensemble)
            handles = []
            for layer, window in layers:

                def hook(_module, _inp, out, window=window):
                    out.retain_grad()
                    acts.append((out, window))

                handles.append(layer.register_forward_hook(hook))
            try:
                with torch.enable_grad():
                    logits = self.net(x)
                    if target is None:
                        p_real = float(torch.softmax(logits.detach(), dim=1)[0, 1])
                        target = 1 if p_real >= self.threshold else 0
                    self.net.zero_grad(set_to_none=True)
                    logits[0, int(target)].backward()
                maps = []
                for a, window in acts:
                    act, grad = a.detach()[0].double().numpy(), a.grad.detach()[0].double().numpy()
                    if window is None:
                        maps.append(grad_cam_plus_plus(act, grad, crop.shape[:2]))
                    else:  # the layer saw a window of the crop: its map goes there, zero elsewhere
                        x0, y0, side = window_box(crop.shape[0], window)
                        maps.append(paste_window(grad_cam_plus_plus(act, grad, (side, side)), x0, y0, crop.shape[:2]))
            finally:
                for h in handles:
                    h.remove()
                self.net.zero_grad(set_to_none=True)
        if len(maps) == 1:
            return maps[0], int(target)
        cam = np.mean(maps, axis=0)  # multi-size: average of the per-size maps (same crop frame), rescaled to [0, 1]
        cam = cam - cam.min()
        return np.clip(cam / (1e-7 + cam.max()), 0.0, 1.0).astype(np.float32), int(target)

    def explain(self, rgb: np.ndarray, face: Face, target: int | None = None) -> tuple[np.ndarray, dict[str, float]]:
        """Grad-CAM++ heatmap in the ORIGINAL image's coordinates (H x W float32 in [0, 1], 0
        outside the crop) and the Area Importance of the 10 regions (BENCHMARKS.md section 5)."""

        import cv2

        scale = float(self.input.get("crop_scale", DEFAULT_CROP_SCALE))
        size = int(self.input.get("size", DEFAULT_SIZE))
        crop = model_input(rgb, face, self.input)
        hm_crop, _ = self.cam_from_crop(crop, target)
        m = crop_matrix(face.box, scale, size)
        h, w = rgb.shape[:2]
        hm = cv2.warpAffine(
            hm_crop, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        hm = np.clip(hm, 0.0, 1.0).astype(np.float32)
        return hm, region_importance(hm, face.landmarks)

    def info(self) -> dict:
        return {"name": self.name, "threshold": self.threshold, "input": self.input, "metrics": self.card.get("metrics", {})}


_default: LivenessModel | None = None
_default_lock = threading.Lock()


def default_liveness_model() -> LivenessModel:
    """The shipped liveness model (loaded once per process; thread-safe).

    Raises :class:`~fasfinder.errors.ModelError` (``ModelIntegrityError`` for a tampered file)
    when the card or weights are missing or do not match.
    """

    global _default
    with _default_lock:
        if _default is None:
            _default = LivenessModel.from_card(DEFAULT_MODEL)
        return _default


__all__ = [
    "Liveness",
    "LivenessModel",
    "default_liveness_model",
    "DEFAULT_MODEL",
    "build_dlib_fas",
    "build_network",
    "REGION_NAMES",
    "face_crop",
    "crop_matrix",
    "model_input",
    "center_box",
]
