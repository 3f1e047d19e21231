"""Typed errors with stable codes.

Every error raised on purpose by ``fasfinder`` is a :class:`FasFinderError` carrying a ``code``
(the machine-readable string of docs/BENCHMARKS.md section 1) and a human ``message``. The CLI turns
them into ``{"code": ..., "message": ...}`` objects, the UI into messages.
"""

from __future__ import annotations


class FasFinderError(Exception):
    """Base class: ``code`` is stable and documented, ``message`` is for people."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


class ImageError(FasFinderError):
    """The input could not be turned into an RGB image."""

    code = "unreadable_image"


class FileNotFound(ImageError):
    code = "not_found"


class EmptyFile(ImageError):
    code = "empty_file"


class UnreadableImage(ImageError):
    code = "unreadable_image"


class UnsupportedFormat(ImageError):
    code = "unsupported_format"


class TooLarge(ImageError):
    code = "too_large"


class NoFace(FasFinderError):
    code = "no_face"


class ModelError(FasFinderError):
    """A model file is missing or fails its integrity check."""

    code = "model_missing"


class ModelIntegrityError(ModelError):
    code = "model_integrity"


class UnknownEngine(FasFinderError):
    code = "unknown_engine"


class GalleryError(FasFinderError):
    code = "gallery_error"


class NotFoundInGallery(GalleryError):
    code = "not_in_gallery"


class Cancelled(FasFinderError):
    code = "cancelled"


class BadArgument(FasFinderError):
    code = "bad_argument"
