"""Write explanations of one query image to a folder (``python main.py explain``).

For every face: the Grad-CAM++ heatmap of the recognition model (overlay PNG + NPY in image
coordinates), its region importance, the FAS model's heatmap and Area Importance when a
liveness model is installed, and, with a gallery, per-match maps for the top-K matches (query
side and gallery side, "what in this face made it match that one"). The service computes the
maps (``FasFinder.explain_to_folder``); this module only names and writes the files.

The files show faces: each is written owner-only (0600) into a folder that is owner-only (0700)
when this module creates it or finds it empty (a folder that already holds other files keeps its mode).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from .results import FaceResult, Heatmap, Match, MatchExplanation, overlay


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 (also when the file was there before)."""

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as fh:
        if hasattr(os, "fchmod"):
            os.fchmod(fh.fileno(), 0o600)
        fh.write(data)


def _png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="PNG")
    _write_private(path, buf.getvalue())


def _npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    _write_private(path, buf.getvalue())


def _round(d: dict) -> dict:
    return {k: (None if v != v else round(float(v), 5)) for k, v in d.items()}


class ExplanationWriter:
    """Files of one query's explanations in ``out_dir``; each method returns its part of the report."""

    def __init__(self, out_dir: Path):
        self.out = Path(out_dir)
        fresh = not self.out.exists() or (self.out.is_dir() and not any(self.out.iterdir()))
        self.out.mkdir(mode=0o700, parents=True, exist_ok=True)
        if fresh:
            os.chmod(self.out, 0o700)

    def _map(self, name: str, rgb: np.ndarray, heatmap: np.ndarray, npy: bool = True) -> str:
        if npy:
            _npy(self.out / f"{name}.npy", heatmap.astype(np.float32))
        _png(self.out / f"{name}.png", overlay(rgb, heatmap))
        return f"{name}.png"

    def face(self, fr: FaceResult, rgb: np.ndarray, exp: Heatmap) -> dict:
        stem = f"face{fr.index}"
        _npy(self.out / f"{stem}_heatmap.npy", exp.heatmap.astype(np.float32))
        _png(self.out / f"{stem}_overlay.png", overlay(rgb, exp.heatmap))
        return {"index": fr.index, "box": [int(v) for v in fr.box], "layer": exp.layer,
                "heatmap_png": f"{stem}_overlay.png", "heatmap_npy": f"{stem}_heatmap.npy",
                "region_importance": _round(exp.regions),
                "liveness": fr.liveness.to_dict() if fr.liveness is not None else None}

    def fas(self, fr: FaceResult, rgb: np.ndarray, exp: Heatmap) -> dict:
        stem = f"face{fr.index}"
        _npy(self.out / f"{stem}_fas_heatmap.npy", exp.heatmap.astype(np.float32))
        _png(self.out / f"{stem}_fas_overlay.png", overlay(rgb, exp.heatmap))
        return {"heatmap_png": f"{stem}_fas_overlay.png", "area_importance": _round(exp.regions)}

    def match(self, fr: FaceResult, m: Match, rgb: np.ndarray, crop: np.ndarray, exp: MatchExplanation) -> dict:
        stem = f"face{fr.index}_match{m.rank}"
        query_png = self._map(f"{stem}_query", rgb, exp.query.heatmap)
        gallery_png = self._map(f"{stem}_gallery", crop, exp.gallery.heatmap)
        return {**m.to_dict(), "query_png": query_png, "gallery_png": gallery_png,
                "query_region_importance": _round(exp.query.regions),
                "gallery_region_importance": _round(exp.gallery.regions)}

    def report(self, report: dict) -> Path:
        path = self.out / "explanation.json"
        _write_private(path, json.dumps(report, indent=2).encode("utf-8"))
        return path
