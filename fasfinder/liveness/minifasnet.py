"""The MiniFASNet pair (Silent-Face-Anti-Spoofing, Apache-2.0) as a reference liveness model.

Our own PyTorch definitions of MiniFASNetV2 (2.7x crop) and MiniFASNetV1SE (4.0x crop), written
from the state dicts' names and shapes and the published description (MobileFaceNet-style
depthwise-separable bottlenecks; the V1SE variant adds squeeze-excitation to the last block of
each residual stage). Both read an 80x80 BGR crop as float 0..255 and output 3 logits; softmax
class 1 = live, classes 0 and 2 = attacks. The pair's verdict: the two softmax vectors are
summed, the label is the arg-max, the score the summed probability of class 1 divided by 2
(:meth:`MiniFasNetPair.predict` reports P(live) = sum[1] / 2, so ``score >= 0.5`` is a
sufficient, and for the fused arg-max the usual, condition for "real").

The third-party weights are NEVER copied into the repository: they are read from
``FASFINDER_MINIFASNET_DIR`` or ``../shared/models/minifasnet`` beside the repository; absent
files raise :class:`~fasfinder.errors.ModelError` (code ``model_missing``).

Boxes: the original pipeline places its crops around a RetinaFace box (x, y, w, h).
:func:`crop_box` reproduces its rule (enlarge about the centre, scale capped so the crop fits,
shifted back inside the image). The product detects faces with dlib, so :func:`dlib_to_retina`
maps a dlib box to a RetinaFace-like box with a linear rule fitted on NUAA training-list
images of ``reference.jsonl`` (bench/minifasnet_parity.py ``--fit``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..errors import ModelError

#: The two members: (file name, crop scale, network name).
MEMBERS = (
    ("2.7_80x80_MiniFASNetV2.pth", 2.7, "MiniFASNetV2"),
    ("4_0_0_80x80_MiniFASNetV1SE.pth", 4.0, "MiniFASNetV1SE"),
)
INPUT_SIZE = 80
LIVE = 1
ENV_DIR = "FASFINDER_MINIFASNET_DIR"
NAME = "minifasnet"

# Expansion widths of every depthwise bottleneck, read from the state dicts' shapes.
# (stage, in -> out channels): conv_23 32->64 (s2), conv_3 64 x4, conv_34 64->128 (s2),
# conv_4 128 x6, conv_45 128->128 (s2), conv_5 128 x2.
WIDTHS = {
    "MiniFASNetV2": {"conv_23": 103, "conv_3": (13, 13, 13, 13), "conv_34": 231,
                     "conv_4": (231, 52, 26, 77, 26, 26), "conv_45": 308, "conv_5": (26, 26)},
    "MiniFASNetV1SE": {"conv_23": 103, "conv_3": (13, 26, 13, 52), "conv_34": 231,
                       "conv_4": (154, 52, 26, 52, 26, 26), "conv_45": 308, "conv_5": (26, 26)},
}
SE_REDUCTION = 4

# dlib (x0, y0, x1, y1) -> RetinaFace-like (x, y, w, h): centre shift in units of the dlib width /
# height and size as a multiple of it. Fitted by least squares on the reference images of the
# NUAA TRAINING lists (bench/minifasnet_parity.py --fit); see docs/results/fas.md.
DLIB_MAP = {"cx": -0.0022, "cy": -0.0086, "w": 1.0556, "h": 1.0688}  # 200 training-list images


def default_dir() -> Path:
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "models" / "minifasnet"


def weight_paths(directory=None) -> list[Path]:
    """The two weight files, or ModelError (code ``model_missing``) naming what is absent."""

    d = Path(directory) if directory is not None else default_dir()
    paths = [d / f for f, _, _ in MEMBERS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ModelError(
            f"MiniFASNet weights not found: {', '.join(missing)} (set {ENV_DIR} to the folder holding "
            f"{MEMBERS[0][0]} and {MEMBERS[1][0]}, or place them in ../shared/models/minifasnet)"
        )
    return paths


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------
def _build_networks():
    import torch
    from torch import nn

    class ConvBlock(nn.Module):
        """conv (no bias) + BN (+ PReLU unless ``linear``)."""

        def __init__(self, cin, cout, k=1, s=1, p=0, groups=1, linear=False):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False)
            self.bn = nn.BatchNorm2d(cout)
            if not linear:
                self.prelu = nn.PReLU(cout)
            self.linear = linear

        def forward(self, x):
            x = self.bn(self.conv(x))
            return x if self.linear else self.prelu(x)

    class SqueezeExcite(nn.Module):
        def __init__(self, ch, reduction):
            super().__init__()
            mid = ch // reduction
            self.fc1 = nn.Conv2d(ch, mid, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(mid)
            self.fc2 = nn.Conv2d(mid, ch, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(ch)

        def forward(self, x):
            w = x.mean(dim=(2, 3), keepdim=True)
            w = torch.relu(self.bn1(self.fc1(w)))
            w = torch.sigmoid(self.bn2(self.fc2(w)))
            return x * w

    class Bottleneck(nn.Module):
        """1x1 expand -> 3x3 depthwise (stride s) -> 1x1 linear project (+ SE) (+ identity)."""

        def __init__(self, cin, cout, mid, stride, residual, se=False):
            super().__init__()
            self.conv = ConvBlock(cin, mid, 1)
            self.conv_dw = ConvBlock(mid, mid, 3, stride, 1, groups=mid)
            self.project = ConvBlock(mid, cout, 1, linear=True)
            if se:
                self.se_module = SqueezeExcite(cout, SE_REDUCTION)
            self.residual, self.se = residual, se

        def forward(self, x):
            y = self.project(self.conv_dw(self.conv(x)))
            if self.se:
                y = self.se_module(y)
            return x + y if self.residual else y

    class Stage(nn.Module):
        def __init__(self, ch, mids, se_last):
            super().__init__()
            self.model = nn.Sequential(*[
                Bottleneck(ch, ch, m, 1, True, se=se_last and i == len(mids) - 1) for i, m in enumerate(mids)
            ])

        def forward(self, x):
            return self.model(x)

    class MiniFASNet(nn.Module):
        """MiniFASNetV2 (``se=False``) / MiniFASNetV1SE (``se=True``) for an 80x80 input."""

        def __init__(self, widths: dict, se: bool, classes: int = 3):
            super().__init__()
            self.conv1 = ConvBlock(3, 32, 3, 2, 1)                      # 80 -> 40
            self.conv2_dw = ConvBlock(32, 32, 3, 1, 1, groups=32)
            self.conv_23 = Bottleneck(32, 64, widths["conv_23"], 2, False)    # -> 20
            self.conv_3 = Stage(64, widths["conv_3"], se)
            self.conv_34 = Bottleneck(64, 128, widths["conv_34"], 2, False)   # -> 10
            self.conv_4 = Stage(128, widths["conv_4"], se)
            self.conv_45 = Bottleneck(128, 128, widths["conv_45"], 2, False)  # -> 5
            self.conv_5 = Stage(128, widths["conv_5"], se)
            self.conv_6_sep = ConvBlock(128, 512, 1)                    # last convolution with a map (5x5)
            self.conv_6_dw = ConvBlock(512, 512, 5, 1, 0, groups=512, linear=True)  # -> 1x1
            self.linear = nn.Linear(512, 128, bias=False)
            self.bn = nn.BatchNorm1d(128)
            self.drop = nn.Dropout(0.2)
            self.prob = nn.Linear(128, classes, bias=False)

        def forward(self, x):
            for m in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4,
                      self.conv_45, self.conv_5, self.conv_6_sep, self.conv_6_dw):
                x = m(x)
            return self.prob(self.drop(self.bn(self.linear(torch.flatten(x, 1)))))

    return MiniFASNet


_NET_CLASS = None


def build_network(kind: str):
    """An untrained MiniFASNetV2 / MiniFASNetV1SE (torch module)."""

    global _NET_CLASS
    if kind not in WIDTHS:
        raise ModelError(f"unknown MiniFASNet variant {kind!r}")
    if _NET_CLASS is None:
        _NET_CLASS = _build_networks()
    return _NET_CLASS(WIDTHS[kind], se=kind.endswith("SE"))


def load_network(path, kind: str):
    """The network with the stored weights: ``module.`` prefix stripped, keys loaded strictly."""

    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ModelError(f"MiniFASNet weights not found: {path}") from exc
    except Exception as exc:
        raise ModelError(f"cannot load MiniFASNet weights {path}: {exc}") from exc
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    net = build_network(kind)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"MiniFASNet weights {path} do not fit {kind}: {exc}") from exc
    return net.eval()


# --------------------------------------------------------------------------------------------
# Boxes and crops
# --------------------------------------------------------------------------------------------
def crop_box(box_xywh, image_hw, scale: float) -> tuple[int, int, int, int]:
    """Inclusive pixel rectangle (x0, y0, x1, y1) of the original pipeline's crop.

    The box is enlarged ``scale`` times about its centre (the scale is capped so that the crop
    fits the image: at most (W-1)/w and (H-1)/h); a crop that leaves the image is shifted back
    inside (no padding); corners are truncated to int.
    """

    x, y, w, h = (float(v) for v in box_xywh)
    img_h, img_w = int(image_hw[0]), int(image_hw[1])
    w, h = max(w, 1.0), max(h, 1.0)
    s = min(float(scale), (img_h - 1) / h, (img_w - 1) / w)
    nw, nh = w * s, h * s
    cx, cy = x + w / 2, y + h / 2
    x0, y0, x1, y1 = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if x0 < 0:
        x1, x0 = x1 - x0, 0.0
    if y0 < 0:
        y1, y0 = y1 - y0, 0.0
    if x1 > img_w - 1:
        x0, x1 = x0 - (x1 - img_w + 1), img_w - 1.0
    if y1 > img_h - 1:
        y0, y1 = y0 - (y1 - img_h + 1), img_h - 1.0
    return int(x0), int(y0), int(x1), int(y1)


def crop(bgr: np.ndarray, box_xywh, scale: float, size: int = INPUT_SIZE) -> np.ndarray:
    """The size x size uint8 BGR crop (bilinear resize of the inclusive rectangle)."""

    import cv2

    x0, y0, x1, y1 = crop_box(box_xywh, bgr.shape[:2], scale)
    patch = bgr[max(y0, 0): y1 + 1, max(x0, 0): x1 + 1]
    return cv2.resize(patch, (size, size))


def dlib_to_retina(box_xyxy, mapping: dict | None = None) -> tuple[float, float, float, float]:
    """A dlib box (x0, y0, x1, y1) as a RetinaFace-like (x, y, w, h) by the fitted linear rule."""

    m = DLIB_MAP if mapping is None else mapping
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    dw, dh = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2 + m["cx"] * dw
    cy = (y0 + y1) / 2 + m["cy"] * dh
    w, h = m["w"] * dw, m["h"] * dh
    return cx - w / 2, cy - h / 2, w, h


def face_box(face) -> tuple[float, float, float, float]:
    """The RetinaFace-like (x, y, w, h) box of a product :class:`~fasfinder.faces.Face` (dlib box)."""

    return dlib_to_retina(face.box)


# --------------------------------------------------------------------------------------------
# The pair as a liveness model
# --------------------------------------------------------------------------------------------
class MiniFasNetPair:
    """The two networks with the original fusion; ``predict`` / ``explain`` like LivenessModel.

    ``score`` = P(live) = (p1(V2) + p1(V1SE)) / 2; ``label`` "real" when the fused arg-max is
    class 1 (the original rule). ``threshold`` (0.5, used by protocol-5 metrics on the score) is
    the two-class form of that rule (live vs either attack class).
    """

    threshold = 0.5

    def __init__(self, directory=None):
        paths = weight_paths(directory)
        self.name = NAME
        self.directory = paths[0].parent
        self.nets = [load_network(p, kind) for p, (_, _, kind) in zip(paths, MEMBERS)]
        self.scales = [s for _, s, _ in MEMBERS]
        self.input = {"crops": [{"file": f, "scale": s, "size": INPUT_SIZE, "channels": "BGR", "range": "0..255"}
                                for f, s, _ in MEMBERS], "box": "dlib box mapped by DLIB_MAP"}
        self.card = {"name": NAME, "threshold": self.threshold, "source": str(self.directory)}
        self._lock = threading.Lock()

    @staticmethod
    def tensor(crops: np.ndarray):
        import torch

        return torch.from_numpy(np.ascontiguousarray(np.asarray(crops, np.float32).transpose(0, 3, 1, 2)))

    def softmax_bgr(self, bgr: np.ndarray, boxes_xywh) -> np.ndarray:
        """(N, 2, 3) softmax of each member for each RetinaFace-like box of a BGR image."""

        import torch

        boxes = list(boxes_xywh)
        if not boxes:
            return np.zeros((0, len(self.nets), 3))
        out = []
        with self._lock, torch.inference_mode():
            for net, scale in zip(self.nets, self.scales):
                x = self.tensor(np.stack([crop(bgr, b, scale) for b in boxes]))
                out.append(torch.softmax(net(x), dim=1).double().numpy())
        return np.stack(out, axis=1)

    def fuse(self, probs: np.ndarray):
        """(labels, P(live)) of (N, 2, 3) member softmax: arg-max of the sum, sum[1] / 2."""

        total = probs.sum(axis=1)
        return total.argmax(axis=1), total[:, LIVE] / len(self.nets)

    def predict(self, rgb: np.ndarray, faces) -> list:
        from .model import REAL, SPOOF, Liveness

        if not faces:
            return []
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        labels, scores = self.fuse(self.softmax_bgr(bgr, [face_box(f) for f in faces]))
        return [Liveness(label=REAL if lab == LIVE else SPOOF, score=float(s), model=self.name)
                for lab, s in zip(labels, scores)]

    def explain(self, rgb: np.ndarray, face, target: int | None = None):
        """Grad-CAM++ at each member's last convolution (``conv_6_sep``, 5x5), placed back on its
        crop rectangle in the image, averaged; and the Area Importance of the 10 regions.
        ``target`` 1 explains class 1 (live), 0 the attack class with the larger fused
        probability; default: the fused label."""

        import torch

        from ..gradcam import LayerRecorder, grad_cam_plus_plus
        from ..regions import region_importance

        bgr = np.ascontiguousarray(rgb[..., ::-1])
        box = face_box(face)
        h, w = rgb.shape[:2]
        maps = []
        with self._lock, torch.enable_grad():
            xs = [self.tensor(crop(bgr, box, s)[None]) for s in self.scales]
            logits = []
            for net, x in zip(self.nets, xs):
                with LayerRecorder([net.conv_6_sep]) as rec:
                    out = net(x)
                    logits.append((out, rec))
            total = sum(torch.softmax(o.detach(), dim=1)[0] for o, _ in logits)
            cls = int(total.argmax()) if target is None else (LIVE if int(target) == 1 else (0 if total[0] >= total[2] else 2))
            for (out, rec), scale in zip(logits, self.scales):
                acts, grads = rec.gradients(out[0, cls])
                x0, y0, x1, y1 = crop_box(box, (h, w), scale)
                cw, ch = x1 - x0 + 1, y1 - y0 + 1
                m = grad_cam_plus_plus(acts[0].double().numpy(), grads[0].double().numpy(), (ch, cw))[0]
                full = np.zeros((h, w), np.float32)
                xa, ya = max(x0, 0), max(y0, 0)
                full[ya: y1 + 1, xa: x1 + 1] = m[ya - y0: ch, xa - x0: cw]
                maps.append(full)
        hm = np.mean(maps, axis=0)
        hm = np.clip((hm - hm.min()) / (1e-7 + hm.max() - hm.min()), 0.0, 1.0).astype(np.float32)
        return hm, region_importance(hm, face.landmarks)

    def info(self) -> dict:
        return {"name": self.name, "threshold": self.threshold, "input": self.input, "source": str(self.directory)}


def reference_model(directory=None) -> MiniFasNetPair:
    """The pair, loaded once per process (per folder)."""

    from ..modelfiles import cached_model

    d = Path(directory) if directory is not None else default_dir()
    return cached_model(("liveness", NAME, str(d)), lambda: MiniFasNetPair(d))
