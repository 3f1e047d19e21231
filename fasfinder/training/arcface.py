"""ArcFace (additive angular margin) head: logits = s * cos(theta + m) for the true class."""

from __future__ import annotations

import math


def ArcFace(embed_dim: int, n_classes: int, scale: float = 32.0, margin: float = 0.3):
    import torch
    import torch.nn.functional as F

    class _ArcFace(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.empty(n_classes, embed_dim))
            torch.nn.init.xavier_uniform_(self.weight)
            self.s = float(scale)
            self.set_margin(margin)

        def set_margin(self, margin: float) -> None:
            """Change the angular margin (training ramps it up from 0)."""

            self.m = float(margin)
            self.cos_m, self.sin_m = math.cos(margin), math.sin(margin)
            self.th = math.cos(math.pi - margin)
            self.mm = math.sin(math.pi - margin) * margin

        def cosine(self, emb):
            return F.linear(F.normalize(emb), F.normalize(self.weight))

        def forward(self, emb, labels):
            """(loss, cosine logits without margin)."""

            cos = self.cosine(emb)
            sin = torch.sqrt((1.0 - cos * cos).clamp(1e-7, 1.0))
            phi = cos * self.cos_m - sin * self.sin_m
            phi = torch.where(cos > self.th, phi, cos - self.mm)  # keep theta + m monotonic
            one_hot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
            logits = self.s * (one_hot * phi + (1 - one_hot) * cos)
            return F.cross_entropy(logits, labels), cos

    return _ArcFace()
