"""Heatmap-channel recognizers (issue 6): fast checks (< 30 s, no training data needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("backbone", ["shufflenet", "mobilenet", "efficientnet"])
def test_four_channel_adaptation_keeps_rgb_filters(backbone):
    from fasfinder.engines.backbones import build_net, first_conv

    torch.manual_seed(0)
    base = build_net(backbone, "base")
    torch.manual_seed(0)
    heat = build_net(backbone, "heatmap")
    w3, w4 = first_conv(base).weight, first_conv(heat).weight
    assert w3.shape[1] == 3 and w4.shape[1] == 4
    assert torch.equal(w4[:, :3], w3)
    assert torch.allclose(w4[:, 3], w3.mean(dim=1))
    heat.eval()
    with torch.inference_mode():
        out = heat(torch.rand(2, 4, 64, 64))
    assert out.shape == (2, 128)


def test_widen_first_conv_response():
    from fasfinder.engines.backbones import widen_first_conv

    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    wide = widen_first_conv(conv)
    x = torch.rand(1, 3, 9, 9)
    zero = torch.cat([x, torch.zeros(1, 1, 9, 9)], 1)
    assert torch.allclose(wide(zero), conv(x), atol=1e-6)  # an all-zero heatmap changes nothing


def test_arcface_loss_decreases_on_toy_batch():
    from fasfinder.training.arcface import ArcFace

    torch.manual_seed(0)
    emb = torch.nn.Parameter(torch.randn(16, 32))
    head = ArcFace(32, 4, scale=16.0, margin=0.3)
    y = torch.arange(16) % 4
    opt = torch.optim.SGD([emb, *head.parameters()], lr=0.5)
    first = None
    for _ in range(30):
        loss, cos = head(emb, y)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
    assert (cos.argmax(1) == y).all()


def test_augment_moves_heatmap_with_pixels():
    from fasfinder.training.heatmap_data import augment

    x = torch.zeros(4, 4, 32, 32)
    x[:, :, 8:16, 4:12] = 1.0  # the same square in every channel
    out, flipped = augment(x, torch.Generator().manual_seed(1), jitter=0.0, blur_p=0.0, erase_p=0.0)
    assert out.shape == x.shape and flipped.shape == (4,)
    # geometry is shared: where the RGB square went, the heatmap square went too
    assert torch.allclose(out[:, 0], out[:, 3], atol=1e-5)


def test_fastcam_equals_explain_chip_heatmap():
    from fasfinder.engines.heatmap_input import FastCam
    from fasfinder.explain import Explainer, SimilarityToConceptTarget

    cam = FastCam()

    rng = np.random.default_rng(0)
    chip = rng.integers(0, 255, (150, 150, 3), dtype=np.uint8)
    chip[40:110, 40:110] = 200
    ex = Explainer()
    emb = ex.embed_chips([chip])[0]
    ref, _ = ex.chip_cams([chip], [SimilarityToConceptTarget(emb, "projection")])
    maps, desc = cam([chip])
    assert maps.shape == (1, 150, 150) and desc.shape == (1, 128)
    assert np.abs(maps[0] - ref[0]).max() < 1e-3
    assert np.allclose(desc[0], emb, atol=1e-3)


def _tiny_cache(tmp_path, n_per=4, ids=3, size=32):
    rng = np.random.default_rng(0)
    n = n_per * ids
    d = tmp_path / "cache"
    d.mkdir()
    np.save(d / "crops.npy", rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8))
    np.save(d / "heat.npy", rng.random((n, size, size)).astype(np.float16))
    t = rng.normal(size=(n, 128)).astype(np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    np.save(d / "teacher.npy", t)
    np.save(d / "teacher_mirror.npy", t)
    labels = [i // n_per for i in range(n)]
    split = ["train" if i % n_per < n_per - 1 else "val" for i in range(n)]
    (d / "meta.json").write_text(json.dumps({"labels": labels, "split": split, "listed": n, "kept": n}))
    return d


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path):
    from fasfinder.training.heatmap_train import TrainConfig, train

    cache = _tiny_cache(tmp_path)
    kw = dict(backbone="shufflenet", variant="heatmap", size=32, batch=4, lr=1e-3, seed=3)
    full = train(TrainConfig(epochs=2, **kw), cache, tmp_path / "a", log=lambda *_: None)
    first = train(TrainConfig(epochs=2, max_minutes=1e-9, **kw), cache, tmp_path / "b", log=lambda *_: None)
    assert first["epoch"] == 1  # "interrupted" after one epoch
    resumed = train(TrainConfig(epochs=2, **kw), cache, tmp_path / "b", log=lambda *_: None)
    assert resumed["epoch"] == 2
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=False)["net"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=False)["net"]
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    assert full["history"][-1]["arcface"] == resumed["history"][-1]["arcface"]


def test_engine_shape_normalisation_and_integrity(tmp_path, monkeypatch):
    from fasfinder.engines.heatmap_nets import HeatmapNetEngine, installed_cards
    from fasfinder.errors import ModelIntegrityError
    from fasfinder.training.heatmap_train import TrainConfig, export, train

    cache = _tiny_cache(tmp_path)
    run = tmp_path / "run"
    train(TrainConfig(backbone="shufflenet", variant="heatmap", size=32, epochs=1, batch=4), cache, run, log=lambda *_: None)
    models = tmp_path / "models"
    models.mkdir()
    export(run, models, name="toy-heatmap", command="test")
    monkeypatch.setenv("FASFINDER_MODELS_DIR", str(models))
    assert [c["name"] for c in installed_cards()] == ["toy-heatmap"]
    eng = HeatmapNetEngine("toy-heatmap")
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    heat = rng.random((3, 32, 32)).astype(np.float32)
    plain, mirrored = eng.embed_inputs(crops, heat, mirror=True)
    assert plain.shape == (3, 128) and mirrored.shape == (3, 128)
    assert np.allclose(np.linalg.norm(plain, axis=1), 1, atol=1e-5)
    # the mirror view of a crop equals the plain view of the mirrored crop
    p2, _ = eng.embed_inputs(crops[:, :, ::-1], heat[:, :, ::-1], mirror=False)
    assert np.allclose(p2, mirrored, atol=1e-5)
    # a swapped weights file is refused (a second card naming a file that is not the one hashed)
    card = json.loads((models / "toy-heatmap.card.json").read_text())
    card["name"], card["files"][0]["path"] = "toy-bad", "toy-bad.pt"
    (models / "toy-bad.card.json").write_text(json.dumps(card))
    (models / "toy-bad.pt").write_bytes(b"not the weights")
    with pytest.raises(ModelIntegrityError):
        HeatmapNetEngine("toy-bad").net()


def test_cam_vector_engine_shape(astronaut):
    from fasfinder.engines.cam_vector import CamVectorEngine
    from fasfinder.faces import FaceAnalyzer

    faces = FaceAnalyzer().detect(astronaut)[:1]
    assert faces, "dlib finds the astronaut's face"
    plain, mirrored = CamVectorEngine().embed_views(astronaut, faces, mirror=True)
    assert plain.shape == (1, 16384) and mirrored.shape == (1, 16384)
    assert np.isclose(np.linalg.norm(plain[0]), 1, atol=1e-5)


def test_online_training_exports_float16_weights_the_engine_runs(tmp_path, monkeypatch, astronaut):
    """Chip file -> heatmaps + teacher on the fly -> 2 epochs -> export -> engine embeds a real face."""

    from fasfinder.engines.heatmap_nets import HeatmapNetEngine
    from fasfinder.faces import FaceAnalyzer, face_chip
    from fasfinder.training.heatmap_data import load_chip_file, write_chip_file
    from fasfinder.training.heatmap_online import (
        OnlineConfig,
        export_online,
        prepare_tensors,
        train_online,
    )

    face = FaceAnalyzer().detect(astronaut)[0]
    chip = face_chip(astronaut, face)
    chips, items = [], []
    for ident in range(3):  # 3 "identities" x 4 images (brightness variants): 2 train + 2 validate each
        for k in range(4):
            chips.append(np.clip(chip.astype(np.float32) * (0.7 + 0.1 * k + 0.05 * ident), 0, 255).astype(np.uint8))
            items.append({"path": f"id{ident}/{k}.jpg", "identity": 100 + ident, "split": "train" if k < 2 else "val",
                          "source": "test"})
    path = write_chip_file(tmp_path / "chips.npz", items, ["test"] * len(items), chips, listed=len(items))
    back, meta = load_chip_file(path)
    assert back.shape == (12, 150, 150, 3) and meta["items"] == items
    assert np.abs(back.astype(int) - np.stack(chips)).mean() < 3  # JPEG q95

    data = prepare_tensors(path, None, "cpu", 64)
    assert data["heat"].shape == (12, 150, 150) and data["va_heat"].shape == (6, 64, 64)
    cfg = OnlineConfig(backbone="shufflenet", variant="heatmap", size=64, epochs=2, batch=3, device="cpu", amp=False)
    state = train_online(cfg, data, tmp_path / "run", log=lambda *_: None)
    assert state["epoch"] == 2 and state["steps"] == 4 and state["kept"] == 12 and state["listed"] == 12
    assert 0 <= state["history"][-1]["val_pair_auc"] <= 1
    models = tmp_path / "models"
    models.mkdir()
    card = json.loads(export_online(tmp_path / "run", models, command="test").read_text())
    assert card["name"] == "shufflenet-heatmap" and [f["name"] for f in card["files"]] == ["weights", "head"]
    sd = torch.load(models / "shufflenet-heatmap.pt", weights_only=True)
    assert sd["fc.weight"].dtype == torch.float16
    monkeypatch.setenv("FASFINDER_MODELS_DIR", str(models))
    plain, mirrored = HeatmapNetEngine("shufflenet-heatmap").embed_views(astronaut, [face], mirror=True)
    assert plain.shape == (1, 128) and np.allclose(np.linalg.norm(plain, axis=1), 1, atol=1e-5)
