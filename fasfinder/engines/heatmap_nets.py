"""Engines that run the trained lightweight recognizers (:mod:`.backbones`, trained by
:mod:`fasfinder.training.heatmap`).

Every ``models/<name>.card.json`` with ``"kind": "heatmap-net"`` whose weights file exists becomes
an engine ``<name>`` (e.g. ``shufflenet-base``, ``shufflenet-heatmap``). The weights are checked
against the card's sha256 before ``torch.load(weights_only=True)``. Heatmap models compute their
4th channel on the fly (Grad-CAM++ of ``dlib-resnet-torch`` at ``level2``, the definition used
for training, see :mod:`.heatmap_input`); the mirror view uses the mirrored
crop and mirrored heatmap. Embedding = the network's 128-d output, L2-normalised.
"""

from __future__ import annotations

import threading

import numpy as np

from ..faces import Face
from ..modelfiles import card_file, load_card, models_dir
from .base import Engine, l2_normalise

KIND = "heatmap-net"


class HeatmapNetEngine(Engine):
    dim = 128
    #: whether embedding needs the Grad-CAM++ heatmap of fasfinder.engines.heatmap_input
    needs_heatmap = False  # set per instance: True for the heatmap variant
    batch_size = 64

    def __init__(self, name: str, card: dict | None = None):
        self.name = name
        self.card_name = name
        self._card = card or load_card(name)
        self.backbone = self._card["backbone"]
        self.variant = self._card["variant"]
        self.needs_heatmap = self.variant == "heatmap"
        self.size = int(self._card.get("input_size", 112))
        self._net = None
        self._lock = threading.Lock()

    def net(self):
        if self._net is None:
            import torch

            from .backbones import build_net

            path = card_file(self._card, "weights")  # sha256-verified
            net = build_net(self.backbone, self.variant)
            net.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
            self._net = net.eval()
        return self._net

    def inputs(self, rgb: np.ndarray, faces: list[Face]):
        from .heatmap_input import face_inputs

        return face_inputs(rgb, faces, self.size, heatmap=self.variant == "heatmap")

    def embed_inputs(self, crops: np.ndarray, heat: np.ndarray | None, *, mirror: bool = True):
        import torch

        n = len(crops)
        if n == 0:
            empty = np.zeros((0, self.dim), dtype=np.float32)
            return empty, (empty if mirror else None)
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255.0)
        if heat is not None:
            x = torch.cat([x, torch.from_numpy(np.ascontiguousarray(heat, dtype=np.float32)).unsqueeze(1)], 1)
        if mirror:
            x = torch.cat([x, torch.flip(x, dims=[3])])
        with self._lock, torch.inference_mode():
            net = self.net()
            out = np.concatenate([net(x[s : s + self.batch_size]).numpy() for s in range(0, len(x), self.batch_size)])
        emb = l2_normalise(out)
        return emb[:n], (emb[n:] if mirror else None)

    def embed_views(self, rgb: np.ndarray, faces: list[Face], *, mirror: bool = True):
        crops, heat = self.inputs(rgb, faces)
        return self.embed_inputs(crops, heat, mirror=mirror)


def installed_cards() -> list[dict]:
    import json

    out = []
    for path in sorted(models_dir().glob("*.card.json")):
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if card.get("kind") != KIND:
            continue
        files = [f for f in card.get("files", []) if f.get("name") == "weights"]
        if files and (models_dir() / files[0]["path"]).is_file():
            out.append(card)
    return out


def register_engines(register) -> None:
    for card in installed_cards():
        name = card["name"]
        how = "distilled from dlib-resnet-torch" if card.get("teacher") else "from scratch"
        desc = (f"{card['backbone']} {card['variant']} ({'RGB+Grad-CAM++ heatmap' if card['variant'] == 'heatmap' else 'RGB'}), "
                f"{card.get('input_size', 112)} px, ArcFace, {how}; 128-d")
        register(name, lambda name=name, card=card: HeatmapNetEngine(name, card), desc)


__all__ = ["HeatmapNetEngine", "register_engines", "installed_cards", "KIND"]
