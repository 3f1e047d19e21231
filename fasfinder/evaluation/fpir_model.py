"""The open-set threshold as a model of FPIR(t, gallery size), fitted on CelebA impostor scores.

A non-mated search is a false positive when the best of the gallery's N *persons* reaches t. For one
probe i whose score against a random other person exceeds t with probability p_i(t), a gallery of N
random persons gives ``1 - (1 - p_i(t))^N``; FPIR is the mean over probes:

    FPIR(t, N) = mean_i [1 - (1 - p_i(t))^N]

Probes differ (some faces have look-alikes, most have none), and that spread, not a single pooled
pair rate, is what makes FPIR grow slower than ``1 - (1 - p(t))^N`` with the gallery. So p_i(t) is
kept per probe and empirical: the share of the *other identities* (each one draw, its photos sharing
it equally: a person is one draw, however many photos) whose random photo scores >= t. No parametric
tail: with CelebA's 244 identities FPIR 1 % is resolved up to a few thousand gallery persons (a probe
with one impostor photo above t already has p_i ~ 1e-4); past the data the grid is extrapolated.

Identities that share a near-identical photo (label noise: CelebA has 4 such pairs) are merged first
(:func:`merge_duplicates`): left apart, they set a floor under FPIR that no threshold below them passes.

The threshold for a stated FPIR and gallery size solves FPIR(t, N) = fpir (bisection).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DUPLICATE_COS = 0.975  # the floor seen in CelebA's impostor scores: 4 identity pairs share photos at 0.975-1.0


def _impostor_rows(emb: np.ndarray, ids: np.ndarray):
    """(probe index, its scores against every image, each image's weight): the weights put each
    *other* identity once (its photos share it equally) and the probe's own identity at 0."""

    lab, inv, counts = np.unique(ids, return_inverse=True, return_counts=True)
    if len(lab) < 3:
        raise ValueError("the threshold model needs at least 3 identities")
    base = 1.0 / counts[inv]
    for start in range(0, len(ids), 512):
        block = emb[start:start + 512] @ emb.T
        for k, row in enumerate(block):
            i = start + k
            w = base.copy()
            w[inv == inv[i]] = 0.0
            yield i, row, w / w.sum()


@dataclass
class TailModel:
    """Per probe its K highest impostor scores (``s``, probes x K, best first) and their weights
    (``w``: each other identity one draw, its photos sharing it): p_i(t) = the weight at or above t,
    exact while t is above the probe's K-th score."""

    s: np.ndarray
    w: np.ndarray

    def p(self, t: float) -> np.ndarray:
        """Each probe's chance that one random other person (one random photo) scores >= t."""

        return (self.w * (self.s >= t)).sum(axis=1)

    def events(self, t: float) -> int:
        """Probes with any impostor photo at or above t: the data behind FPIR(t, N)."""

        return int((self.s[:, 0] >= t).sum())


def fit_tails(emb: np.ndarray, ids: np.ndarray, keep: int = 256) -> TailModel:
    """The tail model of the images ``emb`` of identities ``ids`` (every image a probe)."""

    k = min(keep, len(ids) - 1)
    top_s, top_w = np.empty((len(ids), k)), np.empty((len(ids), k))
    for i, row, w in _impostor_rows(emb, ids):
        row = np.where(w > 0, row, -np.inf)
        idx = np.argpartition(-row, k - 1)[:k]
        idx = idx[np.argsort(-row[idx])]
        top_s[i], top_w[i] = row[idx], w[idx]
    return TailModel(s=top_s, w=top_w)


def model_fpir(model: TailModel, t: float, persons: int) -> float:
    """FPIR of threshold t for a gallery of ``persons`` random persons (one photo each)."""

    p = model.p(t)
    return float(np.mean(-np.expm1(persons * np.log1p(-np.minimum(p, 1 - 1e-15)))))


def model_threshold(model: TailModel, persons: int, fpir: float, lo: float = -1.0, hi: float = 1.0) -> float:
    """The t with FPIR(t, persons) = fpir (FPIR falls with t; bisection to 1e-6)."""

    for _ in range(50):
        mid = (lo + hi) / 2
        if model_fpir(model, mid, persons) > fpir:
            lo = mid
        else:
            hi = mid
    return hi


def measured_fpir(emb: np.ndarray, ids: np.ndarray, persons: int, thresholds, reps: int,
                  rng: np.random.Generator) -> dict:
    """Observed FPIR of each threshold on galleries of ``persons`` identities drawn from ``ids``
    (one random photo each); every image of the identities left out is a non-mated probe. Pooled
    over ``reps`` random draws (which identities are enrolled and which photo)."""

    lab, inv = np.unique(ids, return_inverse=True)
    if persons >= len(lab):
        raise ValueError(f"{persons} gallery persons need more than {len(lab)} identities")
    members = [np.where(inv == k)[0] for k in range(len(lab))]
    sims = emb @ emb.T
    thresholds = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    hits = np.zeros(len(thresholds))
    probes = 0
    per_rep = []
    for _ in range(reps):
        order = rng.permutation(len(lab))
        gallery = np.array([rng.choice(members[k]) for k in order[:persons]])
        non = np.concatenate([members[k] for k in order[persons:]])
        top = sims[np.ix_(non, gallery)].max(axis=1)
        h = (top[:, None] >= thresholds[None, :]).sum(axis=0)
        hits += h
        probes += len(non)
        per_rep.append(h / len(non))
    per_rep = np.array(per_rep)
    return {"fpir": (hits / probes).tolist(), "probes": int(probes), "reps": reps,
            "rep_p10": np.quantile(per_rep, 0.1, axis=0).tolist(), "rep_p90": np.quantile(per_rep, 0.9, axis=0).tolist()}


def person_exceedance(emb: np.ndarray, ids: np.ndarray, thresholds) -> np.ndarray:
    """Observed mean over probes of the chance that one random other person scores >= t (each
    identity one draw), for each threshold: what :meth:`TailModel.p` predicts on average."""

    thresholds = np.asarray(thresholds, dtype=np.float64)
    acc = np.zeros(len(thresholds))
    for _, row, w in _impostor_rows(emb, ids):
        acc += (w[None, :] * (row[None, :] >= thresholds[:, None])).sum(axis=1)
    return acc / len(ids)


def cross_validate(emb: np.ndarray, ids: np.ndarray, splits, sizes, fpir: float, reps: int, seed: int = 5) -> dict:
    """The threshold model fitted on one identity half and measured on the other, for each split
    ``(name, fit identities, test identities)``: stated vs observed FPIR at each gallery size, and the
    tail itself (predicted vs observed person exceedance on the test half at 1e-3 .. 1e-6)."""

    rows = []
    for name, fit, test in splits:
        fm, tm = np.isin(ids, fit), np.isin(ids, test)
        model = fit_tails(emb[fm], ids[fm])
        ths = [model_threshold(model, n, fpir) for n in sizes]
        checks = []
        for n, t in zip(sizes, ths):
            m = measured_fpir(emb[tm], ids[tm], n, [t], reps, np.random.default_rng(seed))
            checks.append({"gallery_persons": n, "threshold": round(t, 5), "observed_fpir": round(m["fpir"][0], 5),
                           "reps_p10_p90": [round(m["rep_p10"][0], 5), round(m["rep_p90"][0], 5)],
                           "probes": m["probes"]})
        levels = (1e-3, 1e-4, 1e-5, 1e-6)
        t_at = [_level_threshold(model, lv) for lv in levels]
        obs = person_exceedance(emb[tm], ids[tm], t_at)
        tail = [{"predicted": lv, "threshold": round(t, 5), "observed": float(f"{o:.3g}")} for lv, t, o in zip(levels, t_at, obs)]
        rows.append({"split": name, "fit_identities": int(len(fit)), "test_identities": int(len(test)),
                     "by_gallery": checks, "tail": tail})
    summary = []
    for k, n in enumerate(sizes):
        ratio = np.array([r["by_gallery"][k]["observed_fpir"] / fpir for r in rows])
        summary.append({"gallery_persons": n, "observed_over_stated_median": round(float(np.median(ratio)), 3),
                        "min": round(float(ratio.min()), 3), "max": round(float(ratio.max()), 3),
                        "within_factor_2": int(((ratio >= 0.5) & (ratio <= 2)).sum()), "splits": len(rows)})
    return {"splits": rows, "summary": summary, "reps_per_split": reps}


def _level_threshold(model: TailModel, level: float) -> float:
    lo, hi = -1.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if float(model.p(mid).mean()) > level:
            lo = mid
        else:
            hi = mid
    return hi


def merge_duplicates(emb: np.ndarray, ids: np.ndarray, cos: float = DUPLICATE_COS) -> tuple[np.ndarray, list]:
    """``ids`` with identities merged that share a near-identical photo (cosine >= ``cos`` across two
    labels: the same photo or person filed twice, CelebA label noise, not a look-alike), and the merged
    pairs. Left in, such pairs set a floor under FPIR that no threshold below them can pass."""

    out = ids.copy()
    merged = []
    for start in range(0, len(ids), 512):
        block = emb[start:start + 512] @ emb.T
        for k, row in enumerate(block):
            for j in np.where((row >= cos) & (out != out[start + k]))[0]:
                a, b = sorted((int(out[start + k]), int(out[j])))
                if a != b:  # an earlier merge in this row may have joined them already
                    out[out == b] = a
                    merged.append((a, b))
    return out, sorted(set(merged))
