"""The face crop stored with each face: a JPEG of the face box grown around its centre.

Used for thumbnails, explanations and export; the landmarks stay in image coordinates in SQLite
and are mapped into the crop with :func:`landmarks_in_crop`.
"""

from __future__ import annotations

import numpy as np

from ..errors import GalleryError
from ..faces import Face

#: Long side (px) of the face crop stored with each face (for thumbnails, explanations, export).
CROP_SIDE = 256
#: Crop = face box grown by this factor around its centre.
CROP_MARGIN = 2.0


def face_crop(rgb: np.ndarray, face: Face) -> tuple[bytes, list[float]]:
    """JPEG of the face box grown by CROP_MARGIN (black outside the image), and its box."""

    import cv2

    x0, y0, x1, y1 = face.box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    half = max(x1 - x0, y1 - y0) * CROP_MARGIN / 2.0
    bx0, by0, bx1, by1 = cx - half, cy - half, cx + half, cy + half
    side = 2 * half
    scale = CROP_SIDE / side
    m = np.array([[scale, 0, -bx0 * scale], [0, scale, -by0 * scale]], dtype=np.float64)
    crop = cv2.warpAffine(rgb, m, (CROP_SIDE, CROP_SIDE), flags=cv2.INTER_AREA, borderValue=0)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise GalleryError("could not encode the face crop")
    return buf.tobytes(), [bx0, by0, bx1, by1]


#: Most pixels a stored crop may decode to (the crops written here are CROP_SIDE x CROP_SIDE; one
#: from an archive or an older version may be larger, a decompression bomb never).
CROP_MAX_PIXELS = 16 * CROP_SIDE * CROP_SIDE
#: Most bytes of a stored crop.
CROP_MAX_BYTES = 4 * 1024 * 1024


def decode_crop(blob: bytes) -> np.ndarray:
    """The RGB pixels of a stored crop, decoded by :func:`fasfinder.imaging.load_image` (its checks:
    format, size read from the header before decoding, truncation) under CROP_MAX_PIXELS and the
    user's ``FASFINDER_MAX_PIXELS``. A bad crop is GalleryError code ``bad_crop``."""

    from ..errors import ImageError
    from ..imaging import load_image, max_pixels_setting

    if not isinstance(blob, (bytes, bytearray, memoryview)) or not blob or len(blob) > CROP_MAX_BYTES:
        raise GalleryError("stored face crop is empty, not bytes or over the size limit", code="bad_crop")
    try:
        return load_image(bytes(blob), max_pixels=min(CROP_MAX_PIXELS, max_pixels_setting()),
                          max_bytes=CROP_MAX_BYTES).pixels
    except ImageError as exc:
        raise GalleryError(f"stored face crop refused ({exc.code}: {exc})", code="bad_crop") from exc


def landmarks_in_crop(landmarks: np.ndarray, crop_box, crop_width: int) -> np.ndarray:
    """Image-coordinate landmarks mapped into a crop of ``crop_width`` px cut at ``crop_box``."""

    bx0, by0, bx1, _by1 = (float(v) for v in crop_box)
    if not np.isfinite([bx0, by0, bx1]).all() or not bx1 > bx0:
        raise GalleryError(f"stored crop box {list(crop_box)} is degenerate", code="bad_crop")
    scale = crop_width / (bx1 - bx0)
    return ((landmarks - np.array([bx0, by0], np.float32)) * scale).astype(np.float32)
