"""Similarity -> confidence calibration (Platt scaling) on CelebA, never on LFW.

confidence = P(same person | cosine similarity) = sigmoid(a * cosine + b), fitted by maximum
likelihood on same/different-identity pairs of ``celeba_extra`` (the 244 training identities),
with equal numbers of same and different pairs (a 1:1 prior). Quality is measured on a split by
identity (fit on half the identities, expected calibration error and Brier score on the other
half) before the final fit on all of them.

The logistic fit is scikit-learn's (``LogisticRegression``, unpenalised, Newton-Cholesky) on
Platt's smoothed targets; the Brier score is ``sklearn.metrics.brier_score_loss``. The expected
calibration error keeps its own binning: 10 equal-width bins closed on the left
(``[0, 0.1), ..., [0.9, 1]``), where ``sklearn.calibration.calibration_curve`` closes them on the
right (a probability of exactly 0.1 falls in the first bin there, in the second one here).
"""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from ..engines import DEFAULT_ENGINE, get_engine
from ..engines.base import combine_views
from ..errors import BadArgument
from ..modelfiles import models_dir
from .lfw_data import embed_images


def read_identities(celeba_root: Path, per_identity: int) -> list[tuple[Path, str]]:
    listing = celeba_root / "celeba_extra" / "identity_CelebA_extra.txt"
    if not listing.is_file():
        raise BadArgument(f"{listing} not found: --celeba must hold celeba_extra/")
    by_id: dict[str, list[Path]] = defaultdict(list)
    for line in listing.read_text().splitlines():
        if line.strip():
            name, ident = line.split()
            by_id[ident].append(celeba_root / "celeba_extra" / "Celeb" / name)
    return [(p, ident) for ident in sorted(by_id) for p in sorted(by_id[ident])[:per_identity]]


def fit_platt(s: np.ndarray, y: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """Logistic regression of y on s, as in Platt (1999): (a, b) of P(y = 1) = sigmoid(a * s + b).

    Targets are Platt's smoothed ones, (N+ + 1) / (N+ + 2) and 1 / (N- + 2), so that (nearly)
    separable pairs, common with a strong face model, give a finite slope instead of diverging.
    A soft target t is the weighted pair (label 1, weight t) + (label 0, weight 1 - t), whose
    log-loss is the cross-entropy against t; scikit-learn fits that without a penalty
    (``C=inf``, the spelling of ``penalty=None`` since scikit-learn 1.8) by Newton steps
    (``iters`` of them at most) in float64. It agrees with the previous hand-written Newton fit to
    1e-9 on the shipped calibration data (bench/metrics_numbers.py).
    """

    s = np.asarray(s, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    t = np.where(y > 0.5, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    x = np.r_[s, s][:, None]
    labels = np.r_[np.ones(len(s)), np.zeros(len(s))]
    fit = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=iters)
    fit.fit(x, labels, sample_weight=np.r_[t, 1.0 - t])
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: sum over equal-width bins (closed on the left, the last one
    also on the right) of |mean p - mean y| x the bin's share of the pairs."""

    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    return float(sum(abs(p[idx == k].mean() - y[idx == k].mean()) * (idx == k).mean()
                     for k in range(bins) if (idx == k).any()))


def brier(p: np.ndarray, y: np.ndarray) -> float:
    """Brier score, mean (p - y)^2 (``sklearn.metrics.brier_score_loss``), computed in float64:
    sigmoids of float32 cosines are float32, and scikit-learn would keep that precision."""

    return float(brier_score_loss(y, np.asarray(p, dtype=np.float64)))


def make_pairs(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    by = defaultdict(list)
    for i, lab in enumerate(labels):
        by[lab].append(i)
    same = [(i, j) for idx in by.values() for i, j in combinations(idx, 2)]
    n = len(labels)
    diff = set()
    while len(diff) < len(same):
        i, j = (int(x) for x in rng.integers(0, n, 2))
        if labels[i] != labels[j]:
            diff.add((min(i, j), max(i, j)))
    pairs = np.array(same + sorted(diff))
    y = np.r_[np.ones(len(same)), np.zeros(len(diff))]
    return pairs, y


def calibrate_engine(celeba_root, *, engine: str | None = None, per_identity: int = 8, flip: bool = True,
                     write: bool = False, cards: tuple[str, ...] | None = None, progress=None) -> dict:
    root = Path(celeba_root)
    eng = get_engine(engine or DEFAULT_ENGINE)
    items = read_identities(root, per_identity)
    cache = embed_images([p for p, _ in items], eng, tag="celeba", progress=progress)
    plain = np.stack([cache.data[str(p)][0] for p, _ in items])
    mirror = np.stack([cache.data[str(p)][1] for p, _ in items])
    emb = combine_views(plain, mirror if flip else None)
    labels = np.array([i for _, i in items])
    rng = np.random.default_rng(0)

    idents = np.unique(labels)
    rng.shuffle(idents)
    half = set(idents[: len(idents) // 2].tolist())
    fit_mask = np.array([lab in half for lab in labels])
    report = {"engine": eng.name, "flip": flip, "images": len(items), "identities": int(len(idents)),
              "no_face": int(sum(cache.data[str(p)][2] for p, _ in items))}
    sims = {}
    for part, mask in (("fit", fit_mask), ("check", ~fit_mask)):
        idx = np.where(mask)[0]
        pairs, y = make_pairs(labels[idx], rng)
        s = np.einsum("ij,ij->i", emb[idx][pairs[:, 0]], emb[idx][pairs[:, 1]])
        sims[part] = (s, y)
    a, b = fit_platt(*sims["fit"])
    s, y = sims["check"]
    p = 1.0 / (1.0 + np.exp(-(a * s + b)))
    report["held_out"] = {"pairs": int(len(y)), "ece": round(ece(p, y), 4), "brier": round(brier(p, y), 4),
                          "accuracy_at_0.5": round(float(((p >= 0.5) == y).mean()), 4)}
    all_pairs, y_all = make_pairs(labels, rng)
    s_all = np.einsum("ij,ij->i", emb[all_pairs[:, 0]], emb[all_pairs[:, 1]])
    a, b = fit_platt(s_all, y_all)
    report["calibration"] = {
        "method": "platt", "a": round(a, 6), "b": round(b, 6), "flip": flip, "prior": "1:1 same/different pairs",
        "data": f"celeba_extra, first {per_identity} crops of each of {len(idents)} identities "
                f"({int(y_all.sum())} same + {int((1 - y_all).sum())} different pairs); never LFW",
        "similarity_at_p50": round(-b / a, 4),
        "held_out_check": report["held_out"],
        "command": f"python main.py eval calibrate --celeba ../shared/data --engine {eng.name} --write",
    }
    if write:
        for name in cards or (eng.card_name,):
            path = models_dir() / f"{name}.card.json"
            card = json.loads(path.read_text())
            card["calibration"] = dict(report["calibration"], fitted_with_engine=eng.name)
            path.write_text(json.dumps(card, indent=2) + "\n")
        report["written_to"] = list(cards or (eng.card_name,))
    return report
