"""The product's own liveness model: a small two-crop network distilled from the MiniFASNet pair.

Architecture (:func:`build_student`): per crop scale (2.7x and 4.0x the face box, the teacher's crop
rule of :mod:`.croppair`, 80x80 BGR) one small CNN: a 3x3 stride-2 stem, depthwise-separable
blocks down to 5x5, a 1x1 convolution (the Grad-CAM++ layer), global average pooling, a linear
3-class head (the teacher's classes; class 1 = live). Trained by :mod:`fasfinder.training.fas_distill`.

Verdict (three-way): ``score`` = the members' mean P(live); ``real`` at or above ``band[1]``,
``spoof`` below ``band[0]``, ``uncertain`` between. A face the model cannot judge fairly is never
called ``spoof``, only ``uncertain``: a face smaller than ``gates.min_face`` pixels, or a tight
photo where the wide crop has little context (``gates.min_context``: the 4.0x crop's achievable
scale over 4.0, below 1 when the image ends close around the face). Band and gates come from the
model card (chosen on training data).
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..modelfiles import cached_model, card_file, load_card
from .croppair import CropPairModel, face_box
from .verdict import REAL, SPOOF, UNCERTAIN, Liveness

#: Name of the shipped card (``models/<name>.card.json``).
STUDENT_MODEL = "fas-student"
DEFAULT_WIDTHS = (24, 48, 96, 128)


def build_student(widths=DEFAULT_WIDTHS, dropout: float = 0.2):
    """One member network (torch module) for an 80x80 BGR 0..255 crop."""

    import torch
    from torch import nn

    def conv_bn(cin, cout, k, s, groups=1):
        return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True))

    def sep(cin, cout, s):
        return nn.Sequential(conv_bn(cin, cin, 3, s, groups=cin), conv_bn(cin, cout, 1, 1))

    class StudentNet(nn.Module):
        def __init__(self):
            super().__init__()
            c0, c1, c2, c3 = widths
            self.features = nn.Sequential(
                conv_bn(3, c0, 3, 2),                 # 80 -> 40
                sep(c0, c1, 2), sep(c1, c1, 1),       # -> 20
                sep(c1, c2, 2), sep(c2, c2, 1),       # -> 10
                sep(c2, c3, 2), sep(c3, c3, 1),       # -> 5
            )
            self.last_conv = conv_bn(c3, 2 * c3, 1, 1)  # Grad-CAM++ layer (5x5)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(2 * c3, 3)

        def forward(self, x):
            x = self.last_conv(self.features(x / 127.5 - 1.0))
            return self.head(self.drop(torch.flatten(x.mean(dim=(2, 3)), 1)))

    return StudentNet()


def context(face, image_hw, scale: float = 4.0) -> float:
    """How much of the wide crop the image can give: achievable scale / ``scale`` (1 = full)."""

    _, _, w, h = face_box(face)
    return float(min(scale, (image_hw[0] - 1) / max(h, 1.0), (image_hw[1] - 1) / max(w, 1.0)) / scale)


class StudentPair(CropPairModel):
    """The distilled student as its card describes it (weights sha256-checked on load)."""

    def __init__(self, card: dict, weights_path=None):
        import torch

        super().__init__()
        self.card = card
        self.name = card["name"]
        arch = card.get("architecture", {})
        self.scales = tuple(float(s) for s in arch.get("scales", (2.7, 4.0)))
        widths = tuple(arch.get("widths", DEFAULT_WIDTHS))
        self.band = tuple(float(v) for v in card.get("band", (card["threshold"], card["threshold"])))
        self.threshold = float(card["threshold"])
        self.gates = dict(card.get("gates", {}))
        self.input = {"crops": [{"scale": s, "size": 80, "channels": "BGR", "range": "0..255"} for s in self.scales],
                      "box": "dlib box mapped by DLIB_MAP"}
        path = weights_path if weights_path is not None else card_file(card, "weights")
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(f"cannot load liveness weights {path}: {exc}") from exc
        self.nets = []
        for k in range(len(self.scales)):
            net = build_student(widths)
            prefix = f"member{k}."
            try:
                net.load_state_dict({n[len(prefix):]: v.float() for n, v in state.items() if n.startswith(prefix)})
            except Exception as exc:
                raise ModelError(f"liveness weights {path} do not fit the card's architecture: {exc}") from exc
            self.nets.append(net.eval())

    @classmethod
    def from_card(cls, name: str = STUDENT_MODEL) -> StudentPair:
        return cls(load_card(name))

    def label(self, score: float, face=None, image_hw=None) -> str:
        lo, hi = self.band
        if score >= hi:
            return REAL
        if score >= lo:
            return UNCERTAIN
        if face is not None and image_hw is not None and self.out_of_domain(face, image_hw):
            return UNCERTAIN
        return SPOOF

    def out_of_domain(self, face, image_hw) -> bool:
        """Too small a face, or too little context around it, for a fair 'spoof'."""

        x0, y0, x1, y1 = face.box
        if min(x1 - x0, y1 - y0) < float(self.gates.get("min_face", 0)):
            return True
        return context(face, image_hw) < float(self.gates.get("min_context", 0.0))

    def verdicts(self, probs: np.ndarray, faces, areas_hw) -> list:


        scores = probs[:, :, self.LIVE].mean(axis=1)
        return [Liveness(label=self.label(float(s), f, hw), score=float(s), model=self.name)
                for s, f, hw in zip(scores, faces, areas_hw)]

    def scores_from_crops(self, crops: np.ndarray) -> np.ndarray:
        """Mean P(live) for stored crops (N, members, 80, 80, 3) uint8 BGR."""

        return self.softmax_crops(crops)[:, :, self.LIVE].mean(axis=1)

    def cam_layer(self, net):
        return net.last_conv

    def info(self) -> dict:
        return {"name": self.name, "threshold": self.threshold, "band": list(self.band), "gates": self.gates,
                "input": self.input, "metrics": self.card.get("metrics", {})}


def student_model(name: str = STUDENT_MODEL) -> StudentPair:
    """The shipped student (loaded once per process; thread-safe)."""

    return cached_model(("liveness", name), lambda: StudentPair.from_card(name))
