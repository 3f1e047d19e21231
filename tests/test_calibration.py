"""Platt calibration recovers a known logistic link; calibration error is measured correctly."""

from __future__ import annotations

import numpy as np
import pytest

from fasfinder.evaluation.calibrate import brier, ece, fit_platt, make_pairs


def _reference_platt(s, y, iters=100):
    """The hand-written Newton fit (step halving) that fit_platt (now scikit-learn's) replaced."""

    s, y = np.asarray(s, np.float64), np.asarray(y, np.float64)
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    t = np.where(y > 0.5, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def nll(a, b):
        z = a * s + b
        return float(np.sum(np.logaddexp(0, z) - t * z))

    a, b = 10.0, -5.0
    f = nll(a, b)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a * s + b)))
        w = p * (1 - p)
        h = np.array([[np.sum(w * s * s), np.sum(w * s)], [np.sum(w * s), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, np.array([np.sum((p - t) * s), np.sum(p - t)]))
        lam = 1.0
        while lam > 1e-8:
            a2, b2 = a - lam * step[0], b - lam * step[1]
            f2 = nll(a2, b2)
            if f2 <= f:
                break
            lam /= 2
        else:
            break
        a, b, f = a2, b2, f2
        if np.abs(lam * step).max() < 1e-10:
            break
    return a, b


def test_fit_platt_recovers_known_parameters():
    rng = np.random.default_rng(0)
    s = rng.uniform(-0.2, 1.0, 20000)
    p = 1 / (1 + np.exp(-(12.0 * s - 6.0)))
    y = (rng.random(len(s)) < p).astype(float)
    a, b = fit_platt(s, y)
    assert a == pytest.approx(12.0, rel=0.08) and b == pytest.approx(-6.0, rel=0.08)
    assert ece(1 / (1 + np.exp(-(a * s + b))), y) < 0.02


@pytest.mark.parametrize("a0,b0,n,dtype", [(12.0, -6.0, 5000, np.float64), (90.0, -80.0, 5000, np.float32),
                                           (3.0, 0.5, 300, np.float64), (400.0, -300.0, 2000, np.float32)])
def test_fit_platt_matches_the_hand_written_fit(a0, b0, n, dtype):
    rng = np.random.default_rng(int(a0))
    s = rng.uniform(-0.2, 1.0, n).astype(dtype)  # cosines of float32 embeddings are float32
    y = (rng.random(n) < 1 / (1 + np.exp(-(a0 * s.astype(np.float64) + b0)))).astype(float)
    a, b = fit_platt(s, y)
    ra, rb = _reference_platt(s, y)
    assert abs(a - ra) < 1e-6 and abs(b - rb) < 1e-6


def test_separable_pairs_give_a_finite_slope():
    s = np.r_[np.linspace(0.6, 1.0, 50), np.linspace(-0.2, 0.4, 50)]
    y = np.r_[np.ones(50), np.zeros(50)]
    a, _ = fit_platt(s, y)
    assert 0 < a < 100 and abs(a - _reference_platt(s, y)[0]) < 1e-6


def test_ece_bins_are_closed_on_the_left():
    # 0.1 shares the bin [0.1, 0.2) with 0.15 (sklearn's calibration_curve would put it in (0, 0.1])
    assert ece(np.array([0.1, 0.15]), np.array([1.0, 0.0])) == pytest.approx(abs(0.125 - 0.5))
    assert ece(np.array([1.0, 0.95]), np.array([1.0, 0.0])) == pytest.approx(abs(0.975 - 0.5))  # 1.0: last bin


def test_brier_is_computed_in_float64():
    rng = np.random.default_rng(4)
    p = rng.random(5000).astype(np.float32)
    y = (rng.random(5000) < p).astype(float)
    assert brier(p, y) == float(np.mean((p.astype(np.float64) - y) ** 2))


def test_pairs_are_balanced_and_labelled():
    labels = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 4)
    pairs, y = make_pairs(labels, np.random.default_rng(0))
    assert y.sum() == (1 - y).sum() == 18
    assert all((labels[i] == labels[j]) == bool(t) for (i, j), t in zip(pairs, y))


def test_engine_confidence_uses_the_card(monkeypatch):
    from fasfinder.engines.base import Engine

    class Dummy(Engine):
        name = "dummy"

        def calibration(self):
            return {"a": 10.0, "b": -5.0}

    e = Dummy()
    assert e.confidence(0.5) == pytest.approx(0.5)
    assert e.confidence(0.9) > 0.98 and e.confidence(0.1) < 0.02
