"""Verification metrics against hand-checkable cases and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from fasfinder.evaluation.metrics import auc, best_threshold, eer, kfold_accuracy, tar_at_far


def test_perfect_and_inverted_separation():
    same = np.array([1, 1, 1, 0, 0, 0], bool)
    s = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    assert auc(s, same) == 1.0 and eer(s, same) == 0.0 and tar_at_far(s, same, 1e-3) == 1.0
    assert auc(-s, same) == 0.0
    assert 0.3 < best_threshold(s, same) < 0.7


def test_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    same = rng.random(2000) < 0.5
    s = np.round(rng.normal(same * 1.5, 1.0), 1)  # many ties
    assert auc(s, same) == pytest.approx(roc_auc_score(same, s), abs=1e-12)


def test_eer_of_symmetric_gaussians():
    from scipy.stats import norm

    rng = np.random.default_rng(1)
    same = np.r_[np.ones(20000, bool), np.zeros(20000, bool)]
    s = np.r_[rng.normal(1, 1, 20000), rng.normal(-1, 1, 20000)]
    assert eer(s, same) == pytest.approx(norm.cdf(-1), abs=0.01)


def test_kfold_uses_held_out_thresholds():
    rng = np.random.default_rng(2)
    same = rng.random(6000) < 0.5
    s = rng.normal(same * 3.0, 1.0)
    mean, sem, folds = kfold_accuracy(s, same, np.repeat(np.arange(10), 600))
    assert len(folds) == 10 and 0.9 < mean < 0.97 and 0 < sem < 0.01
