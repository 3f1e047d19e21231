"""Embedding networks on torchvision backbones, RGB (``base``) or RGB+H (``heatmap``).

The run time builds the backbones from :mod:`.tv_arch` (torchvision's architectures, same state-dict
keys, without importing torchvision: the CPU-only installer ships no torchvision); training builds
them with torchvision itself (``trunk_from="torchvision"``), keeping torchvision's initialisation.

No pretrained weights are used (none exist on this machine): every network is built with
``weights=None``. The ``heatmap`` variant widens the first convolution to 4 input channels; the
RGB filters are kept and the 4th channel's filter is initialised from their mean, so at the start
of training a heatmap equal to the grey image would leave the network's response unchanged up to
a scale (the paper's stable-initialisation argument). Inputs: RGB in [0, 1] and heatmap in [0, 1],
each mapped to [-1, 1].
"""

from __future__ import annotations

BACKBONES = ("shufflenet", "mobilenet", "efficientnet")
VARIANTS = ("base", "heatmap")
EMBED_DIM = 128


def _torch():
    import torch

    return torch


def widen_first_conv(conv, in_channels: int = 4):
    """A copy of ``conv`` (3 input channels) with ``in_channels`` inputs: RGB filters kept,
    every extra channel's filter = the mean of the RGB filters."""

    torch = _torch()
    nn = torch.nn
    if conv.in_channels != 3:
        raise ValueError("expected a 3-channel convolution")
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    with torch.no_grad():
        new.weight[:, :3] = conv.weight
        new.weight[:, 3:] = conv.weight.mean(dim=1, keepdim=True)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


TRUNK_SOURCES = ("own", "torchvision")


def _trunk_modules(backbone: str, trunk_from: str):
    """The backbone's feature modules: ``own`` (:mod:`.tv_arch`) or ``torchvision``'s full network."""

    if trunk_from not in TRUNK_SOURCES:
        raise ValueError(f"unknown trunk source {trunk_from!r} (one of {', '.join(TRUNK_SOURCES)})")
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r} (one of {', '.join(BACKBONES)})")
    if trunk_from == "torchvision":
        import torchvision.models as tvm

        if backbone == "shufflenet":
            return tvm.shufflenet_v2_x1_0(weights=None)
        if backbone == "mobilenet":
            return tvm.mobilenet_v3_large(weights=None).features
        return tvm.efficientnet_b0(weights=None).features
    from . import tv_arch

    if backbone == "shufflenet":
        return tv_arch.shufflenet_v2_x1_0()
    if backbone == "mobilenet":
        return tv_arch.mobilenet_v3_large_features()
    return tv_arch.efficientnet_b0_features()


def _trunk(backbone: str, in_channels: int, trunk_from: str = "own"):
    """(feature extractor returning N x C x h x w, C) for a torchvision backbone."""

    nn = _torch().nn
    m = _trunk_modules(backbone, trunk_from)
    if backbone == "shufflenet":
        if in_channels != 3:
            m.conv1[0] = widen_first_conv(m.conv1[0], in_channels)
        return nn.Sequential(m.conv1, m.maxpool, m.stage2, m.stage3, m.stage4, m.conv5), 1024
    if in_channels != 3:
        m[0][0] = widen_first_conv(m[0][0], in_channels)
    return m, (960 if backbone == "mobilenet" else 1280)


def first_conv(net):
    for mod in net.modules():
        if isinstance(mod, _torch().nn.Conv2d):
            return mod
    raise ValueError("no convolution")


def build_net(backbone: str, variant: str, embed_dim: int = EMBED_DIM, trunk_from: str = "own"):
    """An :class:`EmbeddingNet`: image (+ heatmap) -> ``embed_dim`` (not normalised). ``trunk_from``:
    ``own`` (run time, no torchvision) or ``torchvision`` (training); the two have the same state dict."""

    torch = _torch()
    nn = torch.nn
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
    in_ch = 4 if variant == "heatmap" else 3

    class EmbeddingNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.in_channels = in_ch
            self.trunk, c = _trunk(backbone, in_ch, trunk_from)
            self.drop = nn.Dropout(0.2)
            self.fc = nn.Linear(c, embed_dim)
            self.bn = nn.BatchNorm1d(embed_dim)

        def forward(self, x):
            """x: (n, in_channels, h, w) in [0, 1]."""

            x = (x - 0.5) / 0.5
            f = self.trunk(x).mean(dim=(2, 3))
            return self.bn(self.fc(self.drop(f)))

    net = EmbeddingNet()
    net.backbone, net.variant = backbone, variant
    return net


def count_params(net) -> int:
    return sum(p.numel() for p in net.parameters())
