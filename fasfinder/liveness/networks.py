"""The liveness networks (a model card's ``architecture.type`` names one of these classes).

* :class:`FasNet` -- a small CNN trained from scratch (cards ``fas-nuaa-cnn``, the members of
  ``fas-nuaa-wide``); with ``window`` / ``net_size`` it looks at the centred window of its crop;
* :class:`FasNetEnsemble` -- several FasNets on one stored crop, each with its own window
  (``fas-nuaa-wide``, the default): the output is the log of their mean class probabilities;
* :class:`DlibStatsFas` -- the FROZEN convolutional trunk of dlib's face-recognition ResNet
  (:mod:`fasfinder.engines.dlib_torch`), per-stage channel statistics and a logistic head
  (``fas-nuaa-dlib``).

Every network has ``preprocess(crops)`` (uint8 crops -> its input tensor), ``forward`` -> 2
logits (index 0 = spoof, 1 = real) and ``cam_layers()`` -> [(layer, window or None)], the
Grad-CAM++ target layers and the window of the crop each one sees. The parameter names (the
state-dict keys the shipped ``models/*.pt`` files were saved with) are part of the format: they
must not change. The ``build_*`` functions are the constructors the training code calls.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .geometry import to_tensor, window_box, window_resample

#: Stages of the dlib trunk (in forward order) whose channel statistics the DlibStatsFas head may use.
DLIB_STAGES = ("stem", "level4", "level3", "level2", "level1", "level0")
DLIB_CHANNELS = {"stem": 32, "level4": 32, "level3": 64, "level2": 128, "level1": 256, "level0": 256}

#: Default FasNet widths (the card overrides them).
DEFAULT_WIDTHS = (16, 32, 64, 96, 128)


class FasNet(nn.Module):
    """Plain CNN: a stride-2 conv3x3 stem, then conv3x3-BN-ReLU blocks with 2x max-pool, a last
    conv block (at 1/16 of the input: 8 x 8 for 128 px), GAP, linear -> 2 logits.

    Output index 0 = spoof, 1 = real. ``last_conv`` is the last convolution block (the
    Grad-CAM++ target layer). With ``window`` and ``net_size`` the network looks at the centred
    ``window`` fraction of its crop, resized to ``net_size`` (:func:`window_resample`): one stored
    4.0x crop serves a 2.7x model (window 0.675) and a 4.0x one (window 1.0) alike.
    """

    def __init__(self, widths=DEFAULT_WIDTHS, dropout: float = 0.3, window: float | None = None, net_size: int | None = None):
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


class FasNetEnsemble(nn.Module):
    """Several :class:`FasNet` members on the same stored crop, each with its own window; the
    output is the log of the members' mean class probabilities (so softmax = mean probability).
    ``cam_layers()`` lists each member's last convolution with its window (Grad-CAM++ averages
    the members' maps in the crop frame)."""

    def __init__(self, widths, windows, net_size: int):
        super().__init__()
        self.members = nn.ModuleList([FasNet(widths, window=w, net_size=net_size) for w in windows])

    def forward(self, x):
        inputs = self.window_inputs(x)
        return self.combine(torch.stack([self.member_prob(i, inputs) for i in range(len(self.members))], 0))

    def window_inputs(self, x) -> dict:
        """{window: the members' input}: each distinct window of the crops cut out and resized once."""

        out = {}
        for m in self.members:
            if m.window not in out:
                out[m.window] = window_resample(x, [window_box(x.shape[-1], m.window)] * x.shape[0], m.net_size)
        return out

    def member_prob(self, i: int, inputs: dict, run=None) -> torch.Tensor:
        """N x 2 class probabilities of member ``i`` (``inputs``: :meth:`window_inputs`; ``run``: a
        callable standing in for the member, e.g. its traced copy)."""

        m = self.members[i]
        return torch.softmax((run or m)(inputs[m.window]), dim=1)

    @staticmethod
    def combine(probs: torch.Tensor) -> torch.Tensor:
        """The ensemble's output from ALL members' probabilities (members x N x 2, in member order)."""

        return torch.log(probs.mean(0).clamp_min(1e-12))

    def member_costs(self) -> list[float]:
        """Relative cost of each member's forward pass: multiply-adds of its convolutions at its input size."""

        costs = []
        for m in self.members:
            side, total = float(m.net_size or 0), 0.0
            for mod in m.modules():
                if isinstance(mod, nn.Conv2d):
                    side /= mod.stride[0]
                    total += mod.weight.numel() * side * side
                elif isinstance(mod, nn.MaxPool2d):
                    side /= mod.stride if isinstance(mod.stride, int) else mod.stride[0]
            costs.append(total or 1.0)
        return costs

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


class DlibStatsFas(nn.Module):
    """Frozen dlib face-recognition trunk + per-stage channel statistics + linear head.

    ``sizes``: the crop is also resized (bilinear, antialiased) to each of these sizes and the
    trunk runs on every version (a multi-resolution view of the same crop; the statistics of all
    are concatenated); empty = the crop as given only.

    ``forward(x)`` -> 2 logits (index 1 = real) with softmax = sigmoid of the head's logit;
    ``features(x)`` -> the pooled (unstandardised) statistics; ``last_conv`` -> the deepest stage
    used (its output is the last convolution block's output: the Grad-CAM++ target).
    ``pool``: "std" (spatial standard deviation per channel) or "meanstd" (mean and std).
    ``trunk``: a loaded dlib port to take the stages from (default: the installed, verified one).
    """

    def __init__(self, stages=DLIB_STAGES[:5], pool: str = "std", sizes=(), trunk=None):
        stages = tuple(stages)
        if not stages or stages[0] != "stem" or tuple(DLIB_STAGES[: len(stages)]) != stages:
            raise ModelError(f"DlibStatsFas stages must be a prefix of {DLIB_STAGES}, got {stages}")
        if pool not in ("std", "meanstd"):
            raise ModelError(f"unknown pooling {pool!r}")
        sizes = tuple(int(v) for v in sizes)
        dim = sum(DLIB_CHANNELS[s] for s in stages) * (2 if pool == "meanstd" else 1) * max(1, len(sizes))
        super().__init__()
        if trunk is None:
            from ..engines.dlib_torch import load_model

            trunk = load_model(fused=True)
        self.register_buffer("means", trunk.means.clone())
        self.stem = trunk.stem
        for name in stages[1:]:
            setattr(self, name, getattr(trunk, name))
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

    def cam_layers(self):
        return [(self.last_conv, None)]

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


def build_network(widths=DEFAULT_WIDTHS, dropout: float = 0.3, window: float | None = None, net_size: int | None = None) -> FasNet:
    """A fresh :class:`FasNet` (what the trainers call)."""

    return FasNet(widths, dropout, window, net_size)


def build_ensemble(widths, windows, net_size: int) -> FasNetEnsemble:
    """A fresh :class:`FasNetEnsemble`: one :class:`FasNet` per window."""

    return FasNetEnsemble(widths, windows, net_size)


def build_dlib_fas(stages=DLIB_STAGES[:5], pool: str = "std", sizes=(), trunk=None) -> DlibStatsFas:
    """A :class:`DlibStatsFas` with an untrained head on the (installed or given) dlib trunk."""

    return DlibStatsFas(stages, pool, sizes, trunk)


def traced_members(ensemble: FasNetEnsemble) -> list:
    """Each member of ``ensemble`` traced with TorchScript (the same aten operators, so the same numbers):
    a traced call runs all its operators without taking Python's GIL between them, so a member on a
    compute thread is not held up by the Python work of other threads (an eager member beside a busy
    Python thread: 20 x slower; traced: about 3 x; docs/results/query_speed.md). A member that cannot
    be traced stays eager."""

    import warnings

    out = []
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notices
        for m in ensemble.members:
            example = torch.zeros((1, 3, m.net_size, m.net_size)).contiguous(memory_format=torch.channels_last)
            try:
                out.append(torch.jit.trace(m, example, check_trace=False))
            except Exception:  # noqa: BLE001 - the eager member computes the same
                out.append(m)
    return out


def fused_for_inference(net: nn.Module) -> nn.Module:
    """A copy of ``net`` for inference: every BatchNorm2d that follows a Conv2d in an ``nn.Sequential``
    is folded into that convolution (the BN becomes an Identity, indices kept). Same outputs (float
    rounding aside), about a fifth less time; the original (state-dict keys of the shipped files,
    Grad-CAM++ layers) is left as it is."""

    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fast = copy.deepcopy(net).eval()
    for seq in [m for m in fast.modules() if isinstance(m, nn.Sequential)]:
        mods = list(seq)
        for i in range(len(mods) - 1):
            if isinstance(mods[i], nn.Conv2d) and isinstance(mods[i + 1], nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(mods[i], mods[i + 1])
                seq[i + 1] = nn.Identity()
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast


#: ``architecture.type`` of a model card -> network class.
ARCHITECTURES = {"FasNet": FasNet, "FasNetEnsemble": FasNetEnsemble, "DlibStatsFas": DlibStatsFas}
