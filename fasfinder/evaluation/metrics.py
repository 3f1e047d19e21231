"""Verification metrics: ROC, AUC, EER, TAR@FAR and the LFW 10-fold accuracy protocol.

The ROC curve and its area come from scikit-learn (``sklearn.metrics.roc_curve`` / ``auc``); the
product's definitions on top of it are unchanged and give the same numbers as the hand-written
code they replace, bit for bit (``bench/metrics_numbers.py`` prints them):

* the curve keeps one point per distinct score (``drop_intermediate=False``: ties collapsed, no
  collinear points dropped) and starts at (0, 0) with threshold ``inf``;
* when one class is absent, its rate is 0 on the whole curve (sklearn answers NaN and warns);
* AUC is the trapezoid area under that full curve (``sklearn.metrics.auc``); ``roc_auc_score``
  integrates the thinned curve, which can differ in the last bits;
* EER interpolates linearly between the two ROC points around the FAR = FRR crossing, and TAR@FAR
  is the best TAR at FAR <= target (scikit-learn has neither);
* the LFW protocol (threshold from the other 9 folds at the midpoint between distinct scores) is
  this module's own.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning


def roc_curve(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far, tar, thresholds) for "accept when score >= threshold", thresholds descending."""

    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # one class absent: handled below
        far, tar, thr = skm.roc_curve(same, scores, pos_label=True, drop_intermediate=False)
    if not same.any():
        tar = np.zeros_like(tar)
    if same.all():
        far = np.zeros_like(far)
    return far, tar, thr


def auc(scores, same) -> float:
    far, tar, _ = roc_curve(scores, same)
    return float(skm.auc(far, tar))


def eer(scores, same) -> float:
    far, tar, _ = roc_curve(scores, same)
    frr = 1.0 - tar
    i = int(np.argmin(np.abs(far - frr)))
    # Linear interpolation between the two ROC points around the crossing.
    if i + 1 < len(far) and (far[i] - frr[i]) * (far[i + 1] - frr[i + 1]) < 0:
        d0, d1 = far[i] - frr[i], far[i + 1] - frr[i + 1]
        t = d0 / (d0 - d1)
        return float(far[i] + t * (far[i + 1] - far[i]))
    return float((far[i] + frr[i]) / 2.0)


def tar_at_far(scores, same, target_far: float) -> float:
    far, tar, _ = roc_curve(scores, same)
    ok = far <= target_far
    return float(tar[ok].max()) if ok.any() else 0.0


def best_threshold(scores, same) -> float:
    """Threshold maximising accuracy of "same when score >= t" (midpoint between distinct scores)."""

    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    s = np.unique(scores)
    cands = np.r_[s[0] - 1e-6, (s[:-1] + s[1:]) / 2.0, s[-1] + 1e-6]
    order = np.argsort(scores)
    ss, yy = scores[order], same[order]
    # accuracy(t) = (#same with score >= t + #diff with score < t) / n
    idx = np.searchsorted(ss, cands, side="left")
    same_below = np.r_[0, np.cumsum(yy)][idx]
    diff_below = np.r_[0, np.cumsum(~yy)][idx]
    correct = (yy.sum() - same_below) + diff_below
    return float(cands[int(np.argmax(correct))])


def kfold_accuracy(scores, same, folds) -> tuple[float, float, list[float]]:
    """LFW protocol: threshold from the other 9 folds, accuracy on the held-out fold.

    Returns (mean, standard error of the mean, per-fold accuracies).
    """

    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    folds = np.asarray(folds)
    accs = []
    for f in np.unique(folds):
        test = folds == f
        t = best_threshold(scores[~test], same[~test])
        accs.append(float(((scores[test] >= t) == same[test]).mean()))
    a = np.array(accs)
    sem = float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0
    return float(a.mean()), sem, accs


def verification_report(scores, same, folds) -> dict:
    acc, sem, per_fold = kfold_accuracy(scores, same, folds)
    return {
        "pairs": int(len(scores)),
        "accuracy": round(acc, 5),
        "accuracy_sem": round(sem, 5),
        "auc": round(auc(scores, same), 5),
        "eer": round(eer(scores, same), 5),
        "tar_at_far_1e-3": round(tar_at_far(scores, same, 1e-3), 5),
        "fold_accuracy": [round(x, 4) for x in per_fold],
    }


def macro_f1(y, p) -> float:
    """Mean over the classes present in ``y`` of each class's F1 (0 for a class never predicted right)."""

    y, p = np.asarray(y), np.asarray(p)
    classes = np.unique(y)
    f1 = []
    for c in classes:
        tp = np.sum((p == c) & (y == c))
        fp = np.sum((p == c) & (y != c))
        fn = np.sum((p != c) & (y == c))
        f1.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1))
