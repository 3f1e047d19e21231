"""A liveness model as its card describes it: load (sha256-checked), predict, explain.

:class:`LivenessModel` reads everything the input pipeline needs from the model card
(``architecture``: the network of :mod:`.networks`; ``input``: the crop of :mod:`.geometry`;
``threshold``), so the training scripts, the evaluation and the app share one definition. Its
explanation is Grad-CAM++ (:func:`fasfinder.gradcam.grad_cam_plus_plus`) at each network's target
layers, placed in the crop frame, mapped back to the image, and the Area Importance of the 10
regions of docs/BENCHMARKS.md section 5.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import ModelError
from ..faces import Face
from ..gradcam import LayerRecorder, grad_cam_plus_plus
from ..modelfiles import card_file, load_card
from ..regions import region_importance
from .geometry import (
    DEFAULT_CROP_SCALE,
    DEFAULT_SIZE,
    crop_matrix,
    model_input,
    paste_window,
    window_box,
)
from .verdict import REAL, SPOOF, UNCERTAIN, Liveness

__all__ = ["REAL", "SPOOF", "UNCERTAIN", "Liveness", "LivenessModel"]


class LivenessModel:
    """A trained liveness model described by a model card (weights sha256-checked on load)."""

    def __init__(self, card: dict, weights_path=None):
        import torch

        from .networks import (
            DEFAULT_WIDTHS,
            DLIB_STAGES,
            DlibStatsFas,
            FasNet,
            FasNetEnsemble,
        )

        self.card = card
        self.name: str = card["name"]
        self.threshold: float = float(card["threshold"])
        self.input: dict = dict(card.get("input", {}))
        arch = card.get("architecture", {})
        self.arch_type = arch.get("type", "FasNet")
        self.widths = tuple(arch.get("widths", DEFAULT_WIDTHS))
        path = weights_path if weights_path is not None else card_file(card, "weights")
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt / wrong file
            raise ModelError(f"cannot load liveness weights {path}: {exc}") from exc
        if self.arch_type == "DlibStatsFas":
            self.net = DlibStatsFas(tuple(arch.get("stages", DLIB_STAGES[:5])), arch.get("pool", "std"), tuple(arch.get("sizes", ())))
            load = self.net.load_head
        elif self.arch_type == "FasNet":
            self.net = FasNet(self.widths, window=self.input.get("window"), net_size=self.input.get("net_size"))
            load = self.net.load_state_dict
        elif self.arch_type == "FasNetEnsemble":
            windows = [float(w) for w in arch.get("windows", ())]
            if not windows:
                raise ModelError(f"card {self.name}: an ensemble needs architecture.windows")
            self.net = FasNetEnsemble(self.widths, windows, int(self.input.get("net_size", 96)))

            def load(state, net=self.net):  # stored as float16; the network runs in float32
                net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        else:
            raise ModelError(f"unknown liveness architecture {self.arch_type!r} in card {self.name}")
        try:
            load(state)
        except Exception as exc:
            raise ModelError(f"liveness weights {path} do not fit the card's architecture: {exc}") from exc
        self.net.eval()
        #: Whether the crop needs the face's landmarks (else the box is enough: a query starts the check early)
        self.needs_landmarks = bool(self.input.get("keep_regions"))
        self._lock = threading.Lock()
        self._fast = None  # the BN-folded inference copy of ``net`` (built on first use)
        self._runners: list = []  # an ensemble's members as traced TorchScript (built with ``_fast``)

    @classmethod
    def from_card(cls, name: str = "fas-nuaa-wide") -> LivenessModel:
        return cls(load_card(name))

    # -- inference -----------------------------------------------------------------------
    def crops(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        return np.stack([model_input(rgb, f, self.input) for f in faces]) if faces else np.zeros((0,), np.uint8)

    #: Crops per forward pass of :meth:`scores_from_crops`.
    batch_size = 32

    def scores_from_crops(self, crops: np.ndarray) -> np.ndarray:
        """Probability of a live face for each uint8 crop (N x S x S x 3), in batches through the
        BN-folded copy of the network (:func:`.networks.fused_for_inference`)."""

        return self.start_scores(crops).result()

    def _inference_net(self):
        with self._lock:
            if self._fast is None:
                from .networks import fused_for_inference

                fast = fused_for_inference(self.net)
                if self.arch_type in ("FasNet", "FasNetEnsemble"):
                    # the crops arrive channels-last (HWC pixels); with channels-last weights too, the
                    # small late convolutions (torch's slow path below 20480 input values) no longer copy
                    # their weights on every call: 15 % less time, same scores (tests/test_query_stages.py)
                    import torch

                    fast = fast.to(memory_format=torch.channels_last)
                if self.arch_type == "FasNetEnsemble":
                    from .networks import traced_members

                    self._runners = traced_members(fast)  # run on the compute threads without the GIL
                self._fast = fast
            return self._fast

    def start_scores(self, crops: np.ndarray):
        """Start :meth:`scores_from_crops` on the compute threads (:mod:`fasfinder.compute`) and return
        at once; ``.result()`` waits for the scores. An ensemble runs as one part per member (and
        batch), dearest first; the members' probabilities are stacked in member order and combined
        exactly as the whole network combines them, so the scores equal a serial pass."""

        import torch

        from ..compute import compute_pool
        from .networks import FasNetEnsemble

        pool = compute_pool()
        if len(crops) == 0:
            return pool.start(None, []).then(lambda _v: np.zeros((0,), dtype=np.float64))
        net = self._inference_net()
        batches = [net.preprocess(crops[i : i + self.batch_size]) for i in range(0, len(crops), self.batch_size)]
        if not (isinstance(net, FasNetEnsemble) and pool.workers):
            def whole(_part):
                with torch.inference_mode():
                    return torch.cat([torch.softmax(net(x), dim=1)[:, 1] for x in batches]).double().numpy()

            return pool.start(whole, [None]).then(lambda v: v[0])
        with torch.inference_mode():
            inputs = [net.window_inputs(x) for x in batches]
        costs = net.member_costs()
        members = sorted(range(len(costs)), key=lambda i: -costs[i])
        parts = [(b, i) for b in range(len(batches)) for i in members]

        runners = self._runners

        def part(p):
            with torch.inference_mode():
                return net.member_prob(p[1], inputs[p[0]], runners[p[1]])

        def join(values):
            got = dict(zip(parts, values))
            with torch.inference_mode():
                return torch.cat([torch.softmax(net.combine(torch.stack([got[b, i] for i in range(len(costs))], 0)),
                                                dim=1)[:, 1] for b in range(len(batches))]).double().numpy()

        return pool.start(part, parts).then(join)

    def verdict(self, score: float) -> Liveness:
        return Liveness(label=REAL if score >= self.threshold else SPOOF, score=float(score), model=self.name)

    def predict(self, rgb: np.ndarray, faces: list[Face]) -> list[Liveness]:
        return self.start_predict(rgb, faces).result()

    def start_predict(self, rgb: np.ndarray, faces: list[Face]):
        """:meth:`predict` started on the compute threads; ``.result()`` -> list[Liveness]."""

        return self.start_scores(self.crops(rgb, faces)).then(lambda scores: [self.verdict(s) for s in scores])

    def predict_many(self, items: list[tuple[np.ndarray, list[Face]]]) -> list[list[Liveness]]:
        """:meth:`predict` for several images, all their faces through the network in shared batches."""

        crops = [self.crops(rgb, faces) for rgb, faces in items if faces]
        scores = iter(self.scores_from_crops(np.concatenate(crops)) if crops else [])
        return [[self.verdict(next(scores)) for _ in faces] for _, faces in items]

    # -- explanation ---------------------------------------------------------------------
    def cam_from_crop(self, crop: np.ndarray, target: int | None = None) -> tuple[np.ndarray, int]:
        """Grad-CAM++ (S x S, [0, 1]) of the last convolution for one crop; explains ``target``
        (0 = spoof, 1 = real; default: the predicted class at this model's threshold). A model
        that runs its trunk at several sizes gets the mean of the per-size maps."""

        import torch

        x = self.net.preprocess(crop).requires_grad_(True)  # frozen trunk: the graph starts at the input
        layers = self.net.cam_layers()  # [(layer, window of the crop it sees or None)]
        with self._lock, LayerRecorder([layer for layer, _ in layers]) as rec, torch.enable_grad():
            logits = self.net(x)
            if target is None:
                p_real = float(torch.softmax(logits.detach(), dim=1)[0, 1])
                target = 1 if p_real >= self.threshold else 0
            # one pass per target layer, or several (a multi-size trunk runs its layer once per size)
            acts, grads = rec.gradients(logits[0, int(target)])
        maps = []
        for (i, _), a, g in zip(rec.passes, acts, grads):
            window = layers[i][1]
            act, grad = a.double().numpy(), g.double().numpy()  # float64, as these maps always were
            if window is None:
                maps.append(grad_cam_plus_plus(act, grad, crop.shape[:2])[0])
            else:  # the layer saw a window of the crop: its map goes there, zero elsewhere
                x0, y0, side = window_box(crop.shape[0], window)
                maps.append(paste_window(grad_cam_plus_plus(act, grad, (side, side))[0], x0, y0, crop.shape[:2]))
        if len(maps) == 1:
            return maps[0], int(target)
        cam = np.mean(maps, axis=0)  # multi-size: average of the per-size maps (same crop frame), rescaled to [0, 1]
        cam = cam - cam.min()
        return np.clip(cam / (1e-7 + cam.max()), 0.0, 1.0).astype(np.float32), int(target)

    def explain(self, rgb: np.ndarray, face: Face, target: int | None = None) -> tuple[np.ndarray, dict[str, float]]:
        """Grad-CAM++ heatmap in the ORIGINAL image's coordinates (H x W float32 in [0, 1], 0
        outside the crop) and the Area Importance of the 10 regions (docs/BENCHMARKS.md section 5)."""

        import cv2

        scale = float(self.input.get("crop_scale", DEFAULT_CROP_SCALE))
        size = int(self.input.get("size", DEFAULT_SIZE))
        crop = model_input(rgb, face, self.input)
        hm_crop, _ = self.cam_from_crop(crop, target)
        m = crop_matrix(face.box, scale, size)
        h, w = rgb.shape[:2]
        hm = cv2.warpAffine(
            hm_crop, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        hm = np.clip(hm, 0.0, 1.0).astype(np.float32)
        return hm, region_importance(hm, face.landmarks)

    def info(self) -> dict:
        return {"name": self.name, "threshold": self.threshold, "input": self.input, "metrics": self.card.get("metrics", {})}
