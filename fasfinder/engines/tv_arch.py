"""The three torchvision backbones of :mod:`.backbones`, defined here without importing torchvision.

``shufflenet_v2_x1_0``, ``mobilenet_v3_large`` and ``efficientnet_b0`` as in torchvision 0.29
(``torchvision/models/shufflenetv2.py``, ``mobilenetv3.py``, ``efficientnet.py`` and the
``Conv2dNormActivation`` / ``SqueezeExcitation`` blocks of ``torchvision/ops/misc.py``): the same
modules in the same order under the same attribute names, so the state-dict keys and shapes are
torchvision's and the shipped ``models/*.pt`` weights load unchanged, and the same forward
computation (``tests/test_tv_arch.py`` compares keys, shapes and outputs with torchvision's).

Why: the CPU-only installer ships a CPU build of torch, and PyPI's torchvision wheels are built
against the CUDA build (they do not import beside it). The run time needs only these three network
definitions, so the bundle carries no torchvision at all. Only what the engines use is defined:
the feature trunks (no classifier heads), no pretrained-weight loading. Weight initialisation is
PyTorch's per-layer default, not torchvision's; training keeps torchvision (``backbones.build_net``
with ``trunk_from="torchvision"``), so its random initialisation is unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """torchvision.models._utils._make_divisible."""

    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvNormAct(nn.Sequential):
    """torchvision.ops.Conv2dNormActivation: conv (no bias), norm, optional activation (in place)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 norm=nn.BatchNorm2d, act=nn.ReLU, dilation: int = 1):
        layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2 * dilation, dilation=dilation,
                            groups=groups, bias=False), norm(cout)]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)
        self.out_channels = cout


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation (keys avgpool, fc1, fc2, activation, scale_activation)."""

    def __init__(self, channels: int, squeeze: int, act=nn.ReLU, scale_act=nn.Sigmoid, inplace_act: bool = False):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = act(inplace=True) if inplace_act else act()
        self.scale_activation = scale_act()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


# --- ShuffleNet V2 x1.0 -------------------------------------------------------------------------


def channel_shuffle(x, groups: int):
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w)
    return torch.transpose(x, 1, 2).contiguous().view(n, c, h, w)


class ShuffleUnit(nn.Module):
    """torchvision.models.shufflenetv2.InvertedResidual."""

    def __init__(self, inp: int, oup: int, stride: int):
        super().__init__()
        self.stride = stride
        half = oup // 2

        def depthwise(c: int) -> nn.Conv2d:
            return nn.Conv2d(c, c, 3, stride, 1, bias=False, groups=c)

        if stride > 1:
            self.branch1 = nn.Sequential(
                depthwise(inp), nn.BatchNorm2d(inp),
                nn.Conv2d(inp, half, 1, 1, 0, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else half, half, 1, 1, 0, bias=False), nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            depthwise(half), nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, 1, 0, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2Trunk(nn.Module):
    """shufflenet_v2_x1_0 without ``fc``: conv1, maxpool, stage2-4, conv5 (1024 channels)."""

    def __init__(self, repeats=(4, 8, 4), channels=(24, 116, 232, 464, 1024)):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, channels[0], 3, 2, 1, bias=False), nn.BatchNorm2d(channels[0]),
                                   nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        cin = channels[0]
        for name, n, cout in zip(("stage2", "stage3", "stage4"), repeats, channels[1:]):
            setattr(self, name, nn.Sequential(ShuffleUnit(cin, cout, 2),
                                              *[ShuffleUnit(cout, cout, 1) for _ in range(n - 1)]))
            cin = cout
        self.conv5 = nn.Sequential(nn.Conv2d(cin, channels[-1], 1, 1, 0, bias=False), nn.BatchNorm2d(channels[-1]),
                                   nn.ReLU(inplace=True))


def shufflenet_v2_x1_0() -> ShuffleNetV2Trunk:
    return ShuffleNetV2Trunk()


# --- MobileNet V3 large -------------------------------------------------------------------------

# (input, kernel, expanded, output, squeeze-excitation, hard-swish, stride): torchvision's table
MOBILENET_V3_LARGE = (
    (16, 3, 16, 16, False, False, 1), (16, 3, 64, 24, False, False, 2), (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2), (40, 5, 120, 40, True, False, 1), (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2), (80, 3, 200, 80, False, True, 1), (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1), (80, 3, 480, 112, True, True, 1), (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2), (160, 5, 960, 160, True, True, 1), (160, 5, 960, 160, True, True, 1),
)


def _mobilenet_norm(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=0.001, momentum=0.01)


class MobileNetV3Block(nn.Module):
    """torchvision.models.mobilenetv3.InvertedResidual (dilation 1)."""

    def __init__(self, cin: int, kernel: int, expanded: int, cout: int, use_se: bool, use_hs: bool, stride: int):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        act = nn.Hardswish if use_hs else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(ConvNormAct(cin, expanded, 1, norm=_mobilenet_norm, act=act))
        layers.append(ConvNormAct(expanded, expanded, kernel, stride, groups=expanded, norm=_mobilenet_norm, act=act))
        if use_se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4, 8), scale_act=nn.Hardsigmoid))
        layers.append(ConvNormAct(expanded, cout, 1, norm=_mobilenet_norm, act=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = cout

    def forward(self, x):
        result = self.block(x)
        if self.use_res_connect:
            result += x
        return result


def mobilenet_v3_large_features() -> nn.Sequential:
    """``mobilenet_v3_large().features``: stem, 15 blocks, 1x1 conv to 960 channels."""

    layers: list[nn.Module] = [ConvNormAct(3, 16, 3, 2, norm=_mobilenet_norm, act=nn.Hardswish)]
    layers += [MobileNetV3Block(*row) for row in MOBILENET_V3_LARGE]
    layers.append(ConvNormAct(160, 960, 1, norm=_mobilenet_norm, act=nn.Hardswish))
    return nn.Sequential(*layers)


# --- EfficientNet B0 ----------------------------------------------------------------------------

# (expand ratio, kernel, stride, input, output, layers): torchvision's B0 table (width and depth 1.0)
EFFICIENTNET_B0 = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                   (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth, mode "row": the identity in eval mode (no parameters or buffers)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * noise.div_(keep) if keep > 0.0 else x * noise


class MBConv(nn.Module):
    """torchvision.models.efficientnet.MBConv."""

    def __init__(self, expand_ratio: float, kernel: int, stride: int, cin: int, cout: int, drop_prob: float):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        expanded = make_divisible(cin * expand_ratio, 8)
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(ConvNormAct(cin, expanded, 1, act=nn.SiLU))
        layers.append(ConvNormAct(expanded, expanded, kernel, stride, groups=expanded, act=nn.SiLU))
        layers.append(SqueezeExcitation(expanded, max(1, cin // 4), act=nn.SiLU, inplace_act=True))
        layers.append(ConvNormAct(expanded, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop_prob)
        self.out_channels = cout

    def forward(self, x):
        result = self.block(x)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result += x
        return result


def efficientnet_b0_features(stochastic_depth_prob: float = 0.2) -> nn.Sequential:
    """``efficientnet_b0().features``: stem, 7 stages of MBConv blocks, 1x1 conv to 1280 channels."""

    layers: list[nn.Module] = [ConvNormAct(3, 32, 3, 2, act=nn.SiLU)]
    total, block_id = sum(row[-1] for row in EFFICIENTNET_B0), 0
    for expand, kernel, stride, cin, cout, n in EFFICIENTNET_B0:
        stage = []
        for i in range(n):
            drop = stochastic_depth_prob * block_id / total
            stage.append(MBConv(expand, kernel, stride if i == 0 else 1, cin if i == 0 else cout, cout, drop))
            block_id += 1
        layers.append(nn.Sequential(*stage))
    layers.append(ConvNormAct(320, 1280, 1, act=nn.SiLU))
    return nn.Sequential(*layers)
