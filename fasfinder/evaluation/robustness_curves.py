"""Protocol 4 PNG curves: one figure per condition kind and part (closed set macro F1, LFW AUC),
Base (dashed) vs Heatmap (solid), one colour per backbone, error bars = std over occlusion positions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import perturb
from .chip_models import ChipModel
from .plot import PALETTE, Series, line_plot


def _identity_severity(kind: str) -> float:
    return 1.0 if kind == "brightness" else 0.0


def write_curves(out: Path, closed: list[dict], opened: list[dict], models: list[ChipModel]) -> list[str]:
    """``curve_{closed,open}_{kind}.png`` for each sweep kind with at least one series of 2+ severities
    (the original condition joins each curve at the kind's identity severity). Returns the written paths."""

    out = Path(out)
    backbones = list(dict.fromkeys(m.backbone for m in models if m.backbone))
    colour = {b: PALETTE[i % len(PALETTE)] for i, b in enumerate(backbones)}
    others = [m.name for m in models if not m.backbone]
    for i, n in enumerate(others):
        colour[n] = PALETTE[(len(backbones) + i) % len(PALETTE)]
    pngs = []
    for part, table, metric, label in (("closed", closed, "macro_f1", "macro F1 (closed set, CelebA val)"),
                                       ("open", opened, "auc", "AUC (LFW, 2nd image perturbed)")):
        for kind in perturb.SWEEPS:
            series = []
            for m in models:
                pts = {r["severity"]: r for r in table if r["engine"] == m.name and r["mode"] == "normal"
                       and r["kind"] == kind}
                orig = next((r for r in table if r["engine"] == m.name and r["mode"] == "normal" and r["kind"] == "none"), None)
                if len(pts) < 2:
                    continue
                xs = sorted(pts)
                ys = [pts[x][metric] for x in xs]
                es = [pts[x].get(f"{metric}_seed_std", 0.0) for x in xs]
                if orig is not None:
                    xs, ys, es = [_identity_severity(kind)] + xs, [orig[metric]] + ys, [0.0] + es
                    srt = np.argsort(xs)
                    xs, ys, es = [xs[j] for j in srt], [ys[j] for j in srt], [es[j] for j in srt]
                series.append(Series(m.name, xs, ys, es, colour[m.backbone or m.name], dashed=m.variant == "base"))
            if not series:
                continue
            xl = {"occlusion": "occluded fraction a (mean of 3 positions, bars = std)", "brightness": "brightness factor b",
                  "noise": "noise sigma s"}[kind]
            p = line_plot(out / f"curve_{part}_{kind}.png", series, title=f"{kind}: {label}", xlabel=xl, ylabel=metric)
            pngs.append(str(p))
    return pngs
