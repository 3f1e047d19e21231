"""``eval ident --open-set`` (protocol 3b on LFW, the CelebA test half, FNIR by face quality) and
``eval identify-fit`` (the CelebA fits of fasfinder.identify): the command-line entry points."""

from __future__ import annotations

import numpy as np

from ..engines import DEFAULT_ENGINE, get_engine
from ..identify import IdentModel
from ..imaging import load_image
from ..quality import face_quality
from .ident_open import evaluate_lfw_open, open_set_report
from .lfw_data import DetectionCache

QUALITY_BINS = (0.0, 0.5, 0.8, 1.0001)


def quality_bins(paths, ok: np.ndarray, threshold: float, tag: str = "lfw") -> dict:
    """FNIR at the product threshold for mated probes binned by face quality (the pipeline's own
    detection of each probe, from the evaluation's detection cache)."""

    det = DetectionCache(tag)
    q, flags = [], []
    for p in paths:
        face, fallback = det.data[str(p)]
        fq = face_quality(load_image(p).pixels, face)
        q.append(fq.score)
        flags.append(set(fq.flags) | ({"no_face_found"} if fallback else set()))
    q = np.array(q)
    miss = ok < threshold
    rows = []
    for lo, hi in zip(QUALITY_BINS, QUALITY_BINS[1:]):
        m = (q >= lo) & (q < hi)
        rows.append({"quality": [lo, round(min(hi, 1.0), 2)], "mated": int(m.sum()),
                     "fnir": round(float(miss[m].mean()), 4) if m.any() else None})
    by_flag = {}
    for f in sorted(set().union(*flags)):
        m = np.array([f in fl for fl in flags])
        by_flag[f] = {"mated": int(m.sum()), "fnir": round(float(miss[m].mean()), 4)}
    clean = np.array([not fl for fl in flags])
    by_flag["none"] = {"mated": int(clean.sum()), "fnir": round(float(miss[clean].mean()), 4) if clean.any() else None}
    return {"bins": rows, "by_flag": by_flag, "median_quality": round(float(np.median(q)), 3)}


def confidence_check(model: IdentModel, s_m, mate, s_n, faces: int) -> dict:
    """ECE of the identification confidence on these searches (1:1 mated / non-mated, seeded), rank 1."""

    from .calibrate import ece
    from .identify_fit import _top_rows, candidate_rows

    rng = np.random.default_rng(2)
    n = min(len(s_m), len(s_n))
    km, kn = np.sort(rng.choice(len(s_m), n, replace=False)), np.sort(rng.choice(len(s_n), n, replace=False))
    _, y, rank = candidate_rows(s_m[km], mate[km], s_n[kn], faces)
    p = np.concatenate([model.confidence(row, faces) for row in _top_rows(s_m[km], s_n[kn])])
    top = rank == 1
    return {"probes": 2 * n, "gallery_faces": faces, "ece_rank1": round(ece(p[top], y[top]), 4),
            "ece_top5": round(ece(p, y), 4), "mean_confidence_rank1": round(float(p[top].mean()), 4),
            "rank1_is_person": round(float(y[top].mean()), 4)}


def celeba_test_open(engine, model: IdentModel) -> dict:
    """Protocol 3b's figures on the CelebA test half: its enrolled third of identities one photo each
    (like LFW's gallery), the rest of their photos mated probes, every photo of the never-enrolled
    third non-mated. The threshold is the card's procedure fitted on the fit half only (the card's
    own thresholds saw every identity)."""

    from .fpir_model import fit_tails, merge_duplicates, model_threshold
    from .identify_fit import halves, load_celeba, person_scores, scenario

    emb, ids, _ = load_celeba(engine)
    tids, _ = merge_duplicates(emb, ids)  # as the card's thresholds: duplicate identities count once
    fit, test = halves(ids)
    sc = scenario(ids, test, 1, np.random.default_rng(1), distractors=0)
    sm, sn = person_scores(emb, sc, model.fusion)
    keep = np.isin(ids, fit)
    t = model_threshold(fit_tails(emb[keep], tids[keep]), len(sc["gallery"]), model.fpir)
    rep = open_set_report(sm, sc["mate"], sn, t)
    out = {"engine": engine.name, "protocol": "3b", "data": "celeba test half", "gallery": int(len(sc["gallery"])),
           "persons": sc["persons"], "photos_per_person": 1, "images": int(len(ids)),
           "threshold_from": "tail model of the fit half"}
    out.update({k: v for k, v in rep.items() if not k.startswith("_")})
    return out, rep


def run_from_cli(args, progress=None) -> dict:
    if args.protocol == "identify-fit":
        from .identify_fit import fit_identify

        return fit_identify(engine=args.engine, write=args.write, reliability_png=args.plot, progress=progress,
                            cached_only=args.cached_only)
    eng = get_engine(args.engine or DEFAULT_ENGINE)
    out = evaluate_lfw_open(args.lfw, engine=eng.name, plot=None, progress=progress, cached_only=args.cached_only)
    rep, mated, scores = out.pop("_rep"), out.pop("_mated"), out.pop("_scores")
    model = IdentModel.from_card(eng.card())
    if model.weights:
        out["confidence_check"] = confidence_check(model, *scores)
    curves, points = {f"LFW {eng.name}": rep["_det"]}, {}
    if out.get("product_threshold") is not None:
        out["quality_fnir"] = quality_bins(mated, rep["_mated_ok"], out["product_threshold"])
        points["LFW"] = (out["product_fnir"], out["product_fpir"])
    try:
        out["celeba_test"], crep = celeba_test_open(eng, model)
        curves[f"CelebA test half {eng.name}"] = crep["_det"]
        if "product_fnir" in crep:
            points["CelebA"] = (crep["product_fnir"], crep["product_fpir"])
    except (OSError, ValueError, KeyError) as exc:  # CelebA absent or not embedded yet
        out["celeba_test"] = {"error": str(exc)}
    if args.plot:
        from .ident_open import det_plot

        det_plot(args.plot, curves, points)
        out["det_plot"] = args.plot
    return out
