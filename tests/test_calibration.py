"""Platt calibration recovers a known logistic link; calibration error is measured correctly."""

from __future__ import annotations

import numpy as np
import pytest

from fasfinder.evaluation.calibrate import ece, fit_platt, make_pairs


def test_fit_platt_recovers_known_parameters():
    rng = np.random.default_rng(0)
    s = rng.uniform(-0.2, 1.0, 20000)
    p = 1 / (1 + np.exp(-(12.0 * s - 6.0)))
    y = (rng.random(len(s)) < p).astype(float)
    a, b = fit_platt(s, y)
    assert a == pytest.approx(12.0, rel=0.08) and b == pytest.approx(-6.0, rel=0.08)
    assert ece(1 / (1 + np.exp(-(a * s + b))), y) < 0.02


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
