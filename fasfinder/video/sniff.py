"""What a media file's container says about its streams, read from its first and last bytes (no decoding).

OpenCV only says "could not open"; this tells the reasons apart for the typed errors of
:mod:`fasfinder.video.decode`: an audio-only file (WAV, MP3, FLAC, an MP4/MKV/AVI whose only tracks
are sound), a video codec the container names, or nothing recognisable. It is a heuristic over the
container headers (MP4/MOV ``hdlr``/``stsd`` boxes, AVI ``strh``/``strf`` chunks, Matroska codec ids),
used only to word an error after a decode already failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: Bytes read from each end of the file (an MP4 writer may put its ``moov`` box at the end).
SNIFF_BYTES = 1 << 20

#: Codec tags of video streams this build's FFmpeg decodes (a failure with one of them is damage, not the codec).
KNOWN_VIDEO_CODECS = {
    "avc1", "avc3", "h264", "H264", "x264", "hvc1", "hev1", "HEVC", "mp4v", "FMP4", "XVID", "DIVX", "DX50", "MP4V",
    "MJPG", "mjpa", "mjpb", "jpeg", "VP80", "VP90", "vp08", "vp09", "av01", "AV01", "mpg1", "mpg2", "MPG2", "MPEG",
    "I420", "YV12", "IYUV", "\x00\x00\x00\x00", "raw ", "s263", "H263", "WMV2", "WMV3", "apcn", "apch", "apcs", "ap4h",
    "V_MPEG4/ISO/AVC", "V_MPEGH/ISO/HEVC", "V_MPEG4/ISO/ASP", "V_VP8", "V_VP9", "V_AV1", "V_MJPEG", "V_MS/VFW/FOURCC",
}
_AUDIO_MP4 = {"mp4a", "alac", "Opus", "ac-3", "ec-3", ".mp3", "lpcm", "sowt", "twos", "fLaC", "samr", "ulaw", "alaw"}


@dataclass
class Sniff:
    container: str | None = None  # "mp4", "avi", "matroska", "wav", "mp3", "flac", "ogg" or None
    video_codecs: list[str] = field(default_factory=list)
    audio_streams: int = 0

    @property
    def audio_only(self) -> bool:
        return self.container is not None and not self.video_codecs and self.audio_streams > 0

    @property
    def unknown_codec(self) -> str | None:
        """The first named video codec this build is not known to decode, or None."""

        return next((c for c in self.video_codecs if c not in KNOWN_VIDEO_CODECS), None)


def _tag(raw: bytes) -> str:
    return raw.decode("latin-1")


def _mp4(data: bytes, out: Sniff) -> None:
    for m in re.finditer(rb"hdlr", data):
        handler = data[m.start() + 12:m.start() + 16]
        if handler == b"soun":
            out.audio_streams += 1
    for m in re.finditer(rb"stsd", data):
        fmt = _tag(data[m.start() + 16:m.start() + 20])
        if len(fmt) == 4 and fmt not in _AUDIO_MP4 and fmt.strip("\x00"):
            out.video_codecs.append(fmt)


def _avi(data: bytes, out: Sniff) -> None:
    for m in re.finditer(rb"strh", data):
        kind = data[m.start() + 8:m.start() + 12]
        if kind == b"vids":
            out.video_codecs.append(_tag(data[m.start() + 12:m.start() + 16]))
        elif kind == b"auds":
            out.audio_streams += 1


def _matroska(data: bytes, out: Sniff) -> None:
    for m in re.finditer(rb"\x86[\x81-\xbf]([VA]_[A-Za-z0-9/_.]{1,60})", data):
        codec = _tag(m.group(1))
        if codec.startswith("V_"):
            out.video_codecs.append(codec)
        else:
            out.audio_streams += 1


def sniff(path: str | Path) -> Sniff:
    """The container kind and its named streams; an empty :class:`Sniff` when nothing is recognised."""

    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            head = f.read(SNIFF_BYTES)
            tail = b""
            if size > SNIFF_BYTES:
                f.seek(max(SNIFF_BYTES, size - SNIFF_BYTES))
                tail = f.read(SNIFF_BYTES)
    except OSError:
        return Sniff()
    out = Sniff()
    data = head + tail
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        out.container, out.audio_streams = "wav", 1
    elif head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        out.container = "avi"
        _avi(head, out)
    elif head[:4] == b"\x1a\x45\xdf\xa3":
        out.container = "matroska"
        _matroska(data, out)
    elif head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        out.container = "mp4"
        _mp4(data, out)
    elif head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        out.container, out.audio_streams = "mp3", 1
    elif head[:4] == b"fLaC":
        out.container, out.audio_streams = "flac", 1
    elif head[:4] == b"OggS":
        out.container = "ogg"
        if b"theora" in head:
            out.video_codecs.append("theora")
        elif b"vorbis" in head or b"OpusHead" in head:
            out.audio_streams = 1
    return out
