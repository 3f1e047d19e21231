"""Small test videos made at test time with OpenCV (never committed), and byte-level edits of them.

``write_numbered``: frames whose grey level encodes their number (frame i has level 10 * i mod 250 in
its top-left block), so a test can tell which frame a sample is. ``make_vfr``: an MP4 whose sample
table (``stts``) gives the second half of the frames three times the duration of the first half,
the timing of a variable-frame-rate phone clip.
"""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np

FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


def write_numbered(path: Path, frames: int = 20, fps: float = 10.0, size=(320, 240)) -> Path:
    import cv2

    w, h = size
    out = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*FOURCC[path.suffix]), fps, (w, h))
    assert out.isOpened(), f"OpenCV cannot write {path}"
    for i in range(frames):
        f = np.full((h, w, 3), 128, np.uint8)
        f[: h // 2, : w // 2] = (10 * i) % 250
        out.write(f)
    out.release()
    return path


def frame_number(rgb: np.ndarray) -> int:
    h, w = rgb.shape[:2]
    return int(round(float(rgb[h // 8: h // 4, w // 8: w // 4].mean()) / 10))


def write_wav(path: Path, seconds: float = 1.0) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * int(8000 * seconds))
    return path


def _boxes(data: bytes, start: int, end: int):
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        if size < 8:
            break
        yield i, size, kind
        i += size


def make_vfr(src: Path, dst: Path, slow_factor: int = 3) -> Path:
    """``dst``: ``src`` (an MP4 with ``moov`` after ``mdat``) with its stts rewritten to two speeds."""

    data = bytearray(src.read_bytes())
    top = {kind: (i, size) for i, size, kind in _boxes(data, 0, len(data))}
    assert top[b"mdat"][0] < top[b"moov"][0], "the rewrite keeps chunk offsets only when moov follows mdat"
    i, size = top[b"moov"]
    chain = [(i, size)]
    for name in (b"trak", b"mdia", b"minf", b"stbl", b"stts"):
        i, size = next((j, s) for j, s, k in _boxes(data, i + 8, i + size) if k == name)
        chain.append((i, size))
    si, ssize = chain[-1]
    count, delta = struct.unpack(">II", data[si + 16:si + 24])
    first = count // 2
    new = struct.pack(">4sII", b"stts", 0, 2) + struct.pack(">IIII", first, delta, count - first, delta * slow_factor)
    new = struct.pack(">I", len(new) + 4) + new
    grow = len(new) - ssize
    data[si:si + ssize] = new
    for bi, _ in chain[:-1]:  # every ancestor box grows by the same amount
        old = struct.unpack(">I", data[bi:bi + 4])[0]
        data[bi:bi + 4] = struct.pack(">I", old + grow)
    total = first * delta + (count - first) * delta * slow_factor  # in the media timescale
    moov_i, moov_size = chain[0]
    trak_i, trak_size = chain[1]
    mdia_i, mdia_size = chain[2]
    for j, _, k in _boxes(data, trak_i + 8, trak_i + trak_size):
        if k == b"edts":  # the edit list would cut the track at its old length: hidden as a free box
            data[j + 4:j + 8] = b"free"
    mdhd = next(j for j, s, k in _boxes(data, mdia_i + 8, mdia_i + mdia_size) if k == b"mdhd")
    media_scale = struct.unpack(">I", data[mdhd + 20:mdhd + 24])[0]
    data[mdhd + 24:mdhd + 28] = struct.pack(">I", total)
    mvhd = next(j for j, s, k in _boxes(data, moov_i + 8, moov_i + moov_size) if k == b"mvhd")
    movie_scale = struct.unpack(">I", data[mvhd + 20:mvhd + 24])[0]
    movie_total = total * movie_scale // media_scale
    data[mvhd + 24:mvhd + 28] = struct.pack(">I", movie_total)
    tkhd = next(j for j, s, k in _boxes(data, trak_i + 8, trak_i + trak_size) if k == b"tkhd")
    data[tkhd + 28:tkhd + 32] = struct.pack(">I", movie_total)
    dst.write_bytes(bytes(data))
    return dst


def lfw_clip(folder: Path, lfw: Path) -> tuple[Path, str, str, str]:
    """An 8 s 720p clip at 10 frames/s: scene 1 an enrolled person moving and growing; a cut; scene 2 that
    person (another photo) beside a stranger. Returns (video, the person, a photo of them the clip never
    shows, the stranger)."""

    from fasfinder.evaluation.video_synth import Appearance, write_video

    known, stranger = "Tony_Blair", "Colin_Powell"
    photos = {n: sorted(str(p) for p in (lfw / n).glob("*.jpg")) for n in (known, stranger)}
    scenes = [
        {"start_s": 0.0, "end_s": 4.0, "seed": 1, "appearances": [
            Appearance(known, True, photos[known][1], 0.0, 3.9, (60, 40, 300, 280), (300, 60, 600, 360))]},
        {"start_s": 4.0, "end_s": 8.0, "seed": 2, "appearances": [
            Appearance(known, True, photos[known][2], 4.0, 7.9, (40, 200, 320, 480), (80, 180, 360, 460)),
            Appearance(stranger, False, photos[stranger][1], 4.0, 7.9, (700, 150, 980, 430), (760, 160, 1040, 440))]},
    ]
    video = folder / "clip.mp4"
    write_video(video, scenes, fps=10.0, size=(1280, 720))
    return video, known, photos[known][0], stranger
