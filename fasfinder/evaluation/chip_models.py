"""Engines evaluated on (possibly perturbed) 150 px chips for protocol 4, with flip TTA.

The Heatmap models' Grad-CAM++ channel is recomputed on the (perturbed) chip, as at query time,
and crop and heatmap are resized to the model input exactly as
:func:`fasfinder.engines.heatmap_input.face_inputs` does. Classifier on the closed set: the
model's ArcFace head when its card ships one, otherwise the nearest class mean.
"""

from __future__ import annotations

import numpy as np

from ..errors import BadArgument, FasFinderError
from .ablation import ablate

DEFAULT_SKIP = ("dlib-resnet",)  # the C++ engine: ~10x slower than its PyTorch port on this CPU


class ChipModel:
    """An engine evaluated on (possibly perturbed) 150 px chips; embeddings with flip TTA."""

    def __init__(self, name: str, engine, *, kind: str, variant: str | None = None, backbone: str | None = None,
                 fingerprint: str = "", head: np.ndarray | None = None, head_classes: list[int] | None = None,
                 flip: bool = True):
        self.name, self.engine, self.kind = name, engine, kind
        self.variant, self.backbone = variant, backbone
        self.fingerprint, self.head, self.head_classes, self.flip = fingerprint, head, head_classes, flip
        self.card_val_f1: float | None = None

    @property
    def uses_maps(self) -> bool:
        return self.kind == "cam-vector" or (self.kind == "heatmap-net" and self.variant == "heatmap")

    @property
    def ablatable(self) -> bool:
        return self.kind == "heatmap-net" and self.variant == "heatmap"

    @property
    def classifier(self) -> str:
        return "arcface-head" if self.head is not None else "nearest-class-mean"

    def embed(self, chips: np.ndarray, maps: np.ndarray | None = None, mode: str = "normal") -> np.ndarray:
        """(n, d) L2-normalised embeddings (flip TTA when ``flip``) of uint8 chips; ``maps`` = the
        chips' Grad-CAM++ maps (n, 150, 150) for engines that use them."""

        from ..engines.base import combine_views, l2_normalise

        mirror = self.flip
        if self.kind == "heatmap-net":
            from ..engines.heatmap_input import chip_to_input

            size = self.engine.size
            crops = np.stack([chip_to_input(c, size) for c in chips])
            heat = None
            if self.variant == "heatmap":
                if maps is None:
                    raise BadArgument(f"{self.name} needs heatmaps")
                heat = np.stack([chip_to_input(np.asarray(m, np.float32), size) for m in maps]).astype(np.float32)
                heat = ablate(heat, mode)
            elif mode != "normal":
                raise BadArgument(f"ablation does not apply to {self.name} (no heatmap channel)")
            plain, mirrored = self.engine.embed_inputs(crops, heat, mirror=mirror)
        elif self.kind == "cam-vector":
            plain, mirrored = self.engine.embed_maps(maps, mirror=mirror)
        else:  # dlib descriptors (PyTorch port or C++)
            n = len(chips)
            views = list(chips) + ([np.ascontiguousarray(c[:, ::-1]) for c in chips] if mirror else [])
            emb = l2_normalise(self.engine.descriptors_from_chips(views))
            plain, mirrored = emb[:n], (emb[n:] if mirror else None)
        return combine_views(plain, mirrored) if mirror else plain


def _card_sha(card: dict) -> str:
    return "+".join(str(f.get("sha256", ""))[:12] for f in card.get("files", []))


def load_head(card: dict) -> tuple[np.ndarray | None, list[int] | None]:
    """The ArcFace class weights (n_classes, 128), L2-normalised, if the card ships them, and the
    CelebA identity of each row when the card lists them (``identities``)."""

    if not any(f.get("name") == "head" for f in card.get("files", [])):
        return None, None
    import torch

    from ..modelfiles import card_file

    sd = torch.load(card_file(card, "head"), weights_only=True, map_location="cpu")
    w = sd["weight"] if isinstance(sd, dict) else sd
    w = np.asarray(w.detach().cpu().numpy() if hasattr(w, "detach") else w, dtype=np.float32)
    w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    ids = card.get("identities") or (card.get("head_classes") if isinstance(card.get("head_classes"), list) else None)
    return w, ([int(i) for i in ids] if ids else None)


def resolve_models(names: list[str] | None, *, flip: bool = True) -> list[ChipModel]:
    """ChipModels for the requested engines (default: every installed one except ``dlib-resnet``)."""

    from ..engines import engine_names, get_engine
    from ..engines.heatmap_nets import HeatmapNetEngine, installed_cards

    cards = {c["name"]: c for c in installed_cards()}  # read now (the registry may predate a models dir change)
    known = list(dict.fromkeys([n for n in engine_names() if n not in cards] + list(cards)))
    if not names:
        names = [n for n in known if n not in DEFAULT_SKIP]
    out = []
    for name in names:
        if name in cards:
            card = cards[name]
            head, classes = load_head(card)
            eng = HeatmapNetEngine(name, card)
            m = ChipModel(name, eng, kind="heatmap-net", variant=card["variant"], backbone=card["backbone"],
                          fingerprint=_card_sha(card), head=head, head_classes=classes, flip=flip)
            m.card_val_f1 = (card.get("validation") or {}).get("val_macro_f1")  # training's own check, for the report
            out.append(m)
            continue
        if name not in known:
            from ..errors import UnknownEngine

            raise UnknownEngine(f"unknown engine {name!r}; installed: {', '.join(known)}")
        eng = get_engine(name)
        if name == "cam-vector":
            kind = "cam-vector"
        elif hasattr(eng, "descriptors_from_chips"):
            kind = "dlib"
        else:
            raise BadArgument(f"engine {name!r} has no chip-level path for protocol 4")
        try:
            fp = _card_sha(eng.card())
        except FasFinderError:
            fp = ""
        out.append(ChipModel(name, eng, kind=kind, fingerprint=fp, flip=flip))
    return out


def chip_maps(chips: np.ndarray) -> np.ndarray:
    """Grad-CAM++ maps (n, 150, 150) of chips, the heatmap definition of the heatmap models."""

    from ..engines.heatmap_input import default_cam

    maps, _ = default_cam()(chips)
    return maps
