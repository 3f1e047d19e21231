"""Video files -> frames sampled at a chosen rate, through OpenCV's FFmpeg backend, with typed errors.

:class:`VideoReader` opens the file and decodes it in a reader thread; the caller's thread waits on
a small queue, so a stalled decode (``frame_timeout_s`` per frame) or a scan over its time budget
(``timeout_s``) raises :class:`~fasfinder.errors.VideoTimeout` instead of hanging, and ``cancel``
stops it between frames. Frames are sampled by their presentation time (``CAP_PROP_POS_MSEC``), so a
variable-frame-rate clip is sampled by time, not by frame count; a file that ends before the duration
its header gives (a truncated recording) gives the frames it has and says so in ``stats.truncated``.
Each sampled frame is RGB, downscaled to ``max_side`` on its long side (``Frame.scale``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EmptyFile, FileNotFound, NoVideoStream, TooLarge, UnsupportedCodec, VideoError, VideoTimeout
from ..operations import CancelToken, Progress
from .sniff import sniff

#: File suffixes handled as video by the front ends (the content decides what is decodable).
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".3gp", ".ts", ".mts"}
#: Largest frame accepted (pixels): 8K UHD.
MAX_FRAME_PIXELS = 7680 * 4320


def is_video(path) -> bool:
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


@dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float  # the container's nominal rate (0 when it gives none)
    frames: int  # the container's frame count (0 when unknown)
    codec: str
    size_bytes: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps if self.fps > 0 and self.frames > 0 else 0.0

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "fps": round(self.fps, 3), "frames": self.frames,
                "duration_s": round(self.duration_s, 3), "codec": self.codec, "size_bytes": self.size_bytes}


@dataclass
class Frame:
    sample: int  # 0, 1, 2, ... in sampling order
    t_s: float  # presentation time of the frame
    rgb: np.ndarray  # H x W x 3 uint8, downscaled by ``scale``
    scale: float  # working size / original size (<= 1)


@dataclass
class DecodeStats:
    decoded_frames: int = 0  # every frame the decoder produced
    sampled: int = 0
    last_t_s: float = 0.0
    truncated: bool = False  # ended well before the duration in the header
    decode_s: float = 0.0  # time spent in the decoder (reader thread)


def _fourcc(cap) -> str:
    import cv2

    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    return code.to_bytes(4, "little").decode("latin-1") if code > 0 else ""


def _open_error(path: Path, opened: bool) -> VideoError:
    """The typed reason why ``path`` gave no frame (``opened``: the container opened, no frame decoded)."""

    s = sniff(path)
    if s.audio_only:
        return NoVideoStream(f"{path}: a {s.container} file with {s.audio_streams} audio stream(s) and no video stream")
    codec = s.unknown_codec
    if codec is not None:
        return UnsupportedCodec(f"{path}: the video codec {codec!r} cannot be decoded by this build's FFmpeg")
    if s.container is None:
        return VideoError(f"{path}: not a video file this build can read (no known container header)")
    what = "no frame could be decoded" if opened else "its header or index could not be read"
    return VideoError(f"{path}: a damaged or truncated {s.container} file ({what})")


class VideoReader:
    """One video file: :attr:`info` after :meth:`open`, then :meth:`frames` once."""

    def __init__(self, path, *, rate: float = 2.0, max_side: int = 1280, frame_timeout_s: float = 30.0,
                 timeout_s: float | None = None):
        if not rate > 0:
            raise VideoError(f"the sampling rate must be > 0 frames/s, not {rate!r}", code="bad_argument")
        self.path = Path(path)
        self.rate = float(rate)
        self.max_side = int(max_side)
        self.frame_timeout_s = float(frame_timeout_s)
        self.timeout_s = timeout_s
        self.info: VideoInfo | None = None
        self.stats = DecodeStats()
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    # -- caller's side -------------------------------------------------------------------
    def open(self) -> VideoInfo:
        p = self.path
        if not p.exists():
            raise FileNotFound(f"{p}: no such file")
        if not p.is_file():
            raise VideoError(f"{p}: not a regular file")
        if p.stat().st_size == 0:
            raise EmptyFile(f"{p}: the file is empty (0 bytes)")
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"video-decode:{p.name}", daemon=True)
        self._thread.start()
        kind, payload = self._next()
        if kind == "error":
            self.close()
            raise payload
        self.info = payload
        return payload

    def _next(self):
        deadline = None if self.timeout_s is None else self._t0 + self.timeout_s
        wait = self.frame_timeout_s
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - time.monotonic()))
        try:
            return self._queue.get(timeout=wait)
        except queue.Empty:
            self.close(join=False)  # the stalled reader thread is left behind (a daemon), never waited for
            limit = "its time budget" if deadline is not None and time.monotonic() >= deadline else \
                f"{self.frame_timeout_s:g} s for one frame"
            raise VideoTimeout(f"{self.path}: decoding stopped after {limit}") from None

    def frames(self, progress: Progress | None = None, cancel: CancelToken | None = None) -> Iterator[Frame]:
        """The sampled frames in time order; raises a typed error, never hangs."""

        if self.info is None:
            self.open()
        expected = max(1, int(self.info.duration_s * self.rate) + 1) if self.info.duration_s else 0
        try:
            while True:
                if cancel is not None:
                    cancel.check()
                kind, payload = self._next()
                if kind == "error":
                    raise payload
                if kind == "end":
                    return
                if progress is not None:
                    total = max(expected, payload.sample + 1)
                    progress(payload.sample + 1, total, f"{self.path.name} {payload.t_s:.1f} s")
                yield payload
        finally:
            self.close()

    def close(self, join: bool = True) -> None:
        """Stop the reader; ``join``: wait (briefly) until it has released the decoder."""

        self._stop.set()
        while True:  # unblock a reader waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if join and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    # -- reader thread -------------------------------------------------------------------
    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        import cv2

        cap = None
        try:
            ms = int(self.frame_timeout_s * 1000)
            cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
            if not cap.isOpened():
                raise _open_error(self.path, opened=False)
            w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            if w <= 0 or h <= 0:
                raise _open_error(self.path, opened=True)
            if w * h > MAX_FRAME_PIXELS:
                raise TooLarge(f"{self.path}: frames of {w}x{h} px are over the {MAX_FRAME_PIXELS:,} px limit")
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            fps = fps if 0 < fps < 1000 else 0.0
            frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            info = VideoInfo(path=str(self.path), width=w, height=h, fps=fps, frames=max(0, frames),
                             codec=_fourcc(cap), size_bytes=self.path.stat().st_size)
            if not self._put(("info", info)):
                return
            self._decode(cap, info)
        except VideoError as exc:
            self._put(("error", exc))
        except Exception as exc:  # an untyped OpenCV failure is this file's error, never the caller's crash
            self._put(("error", VideoError(f"{self.path}: decoding failed ({type(exc).__name__}: {exc})")))
        finally:
            if cap is not None:
                cap.release()

    def _decode(self, cap, info: VideoInfo) -> None:
        import cv2

        step = 1.0 / self.rate
        next_t, prev_t, sample = 0.0, -1.0, 0
        scale = min(1.0, self.max_side / max(info.width, info.height))
        stats = self.stats
        while not self._stop.is_set():
            t0 = time.perf_counter()
            ok = cap.grab()
            if not ok:
                stats.decode_s += time.perf_counter() - t0
                break
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if stats.decoded_frames > 0 and t <= prev_t:  # no usable timestamps: count frames at the nominal rate
                t = prev_t + (1.0 / info.fps if info.fps else step)
            stats.decoded_frames += 1
            prev_t = stats.last_t_s = t
            if t + 1e-6 < next_t:
                stats.decode_s += time.perf_counter() - t0
                continue
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                stats.decode_s += time.perf_counter() - t0
                continue
            if scale < 1.0:
                bgr = cv2.resize(bgr, (max(1, round(info.width * scale)), max(1, round(info.height * scale))),
                                 interpolation=cv2.INTER_AREA)
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            stats.decode_s += time.perf_counter() - t0
            if not self._put(("frame", Frame(sample=sample, t_s=t, rgb=rgb, scale=scale))):
                return
            sample += 1
            stats.sampled = sample
            while next_t <= t + 1e-6:
                next_t += step
        if stats.decoded_frames == 0:
            raise _open_error(self.path, opened=True)
        dur = info.duration_s
        frame_s = 1.0 / info.fps if info.fps else step
        stats.truncated = bool(dur and stats.last_t_s + 2 * frame_s < dur * 0.98)
        self._put(("end", None))
