"""Protocol 3b of docs/BENCHMARKS.md: open-set identification (is this person in the gallery at all?).

LFW (evaluation only): the identities of protocol 3 (>= 2 images) sorted by name; even 0-based index
enrolled (first image), odd never enrolled; every single-image identity a distractor. Mated probes:
the other images of enrolled identities; non-mated: every image of the never-enrolled ones. The
score is the top *person's* score (the product's fusion of its photos, here one photo each).

FNIR(t): a mated probe whose mate is not rank 1 at or above t; FPIR(t): a non-mated probe whose top
candidate is at or above t. The product's threshold comes from the engine's card (CelebA only).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from ..engines import DEFAULT_ENGINE, get_engine
from ..engines.base import combine_views
from ..identify import IdentModel, fuse_matrix
from .lfw_data import EmbeddingCache, embed_lfw_images, read_pairs

RANKS = 20


def threshold_at_fpir(nonmated_top: np.ndarray, fpir: float) -> float:
    """The lowest threshold whose FPIR (share of non-mated tops >= t) is at most ``fpir``."""

    u = np.sort(np.asarray(nonmated_top, dtype=np.float64))[::-1]
    k = int(np.floor(fpir * len(u)))
    return float(np.nextafter(u[k], np.inf)) if k < len(u) else float(u[-1])


def rates(mated_ok_score: np.ndarray, nonmated_top: np.ndarray, t: float) -> tuple[float, float]:
    """(FNIR, FPIR) at threshold t; ``mated_ok_score`` is the mate's score when it is rank 1, else -inf."""

    return float((mated_ok_score < t).mean()), float((nonmated_top >= t).mean())


def open_set_report(s_mated: np.ndarray, mate: np.ndarray, s_non: np.ndarray, product_threshold: float | None,
                    ranks: int = RANKS) -> dict:
    """Protocol 3b's figures from person-score matrices (probes x gallery persons)."""

    order = np.argsort(-s_mated, axis=1)
    mate_rank = np.argmax(order == mate[:, None], axis=1) + 1
    cmc = [float((mate_rank <= r).mean()) for r in range(1, ranks + 1)]
    ok = np.where(mate_rank == 1, s_mated[np.arange(len(mate)), mate], -np.inf)
    top_non = s_non.max(axis=1)
    out = {"mated": int(len(mate)), "nonmated": int(len(s_non)), "rank1": round(cmc[0], 5), "rank5": round(cmc[4], 5),
           "cmc": [round(c, 5) for c in cmc]}
    for f in (0.01, 0.1):
        t = threshold_at_fpir(top_non, f)
        fnir, fpir = rates(ok, top_non, t)
        out[f"fnir_at_fpir_{f}"] = round(fnir, 5)
        out[f"threshold_at_fpir_{f}"] = round(t, 5)
    if product_threshold is not None:
        fnir, fpir = rates(ok, top_non, product_threshold)
        out.update(product_threshold=round(product_threshold, 5), product_fnir=round(fnir, 5),
                   product_fpir=round(fpir, 5))
    grid = np.unique(np.r_[top_non, ok[np.isfinite(ok)]])
    det = [rates(ok, top_non, t) for t in grid[:: max(1, len(grid) // 400)]]
    out["_det"] = det
    out["_mated_ok"] = ok
    out["_nonmated_top"] = top_non
    return out


def det_plot(path, curves: dict, product_points: dict | None = None) -> None:
    """DET: FNIR against FPIR, log-log, one line per named curve; the product's operating point marked."""

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, det in curves.items():
        fnir, fpir = np.array(det).T
        keep = (fpir > 0) & (fnir > 0)
        ax.plot(fpir[keep], fnir[keep], label=name)
    for name, (fnir, fpir) in (product_points or {}).items():
        ax.plot([max(fpir, 1e-4)], [max(fnir, 1e-4)], "o", label=f"{name}: product threshold")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FPIR (non-mated probes with a candidate above threshold)")
    ax.set_ylabel("FNIR (mated probes whose mate is not rank 1 above it)")
    ax.axvline(0.01, color="grey", lw=0.6, ls=":")
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Open-set identification (protocol 3b)")
    fig.tight_layout()
    fig.savefig(str(path))


def lfw_split(lfw_dir, have=None):
    """(enrolled gallery paths, their names, distractors, mated probes, their names, non-mated probes).

    ``have``: keep only identities all of whose images are in it (the enrolled/never-enrolled rule still
    runs over every identity, so a partial run is a subset of the full protocol's split)."""

    images: dict[str, set[Path]] = defaultdict(set)
    for a, b, _, _ in read_pairs(lfw_dir):
        for p in (a, b):
            images[p.parent.name].add(p)
    multi = sorted(n for n in images if len(images[n]) >= 2)
    enrolled, names, mated, mated_names, nonmated = [], [], [], [], []
    for i, name in enumerate(multi):
        files = sorted(images[name], key=lambda p: p.name)
        if have is not None and not all(str(p) in have for p in files):
            continue
        if i % 2 == 0:
            enrolled.append(files[0])
            names.append(name)
            mated.extend(files[1:])
            mated_names.extend([name] * (len(files) - 1))
        else:
            nonmated.extend(files)
    distractors = [sorted(images[n], key=lambda p: p.name)[0] for n in sorted(images) if len(images[n]) == 1]
    if have is not None:
        distractors = [p for p in distractors if str(p) in have]
    return enrolled, names, distractors, mated, mated_names, nonmated


def evaluate_lfw_open(lfw_dir, *, engine: str | None = None, flip: bool = True, plot: str | None = None,
                      progress=None, cached_only: bool = False) -> dict:
    eng = get_engine(engine or DEFAULT_ENGINE)
    have = EmbeddingCache(eng.name, tag="lfw").data if cached_only else None
    enrolled, names, distractors, mated, mated_names, nonmated = lfw_split(lfw_dir, have)
    cache = embed_lfw_images(enrolled + distractors + mated + nonmated, eng, progress=progress)

    def stack(paths):
        plain = np.stack([cache.data[str(p)][0] for p in paths])
        mirror = np.stack([cache.data[str(p)][1] for p in paths])
        return combine_views(plain, mirror if flip else None)

    g = stack(enrolled + distractors)
    model = IdentModel.from_card(eng.card())
    person = np.arange(len(g))  # one photo per gallery person
    s_m = fuse_matrix(stack(mated) @ g.T, person, len(g), model.fusion)
    s_n = fuse_matrix(stack(nonmated) @ g.T, person, len(g), model.fusion)
    pos = {n: i for i, n in enumerate(names)}
    mate = np.array([pos[n] for n in mated_names])
    t = model.threshold(len(g))
    rep = open_set_report(s_m, mate, s_n, t)
    out = {"engine": eng.name, "protocol": "3b", "data": "lfw", "flip": flip, "gallery": len(g), "cached_only": cached_only,
           "enrolled": len(enrolled), "distractors": len(distractors), "fusion": model.fusion,
           "product_fpir_target": model.fpir if t is not None else None,
           "no_face": int(sum(cache.data[str(p)][2] for p in enrolled + distractors + mated + nonmated))}
    out.update({k: v for k, v in rep.items() if not k.startswith("_")})
    if plot:
        pts = {"LFW": (rep["product_fnir"], rep["product_fpir"])} if t is not None else None
        det_plot(plot, {f"LFW {eng.name}": rep["_det"]}, pts)
        out["det_plot"] = str(plot)
    out["_rep"] = rep
    out["_mated"] = mated
    out["_scores"] = (s_m, mate, s_n, len(g))
    return out
