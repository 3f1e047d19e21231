"""Line plots for evaluation curves, drawn with matplotlib's Agg renderer (no GUI backend, no Qt).

``line_plot(path, series, ...)`` draws each series as a line with markers (solid + circles, or
dashed + squares) and optional vertical error bars, the x ticks at the data's x values, a y grid,
a title, axis labels and a legend beside the axes, and writes a PNG. The figure is built on
:class:`matplotlib.figure.Figure` with :class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`,
so pyplot's global state and backend selection are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Series colours as 0-255 BGR triples (the order OpenCV code in this project uses; a
#: colour-blind-friendly set).
PALETTE = [(178, 114, 0), (0, 94, 213), (115, 158, 0), (167, 121, 204), (66, 228, 240), (233, 180, 86), (0, 0, 0),
           (128, 128, 128)]


@dataclass
class Series:
    label: str
    x: list[float]
    y: list[float]
    yerr: list[float] | None = None
    color: tuple[int, int, int] = (0, 0, 0)  # BGR, 0-255 (as PALETTE)
    dashed: bool = False
    extra: dict = field(default_factory=dict)


def _rgb(bgr: tuple[int, int, int]) -> tuple[float, float, float]:
    b, g, r = bgr
    return r / 255.0, g / 255.0, b / 255.0


def _limits(series: list[Series], ylim: tuple[float, float] | None) -> tuple[tuple[float, float], tuple[float, float]]:
    """x range padded by 4 %; y range over the points and error bars padded by 8 % (at least 0.02 wide),
    kept inside [0, 1] when the data are."""

    xs = [v for s in series for v in s.x]
    ys = [v for s in series for v in s.y if np.isfinite(v)]
    ys += [s.y[i] + sgn * s.yerr[i] for s in series if s.yerr for i in range(len(s.y)) for sgn in (-1, 1)
           if np.isfinite(s.y[i]) and np.isfinite(s.yerr[i])]
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    pad = 0.04 * (x1 - x0)
    x0, x1 = x0 - pad, x1 + pad
    if ylim is not None:
        return (x0, x1), (float(ylim[0]), float(ylim[1]))
    y0, y1 = (min(ys), max(ys)) if ys else (0.0, 1.0)
    span = max(y1 - y0, 0.02)
    y0, y1 = max(0.0, y0 - 0.08 * span), (min(1.0, y1 + 0.08 * span) if y1 <= 1.0 else y1 + 0.08 * span)
    if y1 <= y0:
        y1 = y0 + 0.02
    return (x0, x1), (y0, y1)


def line_plot(path: str | Path, series: list[Series], *, title: str = "", xlabel: str = "", ylabel: str = "",
              size: tuple[int, int] = (900, 600), ylim: tuple[float, float] | None = None) -> Path:
    """Write a PNG of ``size`` pixels (width, height) with one line per series; returns the path."""

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    w, h = size
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    # the same margins as before: 80 px left, 250 px right (legend), 50 px top, 70 px bottom
    fig.subplots_adjust(left=80 / w, right=1 - 250 / w, top=1 - 50 / h, bottom=70 / h)
    ax = fig.add_subplot()
    for s in series:
        ok = [i for i, v in enumerate(s.y) if np.isfinite(v)]
        x = [s.x[i] for i in ok]
        y = [s.y[i] for i in ok]
        colour = _rgb(s.color)
        ax.plot(x, y, color=colour, linewidth=2, linestyle=(0, (4, 3)) if s.dashed else "-",
                marker="s" if s.dashed else "o", markersize=6, label=s.label[:28], zorder=3)
        if s.yerr:
            bars = [i for i in ok if np.isfinite(s.yerr[i]) and s.yerr[i] > 0]
            if bars:
                ax.errorbar([s.x[i] for i in bars], [s.y[i] for i in bars], yerr=[s.yerr[i] for i in bars],
                            fmt="none", ecolor=colour, elinewidth=1, capsize=4, zorder=2)
    (x0, x1), (y0, y1) = _limits(series, ylim)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ticks = sorted({round(v, 6) for s in series for v in s.x})
    if ticks:
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.grid(axis="y", color="#d2d2d2", linewidth=1)
    ax.set_axisbelow(True)
    ax.set_title(title, loc="left", fontsize=12)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if series:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False, fontsize=9,
                  handlelength=3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path
