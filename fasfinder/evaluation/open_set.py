"""Protocol 4 open set: LFW View 2 (protocol 2) with the second image of each pair perturbed.

AUC/EER over all pairs plus per-fold means and standard errors (error bars over the 10 folds),
10-fold accuracy. ``limit`` = the same pair selection as ``eval lfw --limit N``. Per-image
embeddings are cached per (engine, variant) in the user cache dir.
"""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path

import numpy as np

from .chip_models import ChipModel, chip_maps
from .robustness_conditions import ORIGINAL, Variant, perturb_chips
from .robustness_data import chip_cache_path, lfw_chips, log
from .robustness_rows import Rows, row_base


class EmbStore:
    """Per-image embeddings of one (engine, variant), ``.npz`` in the cache dir; resumable."""

    def __init__(self, model: ChipModel, v: Variant):
        tag = f"{model.name}@{model.fingerprint[:12] or 'nofp'}-{'flip' if model.flip else 'plain'}-{v.key}"
        self.path = chip_cache_path(f"lfw-emb/{tag}.npz")
        self.data: dict[str, np.ndarray] = {}
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    keys, emb = z["keys"], z["emb"]
                self.data = {str(k): emb[i] for i, k in enumerate(keys)}
            except (OSError, ValueError, KeyError):
                self.data = {}

    def save(self) -> None:
        if not self.data:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.data)
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=np.array(keys), emb=np.stack([self.data[k] for k in keys]))
        os.replace(tmp, self.path)


def fold_stats(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    from .metrics import auc, eer

    aucs = [auc(scores[folds == f], same[folds == f]) for f in np.unique(folds)]
    eers = [eer(scores[folds == f], same[folds == f]) for f in np.unique(folds)]

    def sem(x):
        return float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0

    return {"auc_fold_mean": round(float(np.mean(aucs)), 5), "auc_fold_sem": round(sem(aucs), 5),
            "eer_fold_mean": round(float(np.mean(eers)), 5), "eer_fold_sem": round(sem(eers), 5),
            "fold_auc": [round(a, 5) for a in aucs], "fold_eer": [round(e, 5) for e in eers]}


def run_open_set(models: list[ChipModel], lfw_dir: Path, variants: list[Variant], rows: Rows, *,
                 limit: int | None = None, batch: int = 128, timings: dict | None = None, progress=None) -> dict:
    from .lfw import select_pairs
    from .metrics import verification_report

    timings = timings if timings is not None else {}
    pairs = select_pairs(lfw_dir, limit)
    scope = f"lfw:{len(pairs)}:{zlib.crc32(repr([(str(a), str(b)) for a, b, _, _ in pairs]).encode()):08x}"
    first = [str(a) for a, _, _, _ in pairs]
    second = [str(b) for _, b, _, _ in pairs]
    same = np.array([s for _, _, s, _ in pairs])
    folds = np.array([f for _, _, _, f in pairs])
    todo_all = [(m, v) for v in variants for m in models
                if Rows.make_id("open", m, v, "normal", scope) not in rows]
    info = {"pairs": len(pairs), "images": len(set(first + second)), "scope": scope}
    if not todo_all:  # everything cached: the fallback count is in the rows
        info["no_face"] = next((r.get("no_face") for r in rows.rows.values()
                                if r["part"] == "open" and r.get("pairs") == len(pairs)), None)
        return info
    t = time.time()
    chips, no_face = lfw_chips(first + second, progress=progress)
    timings["lfw_chips_s"] = timings.get("lfw_chips_s", 0.0) + time.time() - t
    info["no_face"] = int(no_face)
    log(f"open set: {len(pairs)} pairs, {info['images']} images, {no_face} central-box fallbacks")

    clean = {}
    for v in variants:
        todo = [m for m in models if Rows.make_id("open", m, v, "normal", scope) not in rows]
        if not todo:
            continue
        log(f"open set {v.key}: {', '.join(m.name for m in todo)}")
        fresh = [m for m in todo if m.name not in clean]
        if fresh:
            clean.update(_embed_paths(fresh, ORIGINAL, list(dict.fromkeys(first + second)), chips, batch, timings))
        pert = clean if v == ORIGINAL else _embed_paths(todo, v, list(dict.fromkeys(second)), chips, batch, timings)
        for m in todo:
            e1 = np.stack([clean[m.name][p] for p in first])
            e2 = np.stack([pert[m.name][p] for p in second])
            scores = (e1 * e2).sum(1).astype(np.float64)
            rep = verification_report(scores, same, folds)
            row = row_base(m, v, "normal") | {"id": Rows.make_id("open", m, v, "normal", scope), "part": "open",
                                                "no_face": info["no_face"]} | rep | fold_stats(scores, same, folds)
            rows.add(row)
    return info


def _embed_paths(models: list[ChipModel], v: Variant, paths: list[str], chips: dict[str, np.ndarray], batch: int,
                 timings: dict) -> dict[str, dict[str, np.ndarray]]:
    """Embeddings of the chips of ``paths`` under ``v`` for every model (cached per model and variant)."""

    stores = {m.name: EmbStore(m, v) for m in models}
    missing = [p for p in paths if any(p not in stores[m.name].data for m in models)]
    keys = [str(Path(p).relative_to(Path(p).parents[1])) if len(Path(p).parents) > 1 else p for p in missing]
    for s in range(0, len(missing), batch):
        part = missing[s : s + batch]
        pchips = perturb_chips(np.stack([chips[p] for p in part]), v, keys[s : s + batch])
        need = [m for m in models if any(p not in stores[m.name].data for p in part)]
        maps = None
        if any(m.uses_maps for m in need):
            t = time.time()
            maps = chip_maps(pchips)
            timings["heatmap_s"] = timings.get("heatmap_s", 0.0) + time.time() - t
        for m in need:
            t = time.time()
            emb = m.embed(pchips, maps)
            timings[f"{m.name}_s"] = timings.get(f"{m.name}_s", 0.0) + time.time() - t
            stores[m.name].data.update(zip(part, emb))
            stores[m.name].save()
        log(f"  {v.key}: {min(s + batch, len(missing))}/{len(missing)} images")
    return {m.name: stores[m.name].data for m in models}
