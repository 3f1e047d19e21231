"""Face detection (every face), 68-point landmarks, 5-point aligned chips.

dlib's HOG detector is the default; its CNN (MMOD) detector is an optional setting and a
fallback. Landmarks use dlib's 68-point predictor; alignment for the recognition chips uses the
5-point predictor exactly as dlib's ``compute_face_descriptor`` expects.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from .errors import BadArgument
from .modelfiles import dlib_file

#: Chip geometry used by dlib's ResNet descriptor.
CHIP_SIZE = 150
CHIP_PADDING = 0.25
#: Smallest side (px) of the image the detectors run on: HOG at 2x upsampling finds faces of about
#: 40 px, so nothing under 20 px can hold a face; dlib's CNN raises (or worse, corrupts its state)
#: on images whose side is smaller than its filter windows ("Filter windows must be small enough").
MIN_DETECT_SIDE = 20
#: Smallest side (px) of the (upsampled) image the CNN detector is run on; below it the CNN fallback is skipped.
MIN_CNN_SIDE = 40


@dataclass(frozen=True)
class Face:
    """One detected face in image coordinates."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (x1/y1 exclusive)
    landmarks: np.ndarray  # (68, 2) float32, x, y
    shape5: np.ndarray  # (5, 2) float32: dlib 5-point landmarks
    score: float = 0.0  # detector confidence (HOG score or CNN confidence)
    detector: str = "hog"

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    def to_dict(self) -> dict:
        return {"box": list(map(int, self.box)), "score": round(float(self.score), 4), "detector": self.detector}


@dataclass
class DetectorSettings:
    """How faces are found. ``upsample=None`` picks by image size (small images are upsampled)."""

    detector: str = "hog"  # "hog" | "cnn"
    upsample: int | None = None
    fallback: bool = True  # retry harder (more upsampling, then CNN) when nothing is found
    max_side: int = 2000  # detect on a copy downscaled to this long side; boxes are mapped back
    extra: dict = field(default_factory=dict)

    def validate(self) -> DetectorSettings:
        if self.detector not in ("hog", "cnn"):
            raise BadArgument(f"unknown detector {self.detector!r} (use 'hog' or 'cnn')")
        if self.upsample is not None and not 0 <= self.upsample <= 3:
            raise BadArgument("upsample must be between 0 and 3")
        return self


def too_small_for_detection(height: int, width: int, max_side: int = 2000) -> str | None:
    """Why an ``height`` x ``width`` image cannot hold a detectable face (too small or too thin), or None.

    Checked before any detector runs, on the size the detector would see (after the downscale
    of a long side above ``max_side``), so tiny and extremely thin images never reach dlib.
    """

    if min(height, width) < MIN_DETECT_SIDE:
        return f"image is {width}x{height} px, under the {MIN_DETECT_SIDE} px a face needs"
    scale = min(1.0, max_side / max(height, width))
    if min(height, width) * scale < MIN_DETECT_SIDE:
        return (f"image is {width}x{height} px, too thin for face detection (its short side would be "
                f"{min(height, width) * scale:.0f} px at the detector's {max_side} px long side)")
    return None


def auto_upsample(height: int, width: int) -> int:
    """HOG finds faces of about 80 px and up; upsample small images so 40 px faces are found."""

    long_side = max(height, width)
    if long_side <= 400:
        return 2 if long_side <= 200 else 1
    if long_side <= 1200:
        return 1
    return 0


class FaceAnalyzer:
    """Thread-safe wrapper around dlib's detectors and shape predictors (lazy-loaded)."""

    def __init__(self, settings: DetectorSettings | None = None):
        self.settings = (settings or DetectorSettings()).validate()
        self._lock = threading.Lock()
        self._hog = None
        self._local = threading.local()  # one HOG detector per thread: dlib's scanner keeps per-call state
        self._cnn = None
        self._sp68 = None
        self._sp5 = None

    # -- model loading -------------------------------------------------------------------
    def _load(self) -> None:
        import dlib

        if self._hog is None or self._sp68 is None or self._sp5 is None:
            # all three or none: a failed load (e.g. a model_integrity error) leaves nothing half-set
            sp68 = dlib.shape_predictor(str(dlib_file("shape68")))
            sp5 = dlib.shape_predictor(str(dlib_file("shape5")))
            self._hog, self._sp68, self._sp5 = dlib.get_frontal_face_detector(), sp68, sp5

    def _cnn_detector(self):
        import dlib

        if self._cnn is None:
            self._cnn = dlib.cnn_face_detection_model_v1(str(dlib_file("cnn_detector")))
        return self._cnn

    def _thread_hog(self):
        """This thread's HOG detector (dlib releases the GIL while it runs, so threads detect in parallel)."""

        import dlib

        hog = getattr(self._local, "hog", None)
        if hog is None:
            hog = self._local.hog = dlib.get_frontal_face_detector()
        return hog

    # -- detection -----------------------------------------------------------------------
    def _raw_detect(self, rgb: np.ndarray, detector: str, upsample: int) -> list[tuple[tuple[int, int, int, int], float]]:
        if detector == "cnn":
            if min(rgb.shape[:2]) * (2 ** upsample) < MIN_CNN_SIDE:
                return []  # the CNN's filter windows do not fit such an image (dlib raises or corrupts its state)
            with self._lock:  # one CNN net, one caller at a time
                try:
                    dets = self._cnn_detector()(rgb, upsample)
                except RuntimeError:
                    self._cnn = None  # never reuse a net that failed half-way; the next call loads a fresh one
                    raise
            return [((d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1), float(d.confidence)) for d in dets]
        rects, scores, _ = self._thread_hog().run(rgb, upsample, 0.0)
        return [((r.left(), r.top(), r.right() + 1, r.bottom() + 1), float(s)) for r, s in zip(rects, scores)]

    def detect(self, rgb: np.ndarray, *, largest: bool = False, on_boxes=None) -> list[Face]:
        """Every face in ``rgb`` (H x W x 3 uint8), largest first. Thread-safe; threads detect in parallel.

        ``on_boxes(faces)``: called once the boxes are known, before the landmarks, with the faces in
        their final order but without landmarks (zeros): work that needs only the boxes starts early.

        ``largest``: the caller needs the largest face only (enrollment of a photo's first face):
        HOG runs without upsampling first and the size-dependent upsampling only when that finds
        nothing. Chosen on CelebA (docs/results/throughput.md): the largest face was found in 375
        of 375 in-the-wild images (100 %, upsampling always: 99.7 %) at a quarter of the time;
        not used when ``upsample`` is set or for queries, which want every (small) face.
        """

        import dlib

        s = self.settings
        h, w = rgb.shape[:2]
        if too_small_for_detection(h, w, s.max_side):
            return []
        scale = 1.0
        work = rgb
        if max(h, w) > s.max_side:
            import cv2

            scale = s.max_side / max(h, w)
            work = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        wh, ww = work.shape[:2]
        up = s.upsample if s.upsample is not None else auto_upsample(wh, ww)
        with self._lock:
            self._load()
        found = []
        if largest and s.upsample is None and s.detector == "hog" and up > 0:
            found = self._raw_detect(work, "hog", 0)
        if not found:
            found = self._raw_detect(work, s.detector, up)
        used = s.detector
        if not found and s.fallback:
            if s.detector == "hog" and up < 2 and max(wh, ww) <= 1200:
                found = self._raw_detect(work, "hog", up + 1)
                used = f"hog-up{up + 1}"
            if not found and s.detector == "hog":
                found = self._raw_detect(work, "cnn", 1 if max(wh, ww) <= 600 else 0)
                used = "cnn"
        boxes = []
        for (x0, y0, x1, y1), score in found:
            box = (
                int(round(max(0, x0) / scale)),
                int(round(max(0, y0) / scale)),
                int(round(min(ww, x1) / scale)),
                int(round(min(wh, y1) / scale)),
            )
            if box[2] - box[0] >= 4 and box[3] - box[1] >= 4:
                boxes.append((box, score))
        boxes.sort(key=lambda b: (b[0][2] - b[0][0]) * (b[0][3] - b[0][1]), reverse=True)  # largest first (stable)
        if on_boxes is not None and boxes:
            on_boxes([Face(box=b, landmarks=np.zeros((68, 2), np.float32), shape5=np.zeros((5, 2), np.float32),
                           score=sc, detector=used) for b, sc in boxes])
        return [self._shape(rgb, box, score, used, dlib) for box, score in boxes]

    def face_at(self, rgb: np.ndarray, box: tuple[int, int, int, int], detector: str = "box") -> Face:
        """Landmarks for a given box (e.g. the centre-box fallback of the LFW protocol)."""

        import dlib

        with self._lock:
            self._load()
        return self._shape(rgb, box, 0.0, detector, dlib)

    def _shape(self, rgb, box, score, detector, dlib) -> Face:
        """68 and 5 landmarks in ``box`` (dlib's shape predictors are const: safe from several threads)."""

        rect = dlib.rectangle(int(box[0]), int(box[1]), int(box[2]) - 1, int(box[3]) - 1)
        s68 = self._sp68(rgb, rect)
        s5 = self._sp5(rgb, rect)
        lm = np.array([(p.x, p.y) for p in s68.parts()], dtype=np.float32)
        p5 = np.array([(p.x, p.y) for p in s5.parts()], dtype=np.float32)
        return Face(box=tuple(int(v) for v in box), landmarks=lm, shape5=p5, score=score, detector=detector)


def full_object_detection(face: Face, use68: bool = False):
    """The dlib shape object for ``face`` (5-point by default, as dlib's descriptor expects)."""

    import dlib

    x0, y0, x1, y1 = face.box
    rect = dlib.rectangle(int(x0), int(y0), int(x1) - 1, int(y1) - 1)
    pts = face.landmarks if use68 else face.shape5
    return dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in pts])


def face_chip(rgb: np.ndarray, face: Face, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """The aligned chip dlib's ResNet sees (``size`` x ``size`` x 3 uint8)."""

    import dlib

    return np.asarray(dlib.get_face_chip(rgb, full_object_detection(face), size=size, padding=padding))


def chip_transform(face: Face, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """2x3 affine matrix mapping image coordinates to chip coordinates (for heatmap mapping).

    Computed with dlib's own chip details so it matches :func:`face_chip` exactly.
    """

    import dlib

    det = dlib.get_face_chip_details(full_object_detection(face), size=size, padding=padding)
    rect = det.rect
    angle = det.angle
    # dlib maps chip (c, r) -> image via rotation about the rect centre and scaling.
    cx = (rect.left() + rect.right()) / 2.0
    cy = (rect.top() + rect.bottom()) / 2.0
    scale_x = (rect.right() - rect.left()) / max(det.cols - 1, 1)
    scale_y = (rect.bottom() - rect.top()) / max(det.rows - 1, 1)
    cos, sin = np.cos(angle), np.sin(angle)
    # chip -> image: [x, y] = R @ ([c, r] - chip_centre) * scale + centre
    cc = (det.cols - 1) / 2.0
    rc = (det.rows - 1) / 2.0
    a = np.array([[cos * scale_x, -sin * scale_y], [sin * scale_x, cos * scale_y]])
    t = np.array([cx, cy]) - a @ np.array([cc, rc])
    chip_to_image = np.hstack([a, t[:, None]])
    inv = np.linalg.inv(np.vstack([chip_to_image, [0, 0, 1]]))[:2]
    return inv.astype(np.float64)
