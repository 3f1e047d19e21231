"""Paired comparisons behind the protocol 4 report's verdicts: bootstrap macro-F1 differences
(closed set) and per-fold AUC differences (open set); a difference within 2 s.e. is not called."""

from __future__ import annotations

import numpy as np


def bootstrap_delta_f1(y: np.ndarray, preds_a: list[np.ndarray], preds_b: list[np.ndarray], n: int = 1000,
                       seed: int = 0) -> tuple[float, float]:
    """Mean over seeds of macro-F1(b) - macro-F1(a) and its paired bootstrap standard error
    (images resampled jointly for every seed)."""

    y = np.asarray(y)
    classes, yi = np.unique(y, return_inverse=True)
    c = len(classes)
    lut = {int(k): i for i, k in enumerate(classes)}

    def idx(p):
        return np.array([lut.get(int(v), c) for v in p])  # predictions outside y's classes -> extra bin

    pa, pb = [idx(p) for p in preds_a], [idx(p) for p in preds_b]

    def f1(sel, p):
        ys, ps = yi[sel], p[sel]
        tp = np.bincount(ys[ps == ys], minlength=c + 1)[:c]
        true = np.bincount(ys, minlength=c + 1)[:c]
        pred = np.bincount(ps, minlength=c + 1)[:c]
        present = true > 0
        denom = np.maximum(true + pred, 1)
        return float(np.mean((2 * tp / denom)[present]))

    full = np.arange(len(y))
    delta = float(np.mean([f1(full, b) - f1(full, a) for a, b in zip(pa, pb)]))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n):
        sel = rng.integers(0, len(y), len(y))
        boots.append(np.mean([f1(sel, b) - f1(sel, a) for a, b in zip(pa, pb)]))
    return delta, float(np.std(boots, ddof=1))


def delta_cell(labels, a, b, up: str, down: str) -> str:
    """Macro-F1 difference b - a with its paired bootstrap verdict, or "--" when the rows are missing."""

    if not a or len(a) != len(b):
        return "--"
    d, se = bootstrap_delta_f1(labels, a, b)
    return verdict(d, se, up, down)


def verdict(delta: float, se: float, better: str, worse: str) -> str:
    if not np.isfinite(se) or se == 0:
        return "identical" if delta == 0 else f"{better if delta > 0 else worse} ({delta:+.3f}, s.e. 0)"
    if delta > 2 * se:
        return f"{better} ({delta:+.3f} +- {se:.3f})"
    if delta < -2 * se:
        return f"{worse} ({delta:+.3f} +- {se:.3f})"
    return f"no clear difference ({delta:+.3f} +- {se:.3f})"


def fold_delta(open_rows: list[dict], a: str, b: str, condition: str) -> tuple[float, float] | None:
    """Per-fold AUC of ``b`` minus ``a`` (averaged over occlusion positions): (mean, s.e. over folds)."""

    def folds(engine):
        rs = [r["fold_auc"] for r in open_rows if r["engine"] == engine and r["condition"] == condition]
        return np.mean(np.array(rs, float), axis=0) if rs else None

    fa, fb = folds(a), folds(b)
    if fa is None or fb is None or len(fa) != len(fb):
        return None
    d = fb - fa
    return float(d.mean()), (float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0)
