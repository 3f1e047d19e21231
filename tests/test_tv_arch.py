"""fasfinder.engines.tv_arch against torchvision (issue 20): the run-time backbones, built without
torchvision, have torchvision's state dict (keys, shapes) and compute the same outputs, for the base
and heatmap variants; the shipped weights load into them and embed as they do in torchvision's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")

torchvision = pytest.importorskip("torchvision", reason="the reference architectures come from torchvision")

MODELS = Path(__file__).resolve().parent.parent / "models"
BACKBONES = ("shufflenet", "mobilenet", "efficientnet")
HEATMAP_NET_CARDS = [p for p in sorted(MODELS.glob("*.card.json"))
                     if json.loads(p.read_text(encoding="utf-8")).get("kind") == "heatmap-net"]


def _pair(backbone: str, variant: str):
    from fasfinder.engines.backbones import build_net

    own = build_net(backbone, variant, trunk_from="own")
    ref = build_net(backbone, variant, trunk_from="torchvision")
    return own, ref


@pytest.mark.parametrize("variant", ["base", "heatmap"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_same_state_dict_and_outputs_as_torchvision(backbone, variant):
    own, ref = _pair(backbone, variant)
    own_sd, ref_sd = own.state_dict(), ref.state_dict()
    assert list(own_sd) == list(ref_sd)  # same keys in the same order
    assert {k: tuple(v.shape) for k, v in own_sd.items()} == {k: tuple(v.shape) for k, v in ref_sd.items()}
    # random weights and non-trivial batch-norm statistics, copied into both networks
    gen = torch.Generator().manual_seed(1)
    noisy = {}
    for k, v in ref_sd.items():
        if not v.is_floating_point():
            noisy[k] = v
        elif k.endswith("running_var"):
            noisy[k] = 0.5 + torch.rand(v.shape, generator=gen)
        else:
            noisy[k] = 0.3 * torch.randn(v.shape, generator=gen)
    own.load_state_dict(noisy)
    ref.load_state_dict(noisy)
    own.eval()
    ref.eval()
    x = torch.rand(3, own.in_channels, 112, 112, generator=gen)
    with torch.inference_mode():
        a, b = own(x), ref(x)
    assert a.shape == (3, 128)
    assert float(b.abs().max()) > 1e-3  # not an all-zero output that would match anything
    assert torch.allclose(a, b, rtol=0, atol=1e-6 * max(1.0, float(b.abs().max())))


def test_tv_arch_imports_no_torchvision():
    import subprocess
    import sys

    code = ("import sys; from fasfinder.engines.backbones import build_net; "
            "[build_net(b, v) for b in ('shufflenet', 'mobilenet', 'efficientnet') for v in ('base', 'heatmap')]; "
            "assert 'torchvision' not in sys.modules, 'torchvision was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)


def test_every_backbone_has_shipped_weights():
    assert {json.loads(p.read_text(encoding="utf-8"))["backbone"] for p in HEATMAP_NET_CARDS} == set(BACKBONES)


@pytest.mark.parametrize("card_path", HEATMAP_NET_CARDS, ids=lambda p: p.name.split(".")[0])
def test_shipped_weights_embed_the_same(card_path):
    card = json.loads(card_path.read_text(encoding="utf-8"))
    from fasfinder.modelfiles import card_file

    state = torch.load(card_file(card, "weights"), weights_only=True, map_location="cpu")
    own, ref = _pair(card["backbone"], card["variant"])
    own.load_state_dict(state)  # strict: every key of the shipped file, nothing missing
    ref.load_state_dict(state)
    own.eval()
    ref.eval()
    size = int(card.get("input_size", 112))
    x = torch.rand(4, own.in_channels, size, size, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        a, b = own(x), ref(x)
    assert torch.allclose(a, b, rtol=0, atol=1e-6 * max(1.0, float(b.abs().max())))
    cos = torch.nn.functional.cosine_similarity(a, b)
    assert float(cos.min()) > 1 - 1e-6
