"""Write explanations of one query image to a folder (``python main.py explain``).

For every face: the Grad-CAM++ heatmap of the recognition model (overlay PNG + NPY in image
coordinates), its region importance, the FAS model's heatmap and Area Importance when a
liveness model is installed, and, with a gallery, per-match maps for the top-K matches (query
side and gallery side, "what in this face made it match that one").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import FasFinderError, ModelError


def _png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(path)


def _round(d: dict) -> dict:
    return {k: (None if v != v else round(float(v), 5)) for k, v in d.items()}


def write_explanations(ff, image_path, out_dir: Path, *, with_matches: bool, top_k: int = 5) -> dict:
    from .explain import explain_face, overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    result = ff.analyze(image_path, top_k=top_k, with_matches=with_matches, record=False)
    report = {"query": str(image_path), "out": str(out_dir), "error": result.error, "faces": []}
    if result.error:
        return report
    rgb = result.pixels
    image = ff.load(image_path)
    for fr in result.faces:
        stem = f"face{fr.index}"
        exp = explain_face(rgb, fr.face)
        np.save(out_dir / f"{stem}_heatmap.npy", exp.heatmap.astype(np.float32))
        _png(out_dir / f"{stem}_overlay.png", overlay(rgb, exp.heatmap))
        face_rep = {"index": fr.index, "box": [int(v) for v in fr.box], "layer": exp.layer,
                    "heatmap_png": f"{stem}_overlay.png", "heatmap_npy": f"{stem}_heatmap.npy",
                    "region_importance": _round(exp.regions),
                    "liveness": fr.liveness.to_dict() if fr.liveness is not None else None}
        model = ff.liveness_model()
        if model is not None:
            try:
                hm, regions = model.explain(rgb, fr.face)
                np.save(out_dir / f"{stem}_fas_heatmap.npy", hm.astype(np.float32))
                _png(out_dir / f"{stem}_fas_overlay.png", overlay(rgb, hm))
                face_rep["fas"] = {"heatmap_png": f"{stem}_fas_overlay.png", "area_importance": _round(regions)}
            except (FasFinderError, ModelError) as exc:
                face_rep["fas"] = {"error": exc.to_dict()}
        matches = []
        for m in fr.matches if with_matches else []:
            q_exp, g_exp, crop = ff.explain_match(image, fr.face, m.face_id)
            mstem = f"{stem}_match{m.rank}"
            _png(out_dir / f"{mstem}_query.png", overlay(rgb, q_exp.heatmap))
            _png(out_dir / f"{mstem}_gallery.png", overlay(crop, g_exp.heatmap))
            np.save(out_dir / f"{mstem}_query.npy", q_exp.heatmap.astype(np.float32))
            np.save(out_dir / f"{mstem}_gallery.npy", g_exp.heatmap.astype(np.float32))
            matches.append({**m.to_dict(), "query_png": f"{mstem}_query.png", "gallery_png": f"{mstem}_gallery.png",
                            "query_region_importance": _round(q_exp.regions),
                            "gallery_region_importance": _round(g_exp.regions)})
        face_rep["matches"] = matches
        report["faces"].append(face_rep)
    (out_dir / "explanation.json").write_text(json.dumps(report, indent=2))
    return report
