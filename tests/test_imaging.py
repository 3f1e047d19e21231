"""The bad-input corpus of the core issue: every case gives the right result or its error code."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fasfinder.errors import EmptyFile, FileNotFound, TooLarge, UnreadableImage, UnsupportedFormat
from fasfinder.imaging import load_image

from .conftest import REPO


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, astronaut):
    """Generate every bad (and awkward but valid) input once."""

    d = tmp_path_factory.mktemp("corpus")
    files = {}
    jpeg = io.BytesIO()
    Image.fromarray(astronaut).save(jpeg, "JPEG", quality=90)
    jpg_bytes = jpeg.getvalue()
    (d / "good.jpg").write_bytes(jpg_bytes)
    files["good"] = d / "good.jpg"
    (d / "truncated.jpg").write_bytes(jpg_bytes[: len(jpg_bytes) // 3])
    files["truncated"] = d / "truncated.jpg"
    (d / "empty.jpg").write_bytes(b"")
    files["empty"] = d / "empty.jpg"
    (d / "text.jpg").write_text("this is not an image, just text named .jpg\n")
    files["text"] = d / "text.jpg"
    grey16 = (np.asarray(Image.fromarray(astronaut).convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(grey16).save(d / "sixteen.png")
    files["sixteen"] = d / "sixteen.png"
    Image.fromarray(astronaut).convert("CMYK").save(d / "cmyk.jpg", "JPEG")
    files["cmyk"] = d / "cmyk.jpg"
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:40, :40, 3] = 0
    Image.fromarray(rgba, "RGBA").save(d / "rgba.png")
    files["rgba"] = d / "rgba.png"
    Image.fromarray(astronaut).convert("L").save(d / "grey.png")
    files["grey"] = d / "grey.png"
    Image.fromarray(astronaut).convert("P").save(d / "palette.png")
    files["palette"] = d / "palette.png"
    # EXIF orientation 6 = "rotate 90 CW to display": store the pixels rotated the other way.
    rotated = Image.fromarray(np.rot90(astronaut, 1))
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(d / "exif_rotated.jpg", "JPEG", exif=exif.tobytes(), quality=92)
    files["exif"] = d / "exif_rotated.jpg"
    Image.new("L", (7746, 7746)).save(d / "sixty_mp.png")
    files["huge"] = d / "sixty_mp.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((256, 256, 3)) * 255).astype(np.uint8)).save(d / "noface.png")
    files["noface"] = d / "noface.png"
    face = astronaut[40:240, 120:320]
    Image.fromarray(np.hstack([face, face[:, ::-1], face])).save(d / "three_faces.png")
    files["several"] = d / "three_faces.png"
    uni = d / "dossier_ĳ_Łódź_顔" / "ünïcödé 写真.jpg"
    uni.parent.mkdir()
    uni.write_bytes(jpg_bytes)
    files["unicode"] = uni
    (d / "folder.jpg").mkdir()
    files["directory"] = d / "folder.jpg"
    return files


@pytest.mark.parametrize(
    "key, error",
    [("truncated", UnreadableImage), ("empty", EmptyFile), ("text", UnsupportedFormat), ("huge", TooLarge),
     ("directory", UnreadableImage)],
)
def test_bad_files_raise_typed_errors(corpus, key, error):
    with pytest.raises(error) as info:
        load_image(corpus[key])
    assert info.value.code == error.code and str(corpus[key].name) in info.value.message


def test_missing_file():
    with pytest.raises(FileNotFound):
        load_image("/nonexistent/nothing.jpg")


@pytest.mark.parametrize("key", ["good", "sixteen", "cmyk", "rgba", "grey", "palette", "unicode", "several"])
def test_awkward_but_valid_inputs_decode_to_rgb(corpus, key):
    img = load_image(corpus[key])
    assert img.pixels.dtype == np.uint8 and img.pixels.ndim == 3 and img.pixels.shape[2] == 3
    assert len(img.sha256) == 64


def test_sixteen_bit_keeps_its_tones(corpus, astronaut):
    img = load_image(corpus["sixteen"]).pixels
    grey = np.asarray(Image.fromarray(astronaut).convert("L"), dtype=np.int32)
    assert np.abs(img[..., 0].astype(np.int32) - grey).max() <= 1


def test_rgba_transparent_becomes_white(corpus):
    img = load_image(corpus["rgba"]).pixels
    assert (img[:40, :40] == 255).all()


def test_exif_orientation_applied(corpus, astronaut):
    img = load_image(corpus["exif"]).pixels
    assert img.shape == astronaut.shape
    assert np.abs(img.astype(int) - astronaut.astype(int)).mean() < 8


def test_max_pixels_is_configurable(corpus):
    with pytest.raises(TooLarge):
        load_image(corpus["good"], max_pixels=1000)


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, corpus):
    from fasfinder.service import FasFinder
    from fasfinder.settings import Settings

    db = tmp_path_factory.mktemp("g") / "gallery.db"
    ff = FasFinder(db, settings=Settings(gallery=str(db), liveness=False))
    res = ff.enroll([corpus["good"]], label="eileen")[0]
    assert res.error is None and res.record_id
    yield ff
    ff.close()


EXPECTED_SEARCH = {
    "truncated": "unreadable_image", "empty": "empty_file", "text": "unsupported_format", "huge": "too_large",
    "noface": "no_face", "directory": "unreadable_image",
}


@pytest.mark.parametrize("key, code", sorted(EXPECTED_SEARCH.items()))
def test_failed_enroll_leaves_gallery_unchanged(enrolled, corpus, key, code):
    before = enrolled.gallery.counts()
    res = enrolled.enroll_one(corpus[key], label="bad")
    assert res.record_id is None and res.error["code"] == code
    assert enrolled.gallery.counts() == before
    q = enrolled.search(corpus[key])
    assert q.error["code"] == code and q.faces == []


@pytest.mark.parametrize("key", ["good", "sixteen", "cmyk", "rgba", "grey", "exif", "unicode"])
def test_valid_variants_find_the_enrolled_person(enrolled, corpus, key):
    q = enrolled.search(corpus[key])
    assert q.error is None, q.error
    top = max(q.faces, key=lambda f: f.matches[0].similarity)
    assert top.matches[0].label == "eileen"
    assert top.matches[0].similarity > 0.9


def test_several_faces_all_found(enrolled, corpus):
    q = enrolled.search(corpus["several"])
    assert q.error is None and len(q.faces) >= 3
    assert all(f.matches and f.matches[0].label == "eileen" for f in q.faces[:3])


@pytest.mark.slow
def test_cli_bad_inputs_give_json_errors_and_no_traceback(tmp_path, corpus):
    db = tmp_path / "cli.db"
    args = [str(corpus[k]) for k in ("truncated", "empty", "text", "noface", "unicode")]
    proc = subprocess.run([sys.executable, "main.py", "search", *args, "--db", str(db), "--json", "--no-liveness"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [ln["query"] for ln in lines] == args
    codes = [ln["error"]["code"] if ln["error"] else None for ln in lines]
    assert codes == ["unreadable_image", "empty_file", "unsupported_format", "no_face", None]
    assert lines[-1]["faces"] and lines[-1]["faces"][0]["matches"] == []  # empty gallery: no matches
