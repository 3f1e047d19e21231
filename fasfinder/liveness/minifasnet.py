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
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .verdict import REAL, SPOOF, Liveness
from .croppair import DLIB_MAP, INPUT_SIZE, CropPairModel, crop, crop_box, dlib_to_retina, face_box

__all__ = ["DLIB_MAP", "INPUT_SIZE", "MEMBERS", "MiniFasNetPair", "crop", "crop_box", "dlib_to_retina", "face_box",
           "reference_model", "weight_paths"]

#: The two members: (file name, crop scale, network name).
MEMBERS = (
    ("2.7_80x80_MiniFASNetV2.pth", 2.7, "MiniFASNetV2"),
    ("4_0_0_80x80_MiniFASNetV1SE.pth", 4.0, "MiniFASNetV1SE"),
)
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
# The pair as a liveness model
# --------------------------------------------------------------------------------------------
class MiniFasNetPair(CropPairModel):
    """The two networks with the original fusion; ``predict`` / ``explain`` like LivenessModel.

    ``score`` = P(live) = (p1(V2) + p1(V1SE)) / 2; ``label`` "real" when the fused arg-max is
    class 1 (the original rule). ``threshold`` (0.5, used by protocol-5 metrics on the score) is
    the two-class form of that rule (live vs either attack class).
    """

    threshold = 0.5

    def __init__(self, directory=None):
        super().__init__()
        paths = weight_paths(directory)
        self.name = NAME
        self.directory = paths[0].parent
        self.nets = [load_network(p, kind) for p, (_, _, kind) in zip(paths, MEMBERS)]
        self.scales = tuple(s for _, s, _ in MEMBERS)
        self.input = {"crops": [{"file": f, "scale": s, "size": INPUT_SIZE, "channels": "BGR", "range": "0..255"}
                                for f, s, _ in MEMBERS], "box": "dlib box mapped by DLIB_MAP"}
        self.card = {"name": NAME, "threshold": self.threshold, "source": str(self.directory)}

    def fuse(self, probs: np.ndarray):
        """(labels, P(live)) of (N, 2, 3) member softmax: arg-max of the sum, sum[1] / 2."""

        total = probs.sum(axis=1)
        return total.argmax(axis=1), total[:, LIVE] / len(self.nets)

    def is_live(self, mean_probs: np.ndarray) -> bool:
        return int(np.argmax(mean_probs)) == LIVE

    def verdicts(self, probs: np.ndarray, faces, areas_hw) -> list:
        labels, scores = self.fuse(probs)
        return [Liveness(label=REAL if lab == LIVE else SPOOF, score=float(s), model=self.name)
                for lab, s in zip(labels, scores)]

    def cam_layer(self, net):
        return net.conv_6_sep  # 5x5

    def info(self) -> dict:
        return {"name": self.name, "threshold": self.threshold, "input": self.input, "source": str(self.directory)}


def reference_model(directory=None) -> MiniFasNetPair:
    """The pair, loaded once per process (per folder)."""

    from ..modelfiles import cached_model

    d = Path(directory) if directory is not None else default_dir()
    return cached_model(("liveness", NAME, str(d)), lambda: MiniFasNetPair(d))
