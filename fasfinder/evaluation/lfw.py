"""Protocol 2 of docs/BENCHMARKS.md: LFW View 2 verification (10 folds, AUC, EER, TAR@FAR=1e-3)."""

from __future__ import annotations

import numpy as np

from ..engines import DEFAULT_ENGINE, get_engine
from ..engines.base import combine_views
from .lfw_data import embed_lfw_images, read_pairs
from .metrics import verification_report


def select_pairs(lfw_dir, limit: int | None = None) -> list:
    """The pairs of View 2; with ``limit`` (smoke runs) the first limit/20 same and different
    pairs of every fold."""

    pairs = read_pairs(lfw_dir)
    if limit:
        k = max(1, limit // 20)
        pairs = [p for f in range(10) for same in (True, False)
                 for p in [q for q in pairs if q[3] == f and q[2] == same][:k]]
    return pairs


def prefill(lfw_dir, engines: list[str], *, limit: int | None = None, progress=None) -> None:
    """Embed every image of the selected pairs with several engines in one pass (each image is
    decoded once; shared work such as the Grad-CAM++ heatmap is done once). Protocols 2 and 3
    then read the caches."""

    paths = [p for a, b, _, _ in select_pairs(lfw_dir, limit) for p in (a, b)]
    embed_lfw_images(paths, [get_engine(e) for e in engines], progress=progress)


def evaluate_lfw(lfw_dir, *, engine: str | None = None, flip: bool = False, progress=None,
                 limit: int | None = None) -> dict:
    eng = get_engine(engine or DEFAULT_ENGINE)
    pairs = select_pairs(lfw_dir, limit)
    paths = [p for a, b, _, _ in pairs for p in (a, b)]
    cache = embed_lfw_images(paths, eng, progress=progress)

    def emb(p) -> np.ndarray:
        plain, mirror, _ = cache.data[str(p)]
        return combine_views(plain[None], mirror[None] if flip else None)[0]

    scores = np.array([float(emb(a) @ emb(b)) for a, b, _, _ in pairs])
    same = np.array([s for _, _, s, _ in pairs])
    folds = np.array([f for _, _, _, f in pairs])
    unique = {str(p) for p in paths}
    report = {"engine": eng.name, "flip": flip, "no_face": int(sum(cache.data[p][2] for p in unique)),
              "images": len(unique)}
    report.update(verification_report(scores, same, folds))
    return report
