"""Video search end to end on a clip made here from LFW photos (evaluation data only): tracks, the
open-set decision per track, enrollment from a track, a person found in footage, the CLI's JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fasfinder.evaluation.video_synth import load_truth, score_tracks
from fasfinder.service import FasFinder
from fasfinder.settings import Settings

from .conftest import REPO, shared_data
from .video_files import lfw_clip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clip")
    video, known, photo, _ = lfw_clip(tmp, shared_data("lfw/images_deepfunneled"))
    db = tmp / "g.db"
    ff = FasFinder(db, settings=Settings(gallery=str(db)))
    assert ff.enroll([photo], label=known)[0].error is None  # a photo the clip never shows
    yield ff, video, known
    ff.close()


def test_tracks_are_searched_once_each(clip):
    ff, video, known = clip
    res = ff.search_video(video, rate=2.0)
    assert res.error is None and res.sampled == 16
    d = res.to_dict()
    score = score_tracks(d["tracks"], load_truth(str(video) + ".truth.json"))
    assert score["tracks_on_nothing"] == 0 and score["appearances_with_a_track"] == 1.0
    assert score["track_accuracy"] >= 2 / 3
    blair = [t for t in d["tracks"] if t["decision"]["in_gallery"]]
    assert blair and all(t["matches"][0]["label"] == known for t in blair)
    for t in d["tracks"]:
        assert {"track", "start_s", "end_s", "best_s", "box", "faces", "liveness", "matches", "decision"} <= set(t)
        assert t["start_s"] <= t["best_s"] <= t["end_s"]
    assert all(tr.thumbnails and tr.thumbnails[0].ndim == 3 for tr in res.tracks)


def test_enroll_a_track_then_find_the_person(clip):
    ff, video, known = clip
    res = ff.search_video(video, rate=2.0)
    stranger = next(t for t in res.tracks if not t.decision.in_gallery and t.start_s >= 4.0)
    before = ff.counts()["faces"]
    added = ff.enroll_video(video, stranger.track, label="stranger from the clip")
    assert added and all(r.error is None for r in added)
    assert ff.counts()["faces"] == before + len(added)
    again = ff.search_video(video, rate=2.0)  # the enrolled track now names its new person
    same = next(t for t in again.tracks if t.track == stranger.track)
    assert same.decision.in_gallery and same.persons[0].label == "stranger from the clip"
    pid = next(p.person_id for p in ff.persons() if p.label == known)
    found = ff.find_in_footage([video], person_id=pid, rate=2.0)[0]
    assert found.error is None and found.spans
    assert found.spans[0].start_s <= 0.5 and found.spans[-1].end_s >= 7.0  # on screen from start to end
    assert len(found.series) == 16 and all(s is None or -1 <= s <= 1 for _, s in found.series)


def test_cli_search_video_json(clip, tmp_path):
    ff, video, _ = clip
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\0" * 100)
    out = subprocess.run([sys.executable, "main.py", "search", str(video), str(bad), "--db", str(ff.gallery_path),
                          "--json"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]["error"] is None and lines[0]["tracks"]
    assert lines[1]["error"]["code"] == "unreadable_video" and lines[1]["tracks"] == []
