"""Protocol 4 (robustness, ablation): conditions, ablation modes, chip-level embedding, a toy end-to-end run.

No shared data needed: the end-to-end run builds a 2-identity CelebA-like folder and a 10-fold
LFW-like folder from skimage's astronaut, and tiny randomly initialised heatmap models.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from fasfinder.evaluation import ablation, chip_models, closed_set, open_set
from fasfinder.evaluation import robustness_conditions as conditions
from fasfinder.evaluation import robustness_stats as stats

from .conftest import REPO


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _restore_engine_registry():
    """Toy models dirs must not leak into the process-wide engine registry (other tests' engines)."""

    from fasfinder import engines

    saved = (dict(engines._FACTORIES), dict(engines._DESCRIPTIONS), dict(engines._INSTANCES), engines._registered)
    yield
    engines._FACTORIES.clear(), engines._FACTORIES.update(saved[0])
    engines._DESCRIPTIONS.clear(), engines._DESCRIPTIONS.update(saved[1])
    engines._INSTANCES.clear(), engines._INSTANCES.update(saved[2])
    engines._registered = saved[3]


def _chips(n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 150, 150, 3), dtype=np.uint8)


# -- conditions ----------------------------------------------------------------------------
def test_condition_lists_follow_section_4():
    single = conditions.single_point_variants()
    assert [v.key for v in single] == ["original", "occlusion_0.3_s0", "occlusion_0.3_s1", "occlusion_0.3_s2",
                                       "brightness_1.15_s0", "noise_0.1_s0"]
    full = conditions.all_variants(True)
    assert len(full) == 1 + 4 * 3 + 4 + 4 == len(set(full))
    assert {v.condition for v in full if v.kind == "occlusion"} == {"occlusion_0.10", "occlusion_0.20",
                                                                    "occlusion_0.30", "occlusion_0.40"}


def test_perturb_chips_identity_positions_and_reproducibility():
    chips = _chips()
    keys = [f"img{i}.jpg" for i in range(len(chips))]
    assert conditions.perturb_chips(chips, conditions.ORIGINAL, keys) is chips
    assert np.array_equal(conditions.perturb_chips(chips, conditions.Variant("brightness", 1.0), keys), chips)
    assert np.array_equal(conditions.perturb_chips(chips, conditions.Variant("noise", 0.0), keys), chips)
    occ = conditions.perturb_chips(np.full_like(chips, 255), conditions.Variant("occlusion", 0.3, 1), keys)
    masks = occ[..., 0] == 0
    assert all(abs(m.mean() - 0.3) <= 0.01 for m in masks)
    assert all(np.array_equal(masks[0], m) for m in masks)  # one seeded position for the whole run
    other = conditions.perturb_chips(np.full_like(chips, 255), conditions.Variant("occlusion", 0.3, 2), keys)
    other = other[..., 0] == 0
    assert not np.array_equal(masks[0], other[0])  # another seed = another position
    noisy = conditions.perturb_chips(chips, conditions.Variant("noise", 0.1), keys)
    assert np.array_equal(noisy, conditions.perturb_chips(chips, conditions.Variant("noise", 0.1), keys))  # bit for bit
    d0 = noisy[0].astype(int) - chips[0]
    d1 = noisy[1].astype(int) - chips[1]
    assert not np.array_equal(d0, d1)  # each image has its own noise (seed from its name)
    assert noisy.dtype == np.uint8


# -- ablation ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 7, 464])
def test_derangement_is_a_seeded_derangement(n):
    p = ablation.derangement(n)
    assert sorted(p.tolist()) == list(range(n))
    assert not np.any(p == np.arange(n))
    assert np.array_equal(p, ablation.derangement(n))
    if n > 3:
        assert not np.array_equal(p, ablation.derangement(n, seed=ablation.SHUFFLE_SEED + 1))


def test_derangement_needs_two_images():
    from fasfinder.errors import BadArgument

    with pytest.raises(BadArgument):
        ablation.derangement(1)


def test_ablation_modes_produce_what_they_claim():
    heat = np.random.default_rng(3).random((5, 16, 16)).astype(np.float32)
    assert ablation.ablate(heat, "normal") is heat
    zero = ablation.ablate(heat, "zero")
    assert zero.shape == heat.shape and not zero.any()
    r1, r2 = ablation.ablate(heat, "random"), ablation.ablate(heat, "random")
    assert np.array_equal(r1, r2) and r1.min() >= 0 and r1.max() < 1 and r1.shape == heat.shape
    assert not np.allclose(r1, heat) and abs(float(r1.mean()) - 0.5) < 0.05
    sh = ablation.ablate(heat, "shuffle")
    perm = ablation.derangement(len(heat))
    assert np.array_equal(sh, heat[perm])
    for i in range(len(heat)):  # every image gets another image's map, never its own
        assert not np.array_equal(sh[i], heat[i])
    from fasfinder.errors import BadArgument

    with pytest.raises(BadArgument):
        ablation.ablate(heat, "mean")


def test_bootstrap_delta_is_zero_for_identical_predictions_and_signed():
    y = np.repeat(np.arange(10), 2)
    good = y.copy()
    bad = (y + 1) % 10
    d, se = stats.bootstrap_delta_f1(y, [good], [good], n=50)
    assert d == 0 and se == 0
    d, se = stats.bootstrap_delta_f1(y, [bad], [good], n=50)
    assert d == pytest.approx(1.0) and se >= 0
    assert closed_set.macro_f1(y, good) == 1.0 and closed_set.macro_f1(y, bad) == 0.0


def test_fold_stats_and_fold_delta():
    rng = np.random.default_rng(0)
    same = np.tile([True, False], 100)
    folds = np.repeat(np.arange(10), 20)
    scores = same + rng.normal(0, 0.5, len(same))
    st = open_set.fold_stats(scores, same, folds)
    assert len(st["fold_auc"]) == 10 and 0.5 < st["auc_fold_mean"] <= 1 and st["auc_fold_sem"] > 0
    rows = [{"engine": "a", "condition": "c", "fold_auc": [0.5] * 10},
            {"engine": "b", "condition": "c", "fold_auc": [0.7, 0.9] * 5}]
    d, se = stats.fold_delta(rows, "a", "b", "c")
    assert d == pytest.approx(0.3) and se > 0


def test_line_plot_writes_a_png_of_the_requested_size_without_a_gui_backend(tmp_path):
    import os
    import subprocess
    import sys

    from PIL import Image

    from fasfinder.evaluation.plot import PALETTE, Series, line_plot

    series = [Series("base", [0.0, 0.1, 0.2], [0.9, 0.8, 0.6], [0.0, 0.05, 0.1], PALETTE[0], dashed=True),
              Series("heatmap", [0.0, 0.1, 0.2], [0.9, float("nan"), 0.7], None, PALETTE[1])]
    path = line_plot(tmp_path / "sub" / "c.png", series, title="t", xlabel="x", ylabel="y", size=(640, 480))
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (640, 480)
        px = np.asarray(im.convert("RGB"))
    assert (px == 255).all(axis=2).mean() > 0.5  # mostly white background
    b, g, r = PALETTE[0]
    assert np.any(np.all(np.abs(px.astype(int) - (r, g, b)) <= 8, axis=2))  # the series is drawn in its colour
    assert line_plot(tmp_path / "empty.png", []).is_file()
    # in a fresh interpreter: drawing loads neither pyplot (global backend state) nor any Qt
    code = ("import sys; from fasfinder.evaluation.plot import Series, line_plot; "
            f"line_plot({str(tmp_path / 'fresh.png')!r}, [Series('a', [0, 1], [0.5, 0.6])]); "
            "bad = [m for m in sys.modules if m == 'matplotlib.pyplot' "
            "or m.startswith(('PySide', 'PyQt', 'shiboken'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert (tmp_path / "fresh.png").is_file()


def test_closed_set_chips_of_the_real_celeba_subset(tmp_path, monkeypatch):
    """The heatmap models' split on the real data: first 6 images per identity train, last 2 validate."""

    from fasfinder.evaluation.robustness_data import load_closed_set

    from .conftest import shared_data

    root = shared_data("celeba_subset").parent
    monkeypatch.setenv("FASFINDER_CACHE_DIR", str(tmp_path / "cache"))
    store = tmp_path / "chips.npz"
    data = load_closed_set(root, max_ids=2, store_path=store)
    assert data.listed == {"train": 12, "val": 4}
    assert len(data.train_keys) + data.no_face["train"] == 12 and len(data.val_keys) + data.no_face["val"] == 4
    assert data.val_chips.shape == (len(data.val_keys), 150, 150, 3) and data.val_chips.dtype == np.uint8
    assert len(set(data.val_labels.tolist())) == 2 and set(data.val_labels.tolist()) <= set(data.identities)
    for ident in set(data.val_labels.tolist()):
        train = sorted(k for k, y in zip(data.train_keys, data.train_labels) if y == ident)
        val = sorted(k for k, y in zip(data.val_keys, data.val_labels) if y == ident)
        assert not train or not val or train[-1] < val[0]
    again = load_closed_set(root, max_ids=2, store_path=store)  # from the chip cache, same chips
    assert again.val_keys == data.val_keys and np.array_equal(again.val_chips, data.val_chips)


# -- toy models and data ---------------------------------------------------------------------
def _toy_models(dirpath, n_classes, size=64):
    from fasfinder.engines.backbones import build_net
    from fasfinder.modelfiles import sha256_file

    dirpath.mkdir(parents=True, exist_ok=True)
    for card in (REPO / "models").glob("*.card.json"):
        shutil.copy(card, dirpath / card.name)
    for variant in ("base", "heatmap"):
        torch.manual_seed(0)
        net = build_net("shufflenet", variant)
        name = f"shufflenet-{variant}"
        # like the shipped models (training.heatmap_online.export_online): float16 net and head state dicts
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()},
                   dirpath / f"{name}.pt")
        torch.save({"weight": torch.randn(n_classes, 128).half()}, dirpath / f"{name}-head.pt")
        card = {"name": name, "kind": "heatmap-net", "backbone": "shufflenet", "variant": variant, "input_size": size,
                "files": [{"name": "weights", "path": f"{name}.pt", "sha256": sha256_file(dirpath / f"{name}.pt")},
                          {"name": "head", "path": f"{name}-head.pt", "sha256": sha256_file(dirpath / f"{name}-head.pt")}]}
        (dirpath / f"{name}.card.json").write_text(json.dumps(card))
    return dirpath


def test_chip_path_equals_the_engines_own_pipeline(tmp_path, monkeypatch, astronaut):
    """Original condition == protocol 2: a ChipModel on the clean chip gives the engine's embed_faces."""

    from fasfinder.engines.base import combine_views
    from fasfinder.faces import FaceAnalyzer, face_chip

    faces = FaceAnalyzer().detect(astronaut)[:1]
    assert faces, "dlib finds no face in skimage's astronaut"
    monkeypatch.setenv("FASFINDER_MODELS_DIR", str(_toy_models(tmp_path / "models", 3)))
    models = chip_models.resolve_models(["dlib-resnet-torch", "cam-vector", "shufflenet-base", "shufflenet-heatmap"])
    assert [m.classifier for m in models] == ["nearest-class-mean"] * 2 + ["arcface-head"] * 2
    assert [m.ablatable for m in models] == [False, False, False, True]
    chips = face_chip(astronaut, faces[0])[None]
    maps = chip_models.chip_maps(chips)
    for m in models:
        ours = m.embed(chips, maps)
        theirs = combine_views(*m.engine.embed_views(astronaut, faces, mirror=True))
        assert np.allclose(ours, theirs, atol=1e-5), m.name
    heat = models[-1]
    assert not np.allclose(heat.embed(chips, maps, mode="zero"), heat.embed(chips, maps))


def test_unknown_engine_is_a_typed_error(tmp_path, monkeypatch):
    from fasfinder.errors import UnknownEngine

    monkeypatch.setenv("FASFINDER_MODELS_DIR", str(_toy_models(tmp_path / "models", 2)))
    with pytest.raises(UnknownEngine):
        chip_models.resolve_models(["no-such-engine"])


def _toy_data(root, astronaut):
    """A celeba_subset with 2 identities x 8 images and an LFW folder with 10 folds x (1 same + 1 different)."""

    import cv2

    face = astronaut[0:320, 60:380]
    subset = root / "celeba_subset" / "Celeb"
    subset.mkdir(parents=True)
    lines = []
    for ident in (7, 9):
        base = face if ident == 7 else np.ascontiguousarray(face[:, ::-1, [2, 1, 0]])
        for k in range(8):
            img = np.clip(base.astype(np.float32) * (0.8 + 0.05 * k), 0, 255).astype(np.uint8)
            name = f"{ident:03d}{k:03d}.jpg"
            cv2.imwrite(str(subset / name), img[:, :, ::-1])
            lines.append(f"{name} {ident}")
    (root / "celeba_subset" / "identity_CelebA_subset.txt").write_text("\n".join(lines) + "\n")
    lfw = root / "lfw"
    for who, base in (("Ann", face), ("Bob", np.ascontiguousarray(face[:, ::-1]))):
        (lfw / "images_deepfunneled" / who).mkdir(parents=True)
        for k in (1, 2):
            img = cv2.resize(np.clip(base * (0.9 + 0.1 * k), 0, 255).astype(np.uint8), (250, 250))
            cv2.imwrite(str(lfw / "images_deepfunneled" / who / f"{who}_{k:04d}.jpg"), img[:, :, ::-1])
    pairs = ["10\t1"] + ["Ann\t1\t2\nAnn\t1\tBob\t2" if f % 2 else "Bob\t1\t2\nBob\t1\tAnn\t2" for f in range(10)]
    (lfw / "pairs.txt").write_text("\n".join(pairs) + "\n")
    return root, lfw


@pytest.mark.slow  # ~8-10 s on one core: the whole protocol twice (the second run resumes)
def test_toy_end_to_end_cli_writes_tables_curves_and_report(tmp_path, monkeypatch, astronaut, capsys):
    from fasfinder import cli

    monkeypatch.setenv("FASFINDER_MODELS_DIR", str(_toy_models(tmp_path / "models", 2)))
    monkeypatch.setenv("FASFINDER_CACHE_DIR", str(tmp_path / "cache"))
    root, lfw = _toy_data(tmp_path / "data", astronaut)
    out = tmp_path / "out"
    argv = ["eval", "robustness", "--celeba", str(root), "--lfw", str(lfw), "--out", str(out), "--json",
            "--engines", "shufflenet-base,cam-vector", "shufflenet-heatmap"]
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["closed_set"]["val_faces"] == 4 and summary["open_set"]["pairs"] == 20
    for name in ("table1_closed", "sweeps_closed", "ablation_closed", "open_lfw"):
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.json").is_file(), name
    table1 = json.loads((out / "table1_closed.json").read_text())
    assert {(r["engine"], r["condition"]) for r in table1} == {
        (e, c) for e in ("shufflenet-base", "cam-vector", "shufflenet-heatmap")
        for c in ("original", "occlusion_0.30", "brightness_1.15", "noise_0.10")}
    occ = next(r for r in table1 if r["condition"] == "occlusion_0.30")
    assert occ["seeds"] == 3
    abl = json.loads((out / "ablation_closed.json").read_text())
    assert {r["mode"] for r in abl if r["engine"] == "shufflenet-heatmap"} == set(ablation.ABLATION_MODES)
    assert {r["mode"] for r in abl if r["engine"] != "shufflenet-heatmap"} == set()
    opened = json.loads((out / "open_lfw.json").read_text())
    assert len(opened) == 3 * 4 and all(0 <= r["auc"] <= 1 for r in opened)
    for kind in ("occlusion", "brightness", "noise"):
        png = (out / f"curve_closed_{kind}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "Table 1" in report and "0.8372" in report and "not applicable" in report
    # resumable: a second run recomputes nothing and gives the same tables
    rows_before = (out / "rows.jsonl").read_text()
    assert cli.main(argv) == 0
    assert (out / "rows.jsonl").read_text() == rows_before
    assert json.loads((out / "table1_closed.json").read_text()) == table1


def test_cli_bad_usage_gives_a_json_error(tmp_path, capsys):
    from fasfinder import cli

    assert cli.main(["eval", "ablation", "--out", str(tmp_path / "o"), "--json"]) == 1
    err = json.loads(capsys.readouterr().out.strip())
    assert err["error"]["code"] == "bad_argument"
