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


class InternalError(FasFinderError):
    """An unexpected exception while processing one input (a bug or an untyped library failure).

    The service's per-input boundary turns it into that input's error, so one bad input never stops
    a batch; ``exception`` is the original exception's type name.
    """

    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, exception: str | None = None):
        super().__init__(message, code=code)  # ``code``: fasfinder.host rebuilds errors as cls(message, code=...)
        self.exception = exception

    @classmethod
    def wrap(cls, exc: BaseException, what: str = "") -> InternalError:
        text = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")
        return cls(f"{what + ': ' if what else ''}unexpected {detail}", exception=type(exc).__name__)

    def to_dict(self) -> dict:
        return dict(super().to_dict(), exception=self.exception)


class LivenessUnavailable(ModelError):
    """Refusing spoofs is on but the liveness model cannot run: fail closed, enroll nothing."""

    code = "liveness_unavailable"


#: Longest label accepted (characters).
MAX_LABEL_CHARS = 200
#: Bidirectional embedding/override/isolate controls: they make a label display as another text.
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def check_label(label: str) -> str:
    """``label`` if it is a plain-text person label, else :class:`BadArgument`.

    Refused: not a string, empty or blank, over :data:`MAX_LABEL_CHARS` characters, control
    characters (newlines, tabs, terminal escapes) and bidirectional overrides/isolates.
    """

    import unicodedata

    if not isinstance(label, str) or not label.strip():
        raise BadArgument("a label must be a non-empty text")
    if len(label) > MAX_LABEL_CHARS:
        raise BadArgument(f"label is {len(label)} characters long, over the limit of {MAX_LABEL_CHARS}")
    bad = sorted({f"U+{ord(ch):04X}" for ch in label if unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS})
    if bad:
        raise BadArgument(f"label holds control or text-direction characters ({', '.join(bad[:5])})")
    return label


class ServerError(FasFinderError):
    """The office server (PostgreSQL) refused or failed a request; the local replica is unchanged."""

    code = "server_error"


class ServerUnavailable(ServerError):
    """The server cannot be reached (down, network, wrong address): work goes on locally, sync later."""

    code = "server_unavailable"


class ServerForbidden(ServerError):
    """The server's roles or row-level security refused the action for this database user."""

    code = "server_forbidden"


class VideoError(FasFinderError):
    """A video file could not be decoded (truncated beyond its header, not a video, a broken container)."""

    code = "unreadable_video"


class NoVideoStream(VideoError):
    """The file is a media container without a video stream (an audio-only clip)."""

    code = "no_video_stream"


class UnsupportedCodec(VideoError):
    """The container names a video codec this build's FFmpeg cannot decode."""

    code = "unsupported_codec"


class VideoTimeout(VideoError):
    """Decoding took longer than the ``video_timeout_s`` setting (or one frame stalled): stopped, never hung."""

    code = "video_timeout"


def input_error(exc: Exception, what: str) -> dict:
    """The error dict of one input's failure at a per-input boundary: its own for a typed error; anything
    else becomes ``internal_error`` (logged, with its traceback at debug level)."""

    if isinstance(exc, FasFinderError):
        return exc.to_dict()
    import logging

    log = logging.getLogger("fasfinder")
    log.warning("%s: unexpected %s: %s (-v for the traceback)", what, type(exc).__name__, str(exc).strip()[:300])
    log.debug("traceback of the failed input %s", what, exc_info=exc)
    return InternalError.wrap(exc, what).to_dict()
