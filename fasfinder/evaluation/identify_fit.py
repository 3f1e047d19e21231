"""Fit the open-set search on CelebA (never LFW): the person fusion, the FPIR 1 % threshold by gallery
size, the identification-confidence model; check them on CelebA identities never used for fitting.

Split (fixed rule): the CelebA identities sorted by number; even 0-based index = *fit* identities,
odd = *test* identities (used only for the checks). Within a half, identities sorted again and taken
by index mod 3: 0 = enrolled (first ``photos`` images by file name form one gallery person, the rest
are mated probes), 1 = never enrolled (every image a non-mated probe), 2 = distractors (every image
a one-photo gallery person), so galleries reach about a thousand faces.

The FPIR thresholds are the exception: fitted on every identity (a 1 % tail rests on look-alike
identity pairs, and a half has too few), their held-out check is the same fit on one identity half
measured on the other, for the fixed halves both ways and random rotations (``threshold_check``).
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np

from ..engines import DEFAULT_ENGINE, get_engine
from ..engines.base import combine_views
from ..identify import FUSIONS, confidence_features, fuse_matrix
from ..modelfiles import models_dir
from .calibrate import ece
from .celeba import DATA_ROOT, list_images
from .fpir_model import cross_validate, fit_tails, merge_duplicates, model_threshold
from .ident_open import open_set_report
from .lfw_data import EmbeddingCache, embed_images

#: both CelebA folders: celeba_extra's crops and celeba_subset's wild photos of the same 244 identities
SOURCES = ("celeba_extra", "celeba_subset")
CV_SIZES = (10, 30, 100)
# A threshold counts as measured while the probes with any impostor photo above it are at least twice
# what FPIR allows: nearer, the few probes with a near-identical impostor (CelebA has some) set a floor
# that no gallery size moves, and the grid is extrapolated in log N instead
FLOOR_MARGIN = 2  # gallery persons of the held-out threshold check (a half has about 122 identities)
GRID = (1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000, 1000000)


def load_celeba(engine, sources=SOURCES, flip: bool = True, progress=None,
                cached_only: bool = False):
    """Embeddings (flip TTA), identities and items of the CelebA images; ``cached_only``: only the
    images already in the embedding cache (a partial run, reported as such)."""

    items = sorted((it for it in list_images(DATA_ROOT) if it["source"] in sources), key=lambda it: it["path"])
    if cached_only:
        have = EmbeddingCache(engine.name, tag="celeba-all").data
        items = [it for it in items if it["path"] in have]
    cache = embed_images([it["path"] for it in items], engine, tag="celeba-all", progress=progress)
    plain = np.stack([cache.data[it["path"]][0] for it in items])
    mirror = np.stack([cache.data[it["path"]][1] for it in items])
    return combine_views(plain, mirror if flip else None), np.array([it["identity"] for it in items]), items


def halves(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = np.unique(ids)
    return u[0::2], u[1::2]


def scenario(ids: np.ndarray, half: np.ndarray, photos: int, rng: np.random.Generator,
             persons: int | None = None, distractors: int | None = None) -> dict:
    """Gallery photos (with their person index), mated probes (with their mate) and non-mated probes
    within one half; ``persons`` / ``distractors`` subsample enrolled persons and distractor images."""

    by = defaultdict(list)
    for i, lab in enumerate(ids):
        by[lab].append(i)
    groups = [sorted(half)[k::3] for k in range(3)]
    enrolled = list(groups[0])
    if persons is not None and persons < len(enrolled):
        enrolled = sorted(rng.choice(enrolled, persons, replace=False).tolist())
    left_out = [x for x in groups[0] if x not in set(enrolled)]
    g_idx, g_person, mated, mate = [], [], [], []
    for p, lab in enumerate(enrolled):
        imgs = by[lab]
        g_idx += imgs[:photos]
        g_person += [p] * len(imgs[:photos])
        mated += imgs[photos:]
        mate += [p] * len(imgs[photos:])
    d_imgs = [i for lab in groups[2] for i in by[lab]]
    if distractors is not None and distractors < len(d_imgs):
        d_imgs = sorted(rng.choice(d_imgs, distractors, replace=False).tolist())
    n_p = len(enrolled)
    g_idx += d_imgs
    g_person += list(range(n_p, n_p + len(d_imgs)))
    nonmated = [i for lab in list(groups[1]) + left_out for i in by[lab]]
    return {"gallery": np.array(g_idx), "person": np.array(g_person), "persons": n_p + len(d_imgs),
            "mated": np.array(mated), "mate": np.array(mate), "nonmated": np.array(nonmated)}


def balanced(sc: dict, rng: np.random.Generator) -> dict:
    """The scenario with as many mated as non-mated probes (a seeded subsample of the larger side): the
    identification confidence is fitted and checked for a 1:1 prior (half the searched faces enrolled)."""

    n = min(len(sc["mated"]), len(sc["nonmated"]))
    keep_m = np.sort(rng.choice(len(sc["mated"]), n, replace=False))
    keep_n = np.sort(rng.choice(len(sc["nonmated"]), n, replace=False))
    return dict(sc, mated=sc["mated"][keep_m], mate=sc["mate"][keep_m], nonmated=sc["nonmated"][keep_n])


def person_scores(emb, sc, fusion):
    g = emb[sc["gallery"]]
    return (fuse_matrix(emb[sc["mated"]] @ g.T, sc["person"], sc["persons"], fusion),
            fuse_matrix(emb[sc["nonmated"]] @ g.T, sc["person"], sc["persons"], fusion))


def candidate_rows(s_m, mate, s_n, faces: int, k: int = 5):
    """Confidence features and labels of the top-k candidates of every probe (mated and non-mated)."""

    X, y, rank = [], [], []
    for s, m in [(s_m, mate), (s_n, np.full(len(s_n), -1))]:
        top = np.argsort(-s, axis=1)[:, :k]
        for row, cand, who in zip(s, top, m):
            X.append(confidence_features(row[cand], faces))
            y.append(cand == who)
            rank.append(np.arange(1, len(cand) + 1))
    return np.concatenate(X), np.concatenate(y).astype(float), np.concatenate(rank)


def _top_rows(s_m, s_n, k: int = 5):
    """Each probe's top-k person scores, best first, in the order of :func:`candidate_rows`."""

    return [np.sort(row)[::-1][:k] for s in (s_m, s_n) for row in s]


def threshold_grid(emb, ids, identities, fpir: float) -> tuple[list[dict], object]:
    """Threshold for ``fpir`` at each gallery size of GRID from the tail model of the images of
    ``identities`` (:mod:`fasfinder.evaluation.fpir_model`; a gallery face counts as one person)."""

    keep = np.isin(ids, identities)
    model = fit_tails(emb[keep], ids[keep])
    rows = []
    for n in GRID:
        t = model_threshold(model, n, fpir)
        if model.events(t) >= FLOOR_MARGIN * fpir * len(model.s) or len(rows) < 2:
            rows.append({"gallery_faces": n, "threshold": t, "how": "measured", "probes_with_impostor_above": model.events(t)})
        else:  # too few probes reach t: extrapolate in log N from the last two resolved sizes
            a, b = rows[-2], rows[-1]
            slope = (b["threshold"] - a["threshold"]) / np.log10(b["gallery_faces"] / a["gallery_faces"])
            rows.append({"gallery_faces": n, "how": "extrapolated in log N",
                         "threshold": min(1.0, b["threshold"] + slope * np.log10(n / b["gallery_faces"]))})
            rows[-1]["from"] = b["gallery_faces"] if b["how"] == "measured" else b.get("from")
    for a, b in zip(rows, rows[1:]):  # a threshold never falls as the gallery grows
        b["threshold"] = max(b["threshold"], a["threshold"])
    return rows, model


def cv_splits(ids: np.ndarray, rotations: int, seed: int = 0) -> list:
    """The fixed halves both ways, then ``rotations`` random identity halves, as (name, fit, test)."""

    fit, test = halves(ids)
    u = np.unique(ids)
    out = [("even->odd", fit, test), ("odd->even", test, fit)]
    rng = np.random.default_rng(seed)
    for r in range(rotations):
        p = rng.permutation(u)
        out.append((f"random {r}", np.sort(p[: len(u) // 2]), np.sort(p[len(u) // 2:])))
    return out


def fit_identify(*, engine: str | None = None, photos: int = 2, fpir: float = 0.01, write: bool = False,
                 sources=SOURCES, progress=None, reliability_png: str | None = None,
                 cached_only: bool = False, rotations: int = 8, reps: int = 200) -> dict:
    from sklearn.linear_model import LogisticRegression

    eng = get_engine(engine or DEFAULT_ENGINE)
    emb, ids, items = load_celeba(eng, sources, progress=progress, cached_only=cached_only)
    # the thresholds only: identities sharing a near-identical photo count as one (fpir_model)
    tids, merged = merge_duplicates(emb, ids)
    fit_half, test_half = halves(ids)
    rng = np.random.default_rng(0)
    report = {"engine": eng.name, "images": len(ids), "identities": int(len(np.unique(ids))), "sources": list(sources),
              "cached_only": cached_only, "merged_for_thresholds": merged,
              "fit_identities": len(fit_half), "test_identities": len(test_half), "photos_per_person": photos}
    # 1. fusion, chosen on the fit half by FNIR at FPIR 1 % (then rank-1)
    sc = scenario(ids, fit_half, photos, rng)
    fusion_rows = {}
    for f in FUSIONS:
        sm, sn = person_scores(emb, sc, f)
        r = open_set_report(sm, sc["mate"], sn, None)
        fusion_rows[f] = {"rank1": r["rank1"], "rank5": r["rank5"], "fnir_at_fpir_0.01": r["fnir_at_fpir_0.01"],
                          "fnir_at_fpir_0.1": r["fnir_at_fpir_0.1"]}
    fusion = min(FUSIONS, key=lambda f: (fusion_rows[f]["fnir_at_fpir_0.01"], -fusion_rows[f]["rank1"]))
    report["fusion"] = {"chosen": fusion, "on": "fit half", "gallery_faces": int(len(sc["gallery"])),
                        "mated": int(len(sc["mated"])), "nonmated": int(len(sc["nonmated"])), "by_method": fusion_rows}
    # 2. thresholds by gallery size: the tail model of every identity; its held-out check is the same
    # fit on one identity half measured on the other (the fixed halves both ways + random rotations)
    grid, _ = threshold_grid(emb, tids, np.unique(tids), fpir)
    report["thresholds"] = grid
    report["threshold_check"] = cross_validate(emb, tids, cv_splits(tids, rotations), CV_SIZES, fpir, reps)
    # 3. confidence model: fit-half searches at several gallery sizes
    X, y, sizes = [], [], []
    for persons, distractors in ((5, 0), (20, 50), (None, 300), (None, None)):
        for ph in (1, photos):
            s = balanced(scenario(ids, fit_half, ph, rng, persons, distractors), rng)
            sm, sn = person_scores(emb, s, fusion)
            sizes.append(len(s["gallery"]))
            a, b, _ = candidate_rows(sm, s["mate"], sn, len(s["gallery"]))
            X.append(a)
            y.append(b)
    X, y = np.concatenate(X), np.concatenate(y)
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(X, y)
    weights = [float(v) for v in lr.coef_[0]] + [float(lr.intercept_[0])]
    report["confidence_model"] = {"features": ["person score", "margin to best other candidate", "log10 gallery faces", "top candidate"],
                                  "weights": [round(w, 5) for w in weights], "rows": int(len(y))}
    # 4. checks on the test half: calibration at three gallery sizes, rank-1/5 and FNIR
    from ..identify import IdentModel

    model = IdentModel(fusion=fusion, fpir=fpir, weights=weights, faces_range=(min(sizes), max(sizes)),
                       thresholds=[[r["gallery_faces"], r["threshold"]] for r in grid])
    checks, curves = [], {}
    for persons, distractors in ((10, 0), (None, 100), (None, None)):
        s = scenario(ids, test_half, photos, np.random.default_rng(1), persons, distractors)
        sm, sn = person_scores(emb, s, fusion)
        sb = balanced(s, np.random.default_rng(2))
        bm, bn = person_scores(emb, sb, fusion)
        Xt, yt, rank = candidate_rows(bm, sb["mate"], bn, len(s["gallery"]))
        p = np.concatenate([model.confidence(row, len(s["gallery"])) for row in _top_rows(bm, bn)])
        faces = int(len(s["gallery"]))
        r = open_set_report(sm, s["mate"], sn, None)  # the card's thresholds saw these identities: no product rates
        top = rank == 1
        checks.append({"gallery_faces": faces, "persons": s["persons"], "mated": int(len(s["mated"])),
                       "nonmated": int(len(s["nonmated"])), "calibration_probes": int(len(sb["mated"]) * 2), "ece_rank1": round(ece(p[top], yt[top]), 4),
                       "ece_top5": round(ece(p, yt), 4), "rank1": r["rank1"], "rank5": r["rank5"],
                       "fnir_at_fpir_0.01": r["fnir_at_fpir_0.01"], "fnir_at_fpir_0.1": r["fnir_at_fpir_0.1"]})
        curves[faces] = (p[top], yt[top])
    report["test_half"] = checks
    if reliability_png:
        reliability_plot(reliability_png, curves)
        report["reliability_png"] = reliability_png
    card_entry = {
        "open_set": {"fpir": fpir, "fusion": fusion, "threshold": round(model.threshold(1000), 5),
                     "threshold_note": "for a gallery of 1,000 faces; the product interpolates thresholds_by_gallery_faces "
                                       "(FPIR(t, N) = mean over probes of 1 - (1 - p_i(t))^N, N persons, one face each)",
                     "threshold_model": "per-probe empirical impostor exceedance over other identities (fasfinder.evaluation.fpir_model)",
                     "thresholds_by_gallery_faces": [[r["gallery_faces"], round(r["threshold"], 5)] for r in grid],
                     "data": f"thresholds: all {report['identities']} CelebA identity labels ({len(merged)} duplicate pairs merged); fusion and identification: "
                             f"the fit identities ({len(fit_half)}: even index by number); {'+'.join(sources)}; never LFW",
                     "command": f"python main.py eval identify-fit --engine {eng.name} --write"},
        "identification": {"model": "logistic", "features": report["confidence_model"]["features"],
                           "weights": [round(w, 6) for w in weights], "prior": "1:1 enrolled / not enrolled searched faces",
                           "gallery_faces_range": [min(sizes), max(sizes)],
                           "test_half_ece_rank1": [[c["gallery_faces"], c["ece_rank1"]] for c in checks]},
    }
    report["card"] = card_entry
    if write:
        names = [eng.card_name] + (["dlib-resnet"] if eng.card_name == "dlib-resnet-torch" else [])
        for name in names:
            path = models_dir() / f"{name}.card.json"
            card = json.loads(path.read_text())
            card.update(json.loads(json.dumps(card_entry)))
            card["open_set"]["fitted_with_engine"] = eng.name
            path.write_text(json.dumps(card, indent=2) + "\n")
        report["written_to"] = names
    return report


def reliability_plot(path, curves: dict, bins: int = 10) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="perfect")
    edges = np.linspace(0, 1, bins + 1)
    for faces, (p, y) in curves.items():
        idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
        xs = [p[idx == k].mean() for k in range(bins) if (idx == k).sum() >= 5]
        ys = [y[idx == k].mean() for k in range(bins) if (idx == k).sum() >= 5]
        ax.plot(xs, ys, "o-", label=f"{faces} gallery faces (ECE {ece(p, y):.3f})")
    ax.set_xlabel("identification confidence of the rank-1 candidate")
    ax.set_ylabel("share that were the person")
    ax.set_title("CelebA held-out identities: reliability")
    ax.legend(fontsize=7)
    ax.grid(True, lw=0.3)
    fig.tight_layout()
    fig.savefig(str(path))

