"""Load any user-supplied image into a validated RGB ``uint8`` array.

Handles EXIF orientation, palette / grey / alpha / CMYK / 16-bit modes, decompression bombs,
oversized images, truncated, empty and non-image files. Every failure is a typed
:class:`~fasfinder.errors.ImageError` with a stable code; nothing else escapes.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import EmptyFile, FileNotFound, TooLarge, UnreadableImage, UnsupportedFormat

#: Default ceiling on decoded pixels (width x height). A 50 MP limit admits every common camera
#: photo while rejecting decompression bombs before they are decoded. Configurable per call and
#: through the ``FASFINDER_MAX_PIXELS`` environment variable.
DEFAULT_MAX_PIXELS = 50_000_000
#: Largest file accepted at all (bytes).
DEFAULT_MAX_BYTES = 200 * 1024 * 1024

SUPPORTED_FORMATS = {"JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF", "PPM", "MPO"}

# Never decode half an image silently.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def max_pixels_setting() -> int:
    value = os.environ.get("FASFINDER_MAX_PIXELS")
    return int(value) if value and value.isdigit() else DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class LoadedImage:
    """An RGB image (H x W x 3, uint8) plus what we know of where it came from."""

    pixels: np.ndarray
    sha256: str
    source: str
    format: str

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def _read_bytes(source: str | os.PathLike | bytes, max_bytes: int) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        name = "<bytes>"
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise FileNotFound(f"{name}: no such file")
        if not path.is_file():
            raise UnreadableImage(f"{name}: not a regular file")
        size = path.stat().st_size
        if size > max_bytes:
            raise TooLarge(f"{name}: file is {size} bytes, over the {max_bytes}-byte limit")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UnreadableImage(f"{name}: cannot read ({exc.strerror or exc})") from exc
    if not data:
        raise EmptyFile(f"{name}: file is empty")
    return data, name


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=1))
        arr = ((arr - lo) / max(hi - lo, 1e-12) * 255.0).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB;16" or mode.startswith("BGR"):
        return img.convert("RGB")
    # L, 1, P, CMYK, YCbCr, LAB, HSV: Pillow converts them.
    return img.convert("RGB")


def _decode(data: bytes, name: str, max_pixels: int) -> tuple[np.ndarray, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            if fmt not in SUPPORTED_FORMATS:
                raise UnsupportedFormat(f"{name}: {fmt} images are not supported")
            width, height = img.size
            if width <= 0 or height <= 0:
                raise UnreadableImage(f"{name}: image has no pixels")
            if width * height > max_pixels:
                raise TooLarge(
                    f"{name}: {width}x{height} = {width * height / 1e6:.1f} MP exceeds the "
                    f"{max_pixels / 1e6:.0f} MP limit (setting FASFINDER_MAX_PIXELS)"
                )
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img)
            arr = np.array(rgb, dtype=np.uint8)
    except (UnsupportedFormat, TooLarge, UnreadableImage):
        raise
    except UnidentifiedImageError as exc:
        raise UnsupportedFormat(f"{name}: not an image file (or an unsupported format)") from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise TooLarge(f"{name}: rejected as a possible decompression bomb") from exc
    except MemoryError as exc:
        raise TooLarge(f"{name}: image too large to decode in memory") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError,
            struct.error, ZeroDivisionError, RuntimeError) as exc:
        raise UnreadableImage(f"{name}: damaged or truncated image ({type(exc).__name__}: {exc})") from exc
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise UnreadableImage(f"{name}: decoded to an unexpected shape {arr.shape}")
    return np.ascontiguousarray(arr), fmt


def load_image(
    source: str | os.PathLike | bytes,
    *,
    max_pixels: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LoadedImage:
    """Read, validate and decode ``source`` (a path or raw bytes) into RGB.

    Raises an :class:`~fasfinder.errors.ImageError` subclass on any bad input.
    """

    limit = max_pixels if max_pixels is not None else max_pixels_setting()
    data, name = _read_bytes(source, max_bytes)
    pixels, fmt = _decode(data, name, limit)
    return LoadedImage(pixels=pixels, sha256=hashlib.sha256(data).hexdigest(), source=name, format=fmt)


def from_array(pixels: np.ndarray, source: str = "<array>") -> LoadedImage:
    """Wrap an in-memory RGB array (e.g. from the UI or tests) as a :class:`LoadedImage`."""

    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise UnreadableImage(f"{source}: expected an H x W x 3 array, got {arr.shape}")
    arr = np.ascontiguousarray(arr[..., :3]).astype(np.uint8, copy=False)
    return LoadedImage(pixels=arr, sha256=hashlib.sha256(arr.tobytes()).hexdigest(), source=source, format="array")


def thumbnail(rgb: np.ndarray, side: int) -> np.ndarray:
    """``rgb`` scaled down (area interpolation) so its longer side is at most ``side`` pixels."""

    import cv2

    h, w = rgb.shape[:2]
    s = side / max(h, w)
    if s >= 1:
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
