"""The open-set threshold model (fasfinder.evaluation.fpir_model) on real CelebA faces: the per-probe
impostor tails, FPIR(t, N) over gallery persons, the threshold for a stated FPIR, the measured FPIR
of random galleries, and the card's thresholds it wrote."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from fasfinder.evaluation.fpir_model import (
    fit_tails,
    measured_fpir,
    merge_duplicates,
    model_fpir,
    model_threshold,
    person_exceedance,
)
from tests.conftest import shared_data

IDENTITIES, PER_IDENTITY = 30, 4


@pytest.fixture(scope="module")
def faces():
    """Embeddings (the product's pipeline, flip TTA) of 4 crops of each of the first 30 identities."""

    root = shared_data("celeba_extra")
    import torch

    torch.set_num_threads(1)
    from fasfinder.engines import DEFAULT_ENGINE, get_engine
    from fasfinder.engines.base import combine_views
    from fasfinder.evaluation.lfw_data import embed_images

    by = defaultdict(list)
    for line in (root / "identity_CelebA_extra.txt").read_text().split("\n"):
        parts = line.split()
        if len(parts) == 2:
            by[int(parts[1])].append(parts[0])
    picked = [(ident, sorted(names)[:PER_IDENTITY]) for ident, names in sorted(by.items())
              if len(names) >= PER_IDENTITY][:IDENTITIES]
    paths = [str(root / "Celeb" / n) for _, names in picked for n in names]
    ids = np.array([ident for ident, names in picked for _ in names])
    eng = get_engine(DEFAULT_ENGINE)
    cache = embed_images(paths, eng, tag="test-fpir")
    plain = np.stack([cache.data[p][0] for p in paths])
    mirror = np.stack([cache.data[p][1] for p in paths])
    return combine_views(plain, mirror), ids


def test_tail_model_counts_each_other_identity_once_on_real_faces(faces):
    emb, ids = faces
    model = fit_tails(emb, ids, keep=40)
    assert model.s.shape == (len(ids), 40) and (np.diff(model.s, axis=1) <= 0).all()
    t = float(np.quantile(model.s[:, 0], 0.5))  # half the probes have an impostor photo above t
    # by hand for probe 0: the share of other identities, each weighted once, whose photos reach t
    own = ids == ids[0]
    others = np.unique(ids[~own])
    by_hand = np.mean([(emb[ids == j] @ emb[0] >= t).mean() for j in others])
    assert model.p(t)[0] == pytest.approx(by_hand)
    assert model.events(t) >= len(ids) // 2
    observed = person_exceedance(emb, ids, [t])[0]
    assert model.p(t).mean() == pytest.approx(observed)  # exact while t is above each probe's 40th score


def test_threshold_gives_the_stated_fpir_and_grows_with_the_gallery(faces):
    emb, ids = faces
    model = fit_tails(emb, ids)
    ts = [model_threshold(model, n, 0.01) for n in (1, 10, 100, 1000)]
    assert ts == sorted(ts) and ts[-1] > ts[0] + 0.01
    for n, t in zip((1, 10, 100, 1000), ts):
        assert model_fpir(model, t, n) <= 0.01 < model_fpir(model, t - 1e-6, n)  # the lowest such t
    # probes differ: FPIR grows slower with N than a single pooled pair rate says (Jensen)
    t, n = ts[2], 100
    pooled = 1 - (1 - model.p(t).mean()) ** n
    assert model_fpir(model, t, n) < pooled


def test_measured_fpir_of_random_galleries_of_real_faces(faces):
    emb, ids = faces
    m = measured_fpir(emb, ids, 5, [-1.0, 0.5, 1.01], reps=20, rng=np.random.default_rng(0))
    assert m["fpir"][0] == 1.0 and m["fpir"][2] == 0.0 and 0 <= m["fpir"][1] <= 1
    assert m["probes"] == 20 * (IDENTITIES - 5) * PER_IDENTITY
    # one rep by hand: the same draws as the function's
    rng = np.random.default_rng(3)
    t = float(np.median(emb[ids == ids[0]] @ emb[ids != ids[0]].T))
    got = measured_fpir(emb, ids, 5, [t], reps=1, rng=np.random.default_rng(3))["fpir"][0]
    lab = np.unique(ids)
    order = rng.permutation(len(lab))
    gallery = [rng.choice(np.where(ids == lab[k])[0]) for k in order[:5]]
    non = np.isin(ids, lab[order[5:]])
    assert got == pytest.approx(((emb[non] @ emb[gallery].T).max(axis=1) >= t).mean())
    with pytest.raises(ValueError):
        measured_fpir(emb, ids, IDENTITIES, [t], reps=1, rng=rng)


def test_a_photo_filed_under_two_identities_merges_them(faces):
    emb, ids = faces
    twice = np.vstack([emb, emb[:1]])  # the first photo again, under a new label
    labels = np.append(ids, 10**6)
    merged_ids, merged = merge_duplicates(twice, labels)
    assert (int(ids[0]), 10**6) in merged and merged_ids[-1] == ids[0]
    for a, b in merged:  # any other merge is a real near-identical pair
        assert (twice[labels == a] @ twice[labels == b].T).max() >= 0.975
    assert len(np.unique(merged_ids)) == len(np.unique(labels)) - len(merged)


def test_card_thresholds_come_from_the_tail_model():
    from fasfinder.engines import DEFAULT_ENGINE, get_engine
    from fasfinder.identify import IdentModel

    card = get_engine(DEFAULT_ENGINE).card()
    o = card.get("open_set") or {}
    if "threshold_model" not in o:
        pytest.fail("the engine card has no tail-model thresholds: run eval identify-fit --write")
    model = IdentModel.from_card(card)
    ts = [t for _, t in model.thresholds]
    assert ts == sorted(ts) and all(-1 < t <= 1 for t in ts)
    assert model.threshold(3502) > model.threshold(100)
