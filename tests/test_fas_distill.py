"""The liveness student's trainer (fasfinder.training.fas_distill): online teacher views, augmentation, resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from .conftest import shared_data, shared_models


def test_augment_keeps_shape_and_range_and_is_seeded():
    import torch

    from fasfinder.training.fas_distill import augment

    x = torch.rand(16, 3, 80, 80) * 255
    torch.manual_seed(0)  # the noise comes from torch's generator, everything else from rng
    a = augment(x, np.random.default_rng(3))
    torch.manual_seed(0)
    b = augment(x, np.random.default_rng(3))
    assert a.shape == x.shape and float(a.min()) >= 0.0 and float(a.max()) <= 255.0
    assert torch.equal(a, b)
    assert not torch.allclose(a, augment(x, np.random.default_rng(4)))


def test_photometry_flattens_darkens_and_tints_only_the_chosen_share():
    import torch

    from fasfinder.training.fas_distill import photometric

    x = torch.rand(64, 3, 80, 80) * 255
    assert torch.equal(photometric(x, np.random.default_rng(0), 0.0), x)
    y = photometric(x, np.random.default_rng(0), 1.0)
    assert y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 255.0
    assert torch.equal(y, photometric(x, np.random.default_rng(0), 1.0))
    # contrast x0.5-1.0 and exposure x0.55-1.2 (saturation and cast add a little): never a wider spread
    spread = lambda t: t.std(dim=(1, 2, 3))  # noqa: E731
    assert bool(torch.all(spread(y) <= 1.35 * spread(x)))
    assert float(spread(y).mean()) < 0.95 * float(spread(x).mean())
    half = photometric(x, np.random.default_rng(1), 0.5)
    changed = (half != x).flatten(1).any(1)
    assert 16 <= int(changed.sum()) <= 48  # about half of the crops, the others untouched


def test_ordinary_photo_degradation_keeps_the_face_under_its_box():
    """photo(): the face shrunk to face_px (or scaled back up), the box carried into the new pixels."""

    from fasfinder.training.fas_distill_data import photo, photo_params

    rng = np.random.default_rng(0)
    img = np.full((400, 300, 3), 40, np.uint8)
    img[100:260, 80:240] = 220  # a bright square "face" under the box
    box = (80, 100, 240, 260)
    for up in (False, True):
        params = {**photo_params(rng), "face_px": 50.0, "up": up, "grey": False, "sharpen": 0.0, "jpeg": 80}
        out, b = photo(img, box, params)
        assert out.dtype == np.uint8 and out.shape[2] == 3
        assert out.shape[:2] == ((400, 300) if up else (125, 94))
        assert b[2] - b[0] == pytest.approx(160 if up else 50, rel=0.03)
        x0, y0, x1, y1 = (int(round(v)) for v in b)
        inside, outside = out[y0 + 3: y1 - 3, x0 + 3: x1 - 3].mean(), out[: max(y0 - 3, 1)].mean()
        assert inside > 180 and outside < 80
    grey, _ = photo(img, box, {**params, "grey": True})
    assert np.array_equal(grey[..., 0], grey[..., 1])
    assert photo_params(np.random.default_rng(5)) == photo_params(np.random.default_rng(5))


def test_web_photo_frame_puts_the_face_box_at_its_new_place():
    """frame(): a square side x side image, the face box scaled to side / window and carried along."""

    from fasfinder.training.fas_distill_data import frame, frame_params

    img = np.full((400, 300, 3), 40, np.uint8)
    img[100:260, 80:240] = 220
    box = (80, 100, 240, 260)
    base = {**frame_params(np.random.default_rng(0)), "window": 2.5, "side": 250, "angle": 0.0, "shift": (0.0, 0.0),
            "jpeg": 90}
    for fill in ("black", "replicate"):
        out, b = frame(img, box, {**base, "fill": fill})
        assert out.shape == (250, 250, 3) and out.dtype == np.uint8
        assert b[2] - b[0] == pytest.approx(100, rel=0.01) and (b[0] + b[2]) / 2 == pytest.approx(125, abs=1)
        x0, y0, x1, y1 = (int(round(v)) for v in b)
        assert out[y0 + 3: y1 - 3, x0 + 3: x1 - 3].mean() > 200  # the face is under its box
        corner = out[:8, :8].mean()  # the window leaves the image there: filled black or replicated
        assert (corner < 10) if fill == "black" else (30 < corner < 50)
    turned, tb = frame(img, box, {**base, "fill": "black", "angle": 8.0})
    assert tb[2] - tb[0] == pytest.approx(100, rel=0.01) and not np.array_equal(turned, out)
    assert frame_params(np.random.default_rng(5)) == frame_params(np.random.default_rng(5))


@pytest.fixture()
def mini_nuaa(tmp_path):
    """Four live and four print images of the NUAA training lists, in the shared layout."""

    src = shared_data("nuaa") / "db"
    db = tmp_path / "nuaa" / "db"
    for name, folder in (("subset_client_train_raw.txt", "ClientRaw"), ("subset_imposter_train_raw.txt", "ImposterRaw")):
        lines = [ln for ln in (src / name).read_text().splitlines() if ln.strip()][::75][:4]
        for ln in lines:
            (db / folder / ln).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / folder / ln, db / folder / ln)
        (db / name).write_text("\n".join(lines) + "\n")
    for name in ("subset_client_test_raw.txt", "subset_imposter_test_raw.txt"):
        (db / name).write_text("")
    return tmp_path / "nuaa"


def test_views_are_jittered_crops_of_the_training_images(mini_nuaa, tmp_path):
    from fasfinder.training.fas_distill import NuaaViews

    views = NuaaViews(mini_nuaa, tmp_path / "cache")
    assert len(views) == 8 and sorted(views.labels.tolist()) == [0] * 4 + [1] * 4
    a = views.crops([0, 5], np.random.default_rng(0))
    b = views.crops([0, 5], np.random.default_rng(1))
    assert a.shape == (2, 2, 80, 80, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)  # another box jitter, another view


def test_train_writes_a_loadable_student_and_resumes(mini_nuaa, tmp_path):
    shared_models("minifasnet")
    import io

    import torch

    from fasfinder.liveness.student import StudentPair
    from fasfinder.modelfiles import file_entry
    from fasfinder.training.fas_distill import train

    rng = np.random.default_rng(0)
    n = 24
    data = tmp_path / "samples.npz"
    np.savez(data, crops=rng.integers(0, 255, (n, 2, 80, 80, 3), dtype=np.uint8), label=np.arange(n) % 2,
             source=np.array(["celeba", "celeba-print", "nuaa-bg"] * 8), split=np.array(["train"] * n),
             teacher=rng.dirichlet([1, 1, 1], (n, 2)).astype(np.float32), group=np.array(["g"] * n))
    widths = (8, 8, 16, 16)
    result = train(data, tmp_path / "run", steps=3, batch=8, widths=widths, threads=1, nuaa_dir=mini_nuaa, checkpoint=2,
                   nuaa_cache=tmp_path / "cache")
    assert result["steps"] == 3 and result["n_nuaa"] == 8 and len(result["loss"]) == 1
    assert np.isfinite(result["loss"][0][1])
    weights = tmp_path / "run" / "student.pt"
    card = {"name": "t", "threshold": 0.5, "band": [0.2, 0.6],
            "architecture": {"type": "StudentPair", "scales": [2.7, 4.0], "widths": list(widths)},
            "files": [file_entry("weights", weights)]}
    model = StudentPair(card, weights_path=weights)
    scores = model.scores_from_crops(rng.integers(0, 255, (3, 2, 80, 80, 3), dtype=np.uint8))
    assert scores.shape == (3,) and np.all((0 <= scores) & (scores <= 1))
    first = weights.read_bytes()
    again = train(data, tmp_path / "run", steps=3, batch=8, widths=widths, threads=1, nuaa_dir=mini_nuaa, checkpoint=2,
                   nuaa_cache=tmp_path / "cache")
    assert again["loss"] == result["loss"]  # resumed from the final checkpoint: no step was run again
    a, b = torch.load(io.BytesIO(first), weights_only=True), torch.load(weights, weights_only=True)
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "run" / "result.json").read_text())["widths"] == list(widths)


def test_train_and_card_leave_excluded_sources_out(mini_nuaa, tmp_path):
    """--photometry / --exclude-source of the trainer, and the card's calibration without the same sources."""

    shared_models("minifasnet")
    from fasfinder.liveness.student import StudentPair
    from fasfinder.training import fas_student_card
    from fasfinder.training.fas_distill import train

    rng = np.random.default_rng(1)
    source = np.array(["celeba", "celeba-print", "celeba-frame"] * 10 + ["nuaa"] * 6)
    label = np.isin(source, ["celeba", "celeba-frame"]).astype(np.int64)
    split = np.array(["train"] * 18 + ["calib"] * 12 + ["train"] * 6)
    n = len(source)
    data = tmp_path / "samples.npz"
    np.savez(data, crops=rng.integers(0, 255, (n, 2, 80, 80, 3), dtype=np.uint8), label=label, source=source,
             split=split, teacher=rng.dirichlet([1, 1, 1], (n, 2)).astype(np.float32), group=np.array(["g"] * n))
    result = train(data, tmp_path / "run", steps=2, batch=8, widths=(8, 8, 16, 16), threads=1, nuaa_dir=mini_nuaa,
                   checkpoint=2, nuaa_cache=tmp_path / "cache", photometry=0.5, exclude_sources=("celeba-frame",))
    assert result["n_train"] == 12 and sorted(result["sources"]) == ["celeba", "celeba-print", "nuaa (online)"]
    assert result["photometry"] == 0.5 and result["exclude_sources"] == ["celeba-frame"]
    assert np.isfinite(result["loss"][0][1])
    out = tmp_path / "models"
    assert fas_student_card.main(["--run", str(tmp_path / "run"), "--data", str(data), "--name", "t5", "--out", str(out),
                                  "--exclude-source", "celeba-frame"]) == 0
    card = json.loads((out / "t5.card.json").read_text())
    assert card["calibration"]["genuine"]["n"] == 4 and card["calibration"]["genuine"]["sources"] == {"celeba": 4}
    assert card["calibration"]["nuaa_training_prints"]["n"] == 6 and "--exclude-source celeba-frame" in card["command"]
    lo, hi = card["band"]
    assert 0.0 <= lo <= hi <= 1.0 + 1e-6 and card["threshold"] == pytest.approx((lo + hi) / 2)
    model = StudentPair(card, weights_path=out / "t5.pt")
    assert model.band == (lo, hi)
