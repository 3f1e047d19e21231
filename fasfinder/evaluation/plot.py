"""A small line-plot renderer (OpenCV drawing, no Qt, no matplotlib) for evaluation curves.

``line_plot(path, series, ...)`` draws each series as a polyline with markers and optional
vertical error bars, axes with ticks, a title, axis labels and a legend, and writes a PNG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: BGR colours for series (a colour-blind-friendly set).
PALETTE = [(178, 114, 0), (0, 94, 213), (115, 158, 0), (167, 121, 204), (66, 228, 240), (233, 180, 86), (0, 0, 0),
           (128, 128, 128)]


@dataclass
class Series:
    label: str
    x: list[float]
    y: list[float]
    yerr: list[float] | None = None
    color: tuple[int, int, int] = (0, 0, 0)
    dashed: bool = False
    extra: dict = field(default_factory=dict)


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** np.floor(np.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = np.ceil(lo / step - 1e-9) * step
    return [float(round(t, 10)) + 0.0 for t in np.arange(start, hi + step * 1e-6, step)]


def _dashed_line(img, p0, p1, color, thickness, dash=8):
    p0, p1 = np.array(p0, float), np.array(p1, float)
    length = float(np.linalg.norm(p1 - p0))
    if length < 1:
        return
    import cv2

    n = max(1, int(length // dash))
    for k in range(0, n, 2):
        a = p0 + (p1 - p0) * (k / n)
        b = p0 + (p1 - p0) * (min(k + 1, n) / n)
        cv2.line(img, tuple(int(v) for v in a), tuple(int(v) for v in b), color, thickness, cv2.LINE_AA)


def line_plot(path: str | Path, series: list[Series], *, title: str = "", xlabel: str = "", ylabel: str = "",
              size: tuple[int, int] = (900, 600), ylim: tuple[float, float] | None = None) -> Path:
    import cv2

    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 80, 250, 50, 70
    pw, ph = w - left - right, h - top - bottom
    xs = [v for s in series for v in s.x]
    ys = [v for s in series for i, v in enumerate(s.y) if np.isfinite(v)]
    ys += [s.y[i] + sgn * s.yerr[i] for s in series if s.yerr for i in range(len(s.y)) for sgn in (-1, 1)
           if np.isfinite(s.y[i]) and np.isfinite(s.yerr[i])]
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    pad = 0.04 * (x1 - x0)
    x0, x1 = x0 - pad, x1 + pad
    if ylim is not None:
        y0, y1 = ylim
    else:
        y0, y1 = (min(ys), max(ys)) if ys else (0.0, 1.0)
        span = max(y1 - y0, 0.02)
        y0, y1 = max(0.0, y0 - 0.08 * span), min(1.0, y1 + 0.08 * span) if y1 <= 1.0 else y1 + 0.08 * span
        if y1 <= y0:
            y1 = y0 + 0.02

    def px(x, y):
        return (int(round(left + (x - x0) / (x1 - x0) * pw)), int(round(top + ph - (y - y0) / (y1 - y0) * ph)))

    font = cv2.FONT_HERSHEY_SIMPLEX
    grey, black = (210, 210, 210), (0, 0, 0)
    for t in _nice_ticks(y0, y1):
        if y0 <= t <= y1:
            _, yy = px(x0, t)
            cv2.line(img, (left, yy), (left + pw, yy), grey, 1)
            cv2.putText(img, f"{abs(t) if abs(t) < 1e-12 else t:g}", (8, yy + 5), font, 0.45, black, 1, cv2.LINE_AA)
    for t in sorted({round(v, 6) for v in xs}):
        xx, _ = px(t, y0)
        cv2.line(img, (xx, top + ph), (xx, top + ph + 5), black, 1)
        (tw, _), _ = cv2.getTextSize(f"{t:g}", font, 0.45, 1)
        cv2.putText(img, f"{t:g}", (xx - tw // 2, top + ph + 22), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (left + pw, top + ph), black, 1)
    cv2.putText(img, title, (left, 30), font, 0.6, black, 1, cv2.LINE_AA)
    cv2.putText(img, xlabel, (left + pw // 2 - 6 * len(xlabel) // 2, h - 18), font, 0.5, black, 1, cv2.LINE_AA)
    cv2.putText(img, ylabel, (8, top - 14), font, 0.5, black, 1, cv2.LINE_AA)
    for s in series:
        pts = [px(x, y) for x, y in zip(s.x, s.y) if np.isfinite(y)]
        for a, b in zip(pts, pts[1:]):
            if s.dashed:
                _dashed_line(img, a, b, s.color, 2)
            else:
                cv2.line(img, a, b, s.color, 2, cv2.LINE_AA)
        for i, (x, y) in enumerate(zip(s.x, s.y)):
            if not np.isfinite(y):
                continue
            c = px(x, y)
            if s.yerr and np.isfinite(s.yerr[i]) and s.yerr[i] > 0:
                lo, hi = px(x, y - s.yerr[i]), px(x, y + s.yerr[i])
                cv2.line(img, lo, hi, s.color, 1, cv2.LINE_AA)
                cv2.line(img, (c[0] - 4, lo[1]), (c[0] + 4, lo[1]), s.color, 1)
                cv2.line(img, (c[0] - 4, hi[1]), (c[0] + 4, hi[1]), s.color, 1)
            if s.dashed:
                cv2.rectangle(img, (c[0] - 3, c[1] - 3), (c[0] + 3, c[1] + 3), s.color, -1)
            else:
                cv2.circle(img, c, 4, s.color, -1, cv2.LINE_AA)
    ly = top + 10
    for s in series:
        lx = left + pw + 15
        if s.dashed:
            _dashed_line(img, (lx, ly), (lx + 30, ly), s.color, 2)
        else:
            cv2.line(img, (lx, ly), (lx + 30, ly), s.color, 2, cv2.LINE_AA)
        cv2.putText(img, s.label[:28], (lx + 38, ly + 5), font, 0.45, black, 1, cv2.LINE_AA)
        ly += 22
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OSError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())
    return path
