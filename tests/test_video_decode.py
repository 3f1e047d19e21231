"""Video decoding: the four containers, sampling by time (variable frame rate too), bad files as typed
errors, a 4K 60 fps file, timeout and cancel. Every video is made here with OpenCV (tests/video_files.py)."""

from __future__ import annotations

import os

import pytest

from fasfinder.errors import Cancelled, EmptyFile, FileNotFound, NoVideoStream, UnsupportedCodec, VideoError, VideoTimeout
from fasfinder.operations import CancelToken
from fasfinder.video.decode import VideoReader, is_video
from fasfinder.video.sniff import sniff
from tests.video_files import frame_number, make_vfr, write_numbered, write_wav


def read(path, rate=2.0, **kw):
    r = VideoReader(path, rate=rate, **kw)
    info = r.open()
    frames = list(r.frames())
    return info, frames, r.stats


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv", ".mov"])
def test_each_container_is_sampled_by_time(tmp_path, suffix):
    path = write_numbered(tmp_path / f"clip{suffix}", frames=20, fps=10.0)
    assert is_video(path)
    info, frames, stats = read(path, rate=2.0)
    assert (info.width, info.height, info.frames) == (320, 240, 20)
    assert info.fps == pytest.approx(10.0)
    assert [round(f.t_s, 2) for f in frames] == [0.0, 0.5, 1.0, 1.5]
    assert [frame_number(f.rgb) for f in frames] == [0, 5, 10, 15]  # the right frames, not just the right count
    assert stats.decoded_frames == 20 and not stats.truncated


def test_variable_frame_rate_is_sampled_by_presentation_time(tmp_path):
    src = write_numbered(tmp_path / "cfr.mp4", frames=20, fps=10.0)
    vfr = make_vfr(src, tmp_path / "vfr.mp4", slow_factor=3)  # frames 0-9 every 0.1 s, 10-19 every 0.3 s
    _, every, _ = read(vfr, rate=100.0)
    assert [round(f.t_s, 2) for f in every][8:13] == [0.8, 0.9, 1.0, 1.3, 1.6]
    _, frames, stats = read(vfr, rate=1.0)
    # by time: 0 s -> frame 0, 1 s -> frame 10, 2 s -> the first frame at or after it (2.2 s, frame 14), ...
    assert [(round(f.t_s, 1), frame_number(f.rgb)) for f in frames] == [(0.0, 0), (1.0, 10), (2.2, 14), (3.1, 17)]
    assert not stats.truncated


def test_truncated_files(tmp_path):
    avi = write_numbered(tmp_path / "full.avi", frames=20)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])
    _, frames, stats = read(cut, rate=10.0)  # an AVI keeps its frames up to the cut: a partial, flagged result
    assert 2 <= len(frames) < 20 and stats.truncated
    mp4 = write_numbered(tmp_path / "full.mp4", frames=20)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])  # the index (moov) is at the end: gone
    with pytest.raises(VideoError) as err:
        read(cut)
    assert err.value.code == "unreadable_video" and "truncated" in err.value.message


def test_bad_inputs_are_typed_errors(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(EmptyFile):
        read(empty)
    with pytest.raises(FileNotFound):
        read(tmp_path / "missing.mp4")
    audio = write_wav(tmp_path / "audio_only.mp4")  # a sound file under a video name
    with pytest.raises(NoVideoStream) as err:
        read(audio)
    assert err.value.code == "no_video_stream"
    noise = tmp_path / "noise.mkv"
    noise.write_bytes(os.urandom(4096))
    with pytest.raises(VideoError) as err:
        read(noise)
    assert err.value.code == "unreadable_video"
    with pytest.raises(VideoError):
        read(tmp_path)  # a folder


def test_unsupported_codec(tmp_path):
    avi = write_numbered(tmp_path / "clip.avi")
    data = avi.read_bytes().replace(b"MJPG", b"QQQQ").replace(b"mjpg", b"QQQQ")  # a codec tag FFmpeg does not know
    odd = tmp_path / "odd.avi"
    odd.write_bytes(data)
    assert sniff(odd).video_codecs == ["QQQQ"]
    with pytest.raises(UnsupportedCodec) as err:
        read(odd)
    assert err.value.code == "unsupported_codec" and "QQQQ" in err.value.message


def test_timeout_and_cancel(tmp_path):
    clip = write_numbered(tmp_path / "clip.mp4", frames=40)
    with pytest.raises(VideoTimeout):  # a decoder slower than the per-frame limit stops, it does not hang
        read(clip, frame_timeout_s=1e-6)
    token = CancelToken()
    seen = []

    def progress(done, total, message):
        seen.append((done, total))
        token.cancel()

    r = VideoReader(clip, rate=10.0)
    r.open()
    with pytest.raises(Cancelled):
        list(r.frames(progress=progress, cancel=token))
    assert seen == [(1, 41)]


@pytest.mark.slow
def test_4k_60fps(tmp_path):
    clip = write_numbered(tmp_path / "uhd.mp4", frames=60, fps=60.0, size=(3840, 2160))
    info, frames, _ = read(clip, rate=2.0, max_side=1280)
    assert (info.width, info.height) == (3840, 2160) and info.fps == pytest.approx(60.0)
    assert [round(f.t_s, 2) for f in frames] == [0.0, 0.5]
    assert frames[0].rgb.shape == (720, 1280, 3) and frames[0].scale == pytest.approx(1 / 3)
    assert [frame_number(f.rgb) for f in frames] == [0, 30 % 25]  # the level wraps every 25 frames
