"""The verification, calibration and FAS numbers at full precision, on fixed inputs: the check that
moving evaluation/metrics.py and calibrate.py onto scikit-learn changed no number.

    FASFINDER_CACHE_DIR=DIR python bench/metrics_numbers.py > after.txt
    FASFINDER_CACHE_DIR=DIR REPO=/path/to/an/older/checkout python bench/metrics_numbers.py > before.txt
    diff before.txt after.txt

Inputs: seeded random scores (with ties, tiny and degenerate cases), seeded Platt data, seeded FAS
scores; with ``--real`` also LFW cosine scores of the default engine (the pairs whose two images are
in its LFW embedding cache: all 6,000 after ``eval lfw``) and the CelebA calibration
(``calibrate_engine``, nothing written; embeds the celeba_extra crops on the first run). ``REPO``
runs the script on another checkout (the imports fall back to where these functions lived before).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, os.environ.get("REPO", str(Path(__file__).resolve().parent.parent)))

from fasfinder.evaluation import calibrate as cal  # noqa: E402
from fasfinder.evaluation import metrics as M  # noqa: E402

try:
    from fasfinder.evaluation.nuaa import choose_threshold, fas_metrics  # noqa: E402
except ImportError:  # before the split of training/fas.py
    from fasfinder.training.fas import choose_threshold, fas_metrics  # noqa: E402

# before the move to scikit-learn the Brier score was this inline formula
brier = getattr(cal, "brier", lambda p, y: float(np.mean((p - y) ** 2)))


def digest(a) -> str:
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    return f"n={a.size} sha={hashlib.sha256(a.tobytes()).hexdigest()[:16]} head={a[:4].tolist()} tail={a[-3:].tolist()}"


def verification(tag, s, same, folds=None) -> None:
    far, tar, thr = M.roc_curve(s, same)
    print(f"[{tag}] roc far {digest(far)}")
    print(f"[{tag}] roc tar {digest(tar)}")
    print(f"[{tag}] roc thr {digest(thr)}")
    print(f"[{tag}] auc {M.auc(s, same)!r} eer {M.eer(s, same)!r}")
    print(f"[{tag}] tar@far " + " ".join(f"{f:g}:{M.tar_at_far(s, same, f)!r}" for f in (0.0, 1e-3, 1e-2, 0.1, 0.5, 1.0)))
    print(f"[{tag}] best_threshold {M.best_threshold(s, same)!r}")
    if folds is not None:
        print(f"[{tag}] kfold {M.kfold_accuracy(s, same, folds)!r}")
        print(f"[{tag}] report {json.dumps(M.verification_report(s, same, folds), sort_keys=True)}")


def synthetic() -> None:
    for seed in range(4):
        for n, dec in ((7, 1), (200, 1), (2000, 2), (6000, None)):
            rng = np.random.default_rng(seed)
            same = rng.random(n) < 0.5
            same[0], same[-1] = True, False
            s = rng.normal(same * 1.2, 1.0)
            if dec is not None:
                s = np.round(s, dec)
            folds = np.repeat(np.arange(10), -(-n // 10))[:n] if n >= 20 else None
            verification(f"syn s{seed} n{n} d{dec}", s, same, folds)
    same = np.array([1, 1, 0, 0, 1, 0], bool)
    verification("all tied", np.full(6, 0.3), same)
    verification("separated", np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.3]), same)
    verification("inverted", -np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.3]), same)
    verification("only positives", np.array([0.1, 0.5, 0.5, 0.9]), np.ones(4, bool))
    verification("only negatives", np.array([0.1, 0.5, 0.5, 0.9]), np.zeros(4, bool))
    verification("int labels", np.array([3, 1, 2, 2, 5, 0]), np.array([1, 0, 1, 0, 1, 0]))

    for seed, (a0, b0, n) in enumerate(((12.0, -6.0, 20000), (90.0, -80.0, 5000), (3.0, 0.5, 300), (400.0, -300.0, 2000))):
        rng = np.random.default_rng(seed)
        s = rng.uniform(-0.2, 1.0, n)
        y = (rng.random(n) < 1 / (1 + np.exp(-(a0 * s + b0)))).astype(float)
        a, b = cal.fit_platt(s, y)
        p = 1 / (1 + np.exp(-(a * s + b)))
        print(f"[platt s{seed}] a {a!r} b {b!r} ece {cal.ece(p, y)!r} ece5 {cal.ece(p, y, bins=5)!r}")
        print(f"[platt s{seed}] brier {brier(p, y)!r} (f32 p: {brier(p.astype(np.float32), y)!r})")
    s = np.r_[np.linspace(0.6, 1.0, 50), np.linspace(-0.2, 0.4, 50)]
    print(f"[platt separable] {cal.fit_platt(s, np.r_[np.ones(50), np.zeros(50)])!r}")
    p = np.array([0.0, 0.1, 0.2, 0.3, 0.5, 0.5, 0.7, 0.9, 1.0, 1.0, 0.25, 0.05])  # on bin edges, 0 and 1
    y = np.array([0, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0, 0], float)
    print(f"[ece edges] {cal.ece(p, y)!r} {cal.ece(p, y, bins=4)!r} {cal.ece(p, y, bins=20)!r}")

    for seed in range(3):
        rng = np.random.default_rng(seed)
        sr = np.clip(np.round(rng.beta(5, 2, 300), 3), 0, 1)
        ss = np.clip(np.round(rng.beta(2, 5, 300), 3), 0, 1)
        t = choose_threshold(sr, ss)
        print(f"[fas s{seed}] thr {t!r} {json.dumps(fas_metrics(sr, ss, t), sort_keys=True)}")


def real(lfw_dir: Path, celeba_root: Path) -> None:
    from fasfinder.engines import DEFAULT_ENGINE
    from fasfinder.engines.base import combine_views
    from fasfinder.evaluation.lfw_data import EmbeddingCache, read_pairs

    cache = EmbeddingCache(DEFAULT_ENGINE)
    pairs = [p for p in read_pairs(lfw_dir) if str(p[0]) in cache.data and str(p[1]) in cache.data]
    for flip in (False, True):
        def emb(path, flip=flip):
            plain, mirror, _ = cache.data[str(path)]
            return combine_views(plain[None], mirror[None] if flip else None)[0]

        s = np.array([float(emb(a) @ emb(b)) for a, b, _, _ in pairs])
        same = np.array([x[2] for x in pairs])
        folds = np.array([x[3] for x in pairs])
        verification(f"lfw flip={flip} pairs={len(pairs)}", s, same, folds)

    fits, checks = [], []
    fit_platt, ece = cal.fit_platt, cal.ece

    def fit_rec(s, y, *a, **k):
        out = fit_platt(s, y, *a, **k)
        fits.append((len(s), out))
        return out

    def ece_rec(p, y, *a, **k):
        out = ece(p, y, *a, **k)
        checks.append((out, brier(p, y)))
        return out

    cal.fit_platt, cal.ece = fit_rec, ece_rec
    try:
        rep = cal.calibrate_engine(celeba_root, write=False)
    finally:
        cal.fit_platt, cal.ece = fit_platt, ece
    for e, b in checks:
        print(f"[celeba held-out] ece {e!r} brier {b!r}")
    for n, (a, b) in fits:
        print(f"[celeba fit n={n}] a {a!r} b {b!r}")
    print(f"[celeba report] {json.dumps(rep, sort_keys=True)}")


def main(argv=None) -> int:
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", action="store_true", help="also LFW cosine scores and the CelebA calibration")
    ap.add_argument("--lfw", default=str(shared / "lfw"))
    ap.add_argument("--celeba", default=str(shared))
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    synthetic()
    if args.real:
        real(Path(args.lfw), Path(args.celeba))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
