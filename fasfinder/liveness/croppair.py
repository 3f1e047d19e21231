"""Liveness models that read two crops of the Silent-Face-Anti-Spoofing rule (2.7x and 4.0x the
face box, 80x80, BGR 0..255): the crop geometry and the model class both such models share.

Used by the third-party reference pair (:mod:`.minifasnet`, the teacher) and by the product's own
distilled student (:mod:`.student`): one crop rule, one Grad-CAM++ placement, so teacher and
student are compared on exactly the same input.

Boxes: the original pipeline places its crops around a RetinaFace box (x, y, w, h).
:func:`crop_box` reproduces its rule (enlarge about the centre, scale capped so the crop fits,
shifted back inside the image). The product detects faces with dlib, so :func:`dlib_to_retina`
maps a dlib box to a RetinaFace-like box with a linear rule fitted on NUAA training-list
images of the reference outputs (bench/minifasnet_parity.py ``--fit``).

Captured area: the product's models (:meth:`CropPairModel.predict`, ``predict_many``, ``explain``)
place the crops inside the part of the image a camera captured, never over synthetic black padding
(:mod:`.padding`); :meth:`CropPairModel.softmax_bgr` given reference boxes keeps the original rule.
"""

from __future__ import annotations

import threading

import numpy as np

from .padding import captured_areas

INPUT_SIZE = 80
SCALES = (2.7, 4.0)

# dlib (x0, y0, x1, y1) -> RetinaFace-like (x, y, w, h): centre shift in units of the dlib width /
# height and size as a multiple of it. Fitted by least squares on the reference images of the
# NUAA TRAINING lists (bench/minifasnet_parity.py --fit); see docs/results/fas.md.
DLIB_MAP = {"cx": -0.0022, "cy": -0.0086, "w": 1.0556, "h": 1.0688}  # 200 training-list images


def crop_box(box_xywh, image_hw, scale: float, bounds=None) -> tuple[int, int, int, int]:
    """Inclusive pixel rectangle (x0, y0, x1, y1) of the original pipeline's crop.

    The box is enlarged ``scale`` times about its centre (the scale is capped so that the crop
    fits the image: at most (W-1)/w and (H-1)/h); a crop that leaves the image is shifted back
    inside (no padding); corners are truncated to int. ``bounds`` (inclusive x0, y0, x1, y1, the
    captured area of :mod:`.padding`) takes the image's place when given.
    """

    if bounds is not None:
        bx0, by0, bx1, by1 = (int(v) for v in bounds)
        x, y, w, h = (float(v) for v in box_xywh)
        c = crop_box((x - bx0, y - by0, w, h), (by1 - by0 + 1, bx1 - bx0 + 1), scale)
        return c[0] + bx0, c[1] + by0, c[2] + bx0, c[3] + by0
    x, y, w, h = (float(v) for v in box_xywh)
    img_h, img_w = int(image_hw[0]), int(image_hw[1])
    w, h = max(w, 1.0), max(h, 1.0)
    s = min(float(scale), (img_h - 1) / h, (img_w - 1) / w)
    nw, nh = w * s, h * s
    cx, cy = x + w / 2, y + h / 2
    x0, y0, x1, y1 = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if x0 < 0:
        x1, x0 = x1 - x0, 0.0
    if y0 < 0:
        y1, y0 = y1 - y0, 0.0
    if x1 > img_w - 1:
        x0, x1 = x0 - (x1 - img_w + 1), img_w - 1.0
    if y1 > img_h - 1:
        y0, y1 = y0 - (y1 - img_h + 1), img_h - 1.0
    return int(x0), int(y0), int(x1), int(y1)


def crop(bgr: np.ndarray, box_xywh, scale: float, size: int = INPUT_SIZE, bounds=None) -> np.ndarray:
    """The size x size uint8 BGR crop (bilinear resize of the inclusive rectangle)."""

    import cv2

    x0, y0, x1, y1 = crop_box(box_xywh, bgr.shape[:2], scale, bounds)
    patch = bgr[max(y0, 0): y1 + 1, max(x0, 0): x1 + 1]
    return cv2.resize(patch, (size, size))


def dlib_to_retina(box_xyxy, mapping: dict | None = None) -> tuple[float, float, float, float]:
    """A dlib box (x0, y0, x1, y1) as a RetinaFace-like (x, y, w, h) by the fitted linear rule."""

    m = DLIB_MAP if mapping is None else mapping
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    dw, dh = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2 + m["cx"] * dw
    cy = (y0 + y1) / 2 + m["cy"] * dh
    w, h = m["w"] * dw, m["h"] * dh
    return cx - w / 2, cy - h / 2, w, h


def face_box(face) -> tuple[float, float, float, float]:
    """The RetinaFace-like (x, y, w, h) box of a product :class:`~fasfinder.faces.Face` (dlib box)."""

    return dlib_to_retina(face.box)


def pair_crops(rgb: np.ndarray, box_xyxy, scales=SCALES, bounds=None) -> np.ndarray:
    """(len(scales), 80, 80, 3) uint8 BGR crops of one dlib box of an RGB image."""

    bgr = np.ascontiguousarray(rgb[..., ::-1])
    box = dlib_to_retina(box_xyxy)
    return np.stack([crop(bgr, box, s, bounds=bounds) for s in scales])


def captured(rgb: np.ndarray, faces, strip: bool = True) -> list[tuple[int, int, int, int]]:
    """Per face, the inclusive rectangle of captured pixels its crops stay in (:mod:`.padding`;
    the whole image when ``strip`` is False)."""

    if strip:
        return captured_areas(rgb, [f.box for f in faces])
    h, w = rgb.shape[:2]
    return [(0, 0, w - 1, h - 1) for _ in faces]


def bounds_hw(bounds) -> tuple[int, int]:
    return bounds[3] - bounds[1] + 1, bounds[2] - bounds[0] + 1


def bgr_tensor(crops: np.ndarray):
    """N x 80 x 80 x 3 uint8 -> N x 3 x 80 x 80 float32 (0..255, channel order kept)."""

    import torch

    return torch.from_numpy(np.ascontiguousarray(np.asarray(crops, np.float32).transpose(0, 3, 1, 2)))


class CropPairModel:
    """Networks that each read one crop scale; ``predict`` / ``explain`` like LivenessModel.

    Subclasses set ``nets`` (3-class softmax, class 1 = live), ``scales``, ``name``, ``threshold``
    and implement :meth:`verdicts` (labels from the member softmax vectors).
    """

    LIVE = 1
    #: The crops come from the face box alone, so a query may start the check from the detector's boxes
    #: before the landmarks (fasfinder.service); ``Face.landmarks`` are read only by ``explain``.
    needs_landmarks = False
    #: Place the crops inside the captured area (:mod:`.padding`); False: the original rule on the whole image.
    strip_padding = True
    nets: list
    scales: tuple
    name: str
    threshold: float

    def __init__(self):
        self._lock = threading.Lock()

    def softmax_bgr(self, bgr: np.ndarray, boxes_xywh, bounds=None) -> np.ndarray:
        """(N, members, 3) softmax of each member for each RetinaFace-like box of a BGR image
        (``bounds``: per box, the captured rectangle its crops stay in; default the whole image)."""

        boxes = list(boxes_xywh)
        if not boxes:
            return np.zeros((0, len(self.nets), 3))
        bounds = [None] * len(boxes) if bounds is None else bounds
        crops = np.stack([np.stack([crop(bgr, b, s, bounds=r) for s in self.scales]) for b, r in zip(boxes, bounds)])
        return self.softmax_crops(crops)

    def softmax_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, members, 3) softmax for stored crops (N, members, 80, 80, 3) uint8 BGR."""

        import torch

        with self._lock, torch.inference_mode():
            return np.stack([torch.softmax(net(bgr_tensor(crops[:, k])), dim=1).double().numpy()
                             for k, net in enumerate(self.nets)], axis=1)

    def verdicts(self, probs: np.ndarray, faces, areas_hw) -> list:
        """Liveness per face from the member softmax vectors; ``areas_hw``: per face, the (h, w) of
        the captured rectangle its crops were placed in."""

        raise NotImplementedError

    def predict(self, rgb: np.ndarray, faces) -> list:
        if not faces:
            return []
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        bounds = captured(rgb, faces, self.strip_padding)
        probs = self.softmax_bgr(bgr, [face_box(f) for f in faces], bounds)
        return self.verdicts(probs, faces, [bounds_hw(b) for b in bounds])

    def predict_many(self, items: list) -> list[list]:
        """:meth:`predict` for several (rgb, faces) images, all crops through the networks at once."""

        bounds = [captured(rgb, faces, self.strip_padding) for rgb, faces in items]
        crops = [np.stack([pair_crops(rgb, f.box, self.scales, r) for f, r in zip(faces, rs)])
                 for (rgb, faces), rs in zip(items, bounds) if faces]
        if not crops:
            return [[] for _ in items]
        probs = self.softmax_crops(np.concatenate(crops))
        out, i = [], 0
        for (_rgb, faces), rs in zip(items, bounds):
            out.append(self.verdicts(probs[i : i + len(faces)], faces, [bounds_hw(r) for r in rs]) if faces else [])
            i += len(faces)
        return out

    def is_live(self, mean_probs: np.ndarray) -> bool:
        """The fused label of the members' mean softmax (3,): live at or above the threshold."""

        return float(mean_probs[self.LIVE]) >= self.threshold

    def cam_layer(self, net):
        """The member's last convolution with a spatial map (Grad-CAM++ target layer)."""

        raise NotImplementedError

    def explain(self, rgb: np.ndarray, face, target: int | None = None):
        """Grad-CAM++ at each member's last convolution, placed back on its crop rectangle in the
        image, averaged; and the Area Importance of the 10 regions. ``target`` 1 explains class 1
        (live), 0 the attack class with the larger fused probability; default: the fused label
        (live when the mean P(live) reaches the model's threshold)."""

        import torch

        from ..gradcam import LayerRecorder, grad_cam_plus_plus
        from ..regions import region_importance

        bgr = np.ascontiguousarray(rgb[..., ::-1])
        box = face_box(face)
        h, w = rgb.shape[:2]
        bounds = captured(rgb, [face], self.strip_padding)[0]
        maps = []
        with self._lock, torch.enable_grad():
            outs = []
            for net, s in zip(self.nets, self.scales):
                with LayerRecorder([self.cam_layer(net)]) as rec:
                    outs.append((net(bgr_tensor(crop(bgr, box, s, bounds=bounds)[None])), rec))
            total = sum(torch.softmax(o.detach(), dim=1)[0] for o, _ in outs)
            live = self.is_live(total.numpy() / len(outs))
            want_live = live if target is None else int(target) == 1
            cls = self.LIVE if want_live else (0 if total[0] >= total[2] else 2)
            for (out, rec), scale in zip(outs, self.scales):
                acts, grads = rec.gradients(out[0, cls])
                x0, y0, x1, y1 = crop_box(box, (h, w), scale, bounds)
                cw, ch = x1 - x0 + 1, y1 - y0 + 1
                m = grad_cam_plus_plus(acts[0].double().numpy(), grads[0].double().numpy(), (ch, cw))[0]
                full = np.zeros((h, w), np.float32)
                xa, ya = max(x0, 0), max(y0, 0)
                full[ya: y1 + 1, xa: x1 + 1] = m[ya - y0: ch, xa - x0: cw]
                maps.append(full)
        hm = np.mean(maps, axis=0)
        hm = np.clip((hm - hm.min()) / (1e-7 + hm.max() - hm.min()), 0.0, 1.0).astype(np.float32)
        return hm, region_importance(hm, face.landmarks)
