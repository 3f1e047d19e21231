"""Embedding networks on torchvision backbones, RGB (``base``) or RGB+H (``heatmap``).

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


def _trunk(backbone: str, in_channels: int):
    """(feature extractor returning N x C x h x w, C) for a torchvision backbone."""

    torch = _torch()
    nn = torch.nn
    import torchvision.models as tvm

    if backbone == "shufflenet":
        m = tvm.shufflenet_v2_x1_0(weights=None)
        if in_channels != 3:
            m.conv1[0] = widen_first_conv(m.conv1[0], in_channels)
        trunk = nn.Sequential(m.conv1, m.maxpool, m.stage2, m.stage3, m.stage4, m.conv5)
        return trunk, 1024
    if backbone == "mobilenet":
        m = tvm.mobilenet_v3_large(weights=None)
        if in_channels != 3:
            m.features[0][0] = widen_first_conv(m.features[0][0], in_channels)
        return m.features, 960
    if backbone == "efficientnet":
        m = tvm.efficientnet_b0(weights=None)
        if in_channels != 3:
            m.features[0][0] = widen_first_conv(m.features[0][0], in_channels)
        return m.features, 1280
    raise ValueError(f"unknown backbone {backbone!r} (one of {', '.join(BACKBONES)})")


def first_conv(net):
    for mod in net.modules():
        if isinstance(mod, _torch().nn.Conv2d):
            return mod
    raise ValueError("no convolution")


def build_net(backbone: str, variant: str, embed_dim: int = EMBED_DIM):
    """An :class:`EmbeddingNet`: image (+ heatmap) -> ``embed_dim`` (not normalised)."""

    torch = _torch()
    nn = torch.nn
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
    in_ch = 4 if variant == "heatmap" else 3

    class EmbeddingNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.in_channels = in_ch
            self.trunk, c = _trunk(backbone, in_ch)
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
