"""Verification metrics against hand-checkable cases, scikit-learn and the previous hand-written ROC."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fasfinder.evaluation.metrics import auc, best_threshold, eer, kfold_accuracy, roc_curve, tar_at_far


def _reference_roc(scores, same):
    """The hand-written ROC that metrics.roc_curve (now on sklearn) replaced: the numbers must not move."""

    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], same[order]
    distinct = np.r_[np.where(np.diff(s))[0], len(s) - 1]
    tp, fp = np.cumsum(y)[distinct], np.cumsum(~y)[distinct]
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos], np.r_[np.inf, s[distinct]]


def test_perfect_and_inverted_separation():
    same = np.array([1, 1, 1, 0, 0, 0], bool)
    s = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    assert auc(s, same) == 1.0 and eer(s, same) == 0.0 and tar_at_far(s, same, 1e-3) == 1.0
    assert auc(-s, same) == 0.0
    assert 0.3 < best_threshold(s, same) < 0.7


@pytest.mark.parametrize("decimals", [1, 2, None])
def test_roc_is_bit_identical_to_the_hand_written_one(decimals):
    rng = np.random.default_rng(3)
    same = rng.random(3000) < 0.4
    s = rng.normal(same * 1.2, 1.0)
    if decimals is not None:
        s = np.round(s, decimals)  # ties
    for got, want in zip(roc_curve(s, same), _reference_roc(s, same)):
        assert got.dtype == np.float64 and np.array_equal(got, want)
    far, tar, _ = _reference_roc(s, same)
    assert auc(s, same) == float(np.trapezoid(tar, far))


def test_one_class_absent_gives_zero_rates_without_warning():
    s = np.array([0.1, 0.5, 0.5, 0.9])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        far, tar, thr = roc_curve(s, np.ones(4, bool))
        assert far.tolist() == [0.0, 0.0, 0.0, 0.0] and tar.tolist() == [0.0, 0.25, 0.75, 1.0]
        far, tar, _ = roc_curve(s, np.zeros(4, bool))
        assert tar.tolist() == [0.0] * 4 and far.tolist() == [0.0, 0.25, 0.75, 1.0]
    assert thr[0] == np.inf and thr[1:].tolist() == [0.9, 0.5, 0.1]


def test_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    same = rng.random(2000) < 0.5
    s = np.round(rng.normal(same * 1.5, 1.0), 1)  # many ties
    assert auc(s, same) == pytest.approx(roc_auc_score(same, s), abs=1e-12)


def test_eer_of_symmetric_gaussians():
    rng = np.random.default_rng(1)
    same = np.r_[np.ones(20000, bool), np.zeros(20000, bool)]
    s = np.r_[rng.normal(1, 1, 20000), rng.normal(-1, 1, 20000)]
    assert eer(s, same) == pytest.approx(0.5 * math.erfc(1 / math.sqrt(2)), abs=0.01)  # Phi(-1)


def test_eer_interpolates_between_roc_points():
    # ROC points (far, frr): ..., (0, 0.5), (0.5, 0) -> the crossing at 0.25
    same = np.array([1, 1, 0, 0], bool)
    s = np.array([0.9, 0.5, 0.5, 0.1])
    assert eer(s, same) == pytest.approx(0.25)


def test_kfold_uses_held_out_thresholds():
    rng = np.random.default_rng(2)
    same = rng.random(6000) < 0.5
    s = rng.normal(same * 3.0, 1.0)
    mean, sem, folds = kfold_accuracy(s, same, np.repeat(np.arange(10), 600))
    assert len(folds) == 10 and 0.9 < mean < 0.97 and 0 < sem < 0.01
