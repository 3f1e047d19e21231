"""One pass over a video: sampled frames -> faces (the per-image pipeline) -> tracks.

The per-image pipeline comes in through :class:`FrameModels`, two functions (``detect(rgb) ->
[Face]`` and ``embed(rgb, faces) -> unit vectors``), so this module depends on no service internals;
quality is :func:`fasfinder.quality.face_quality`. The result, :class:`VideoScan`, is what video
search, enrollment from video and footage search all work on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..faces import Face
from ..operations import CancelToken, Progress
from ..quality import face_quality
from .decode import DecodeStats, VideoInfo, VideoReader
from .tracks import Detection, Track, Tracker, grey_thumb, is_cut, scale_face


@dataclass
class FrameModels:
    detect: Callable[[np.ndarray], list[Face]]
    embed: Callable[[np.ndarray, list[Face]], np.ndarray]


@dataclass
class VideoScan:
    path: str
    info: VideoInfo
    rate: float
    tracks: list[Track]
    sample_times: list[float]  # the time of every sampled frame
    stats: DecodeStats
    timings_s: dict = field(default_factory=dict)  # decode, detect, embed, quality, track (seconds, whole file)

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.stats.truncated:
            out.append(f"truncated: the file ends at {self.stats.last_t_s:.1f} s of the {self.info.duration_s:.1f} s "
                       "its header gives; the frames before were searched")
        return out


def scan_video(path, models: FrameModels, *, rate: float = 2.0, max_side: int = 1280, frame_timeout_s: float = 30.0,
               timeout_s: float | None = None, tracker: Tracker | None = None, progress: Progress | None = None,
               cancel: CancelToken | None = None) -> VideoScan:
    """Sample ``path`` at ``rate`` frames/s, detect and embed every face, link the faces into tracks."""

    reader = VideoReader(path, rate=rate, max_side=max_side, frame_timeout_s=frame_timeout_s, timeout_s=timeout_s)
    info = reader.open()
    tracker = tracker or Tracker(max_gap_s=max(2.0, 2.5 / rate))
    times: list[float] = []
    tm = {"detect": 0.0, "embed": 0.0, "quality": 0.0, "track": 0.0}
    wall = time.perf_counter()
    prev = None
    for frame in reader.frames(progress=progress, cancel=cancel):
        times.append(frame.t_s)
        t0 = time.perf_counter()
        faces = models.detect(frame.rgb)
        tm["detect"] += time.perf_counter() - t0
        detections = []
        if faces:
            t0 = time.perf_counter()
            emb = np.asarray(models.embed(frame.rgb, faces), dtype=np.float32)
            tm["embed"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            for f, e in zip(faces, emb):
                box = scale_face(f, 1.0 / frame.scale).box
                detections.append(Detection(face=f, box=box, embedding=e, quality=face_quality(frame.rgb, f)))
            tm["quality"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        thumb = grey_thumb(frame.rgb)
        tracker.update(frame.t_s, frame.sample, frame.rgb, detections, cut=is_cut(prev, thumb))
        prev = thumb
        tm["track"] += time.perf_counter() - t0
    tm["decode"] = reader.stats.decode_s
    tm["total"] = time.perf_counter() - wall
    return VideoScan(path=str(path), info=info, rate=rate, tracks=tracker.tracks, sample_times=times,
                     stats=reader.stats, timings_s=tm)
