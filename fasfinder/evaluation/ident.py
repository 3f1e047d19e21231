"""Protocol 3 of docs/BENCHMARKS.md: closed-set identification on LFW (rank-1 / rank-5)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from ..engines import DEFAULT_ENGINE, get_engine
from ..engines.base import combine_views
from .lfw_data import embed_lfw_images, read_pairs


def split_gallery_probes(lfw_dir) -> tuple[list[Path], list[str], list[Path], list[str], int]:
    """Gallery (first image of each identity with >= 2 images, plus all single-image identities
    as distractors) and probes (all other images of gallery identities)."""

    images: dict[str, set[Path]] = defaultdict(set)
    for a, b, _, _ in read_pairs(lfw_dir):
        for p in (a, b):
            images[p.parent.name].add(p)
    gallery, g_labels, probes, p_labels = [], [], [], []
    identities = 0
    for name in sorted(images):
        files = sorted(images[name], key=lambda p: p.name)
        gallery.append(files[0])
        g_labels.append(name)
        if len(files) >= 2:
            identities += 1
            probes.extend(files[1:])
            p_labels.extend([name] * (len(files) - 1))
    return gallery, g_labels, probes, p_labels, identities


def evaluate_ident(lfw_dir, *, engine: str | None = None, flip: bool = True, progress=None) -> dict:
    import faiss

    eng = get_engine(engine or DEFAULT_ENGINE)
    gallery, g_labels, probes, p_labels, identities = split_gallery_probes(lfw_dir)
    cache = embed_lfw_images(gallery + probes, eng, progress=progress)

    def stack(paths):
        plain = np.stack([cache.data[str(p)][0] for p in paths])
        mirror = np.stack([cache.data[str(p)][1] for p in paths])
        return combine_views(plain, mirror if flip else None)

    g, q = stack(gallery), stack(probes)
    index = faiss.IndexFlatIP(g.shape[1])
    index.add(np.ascontiguousarray(g, np.float32))
    _, ids = index.search(np.ascontiguousarray(q, np.float32), 5)
    g_arr = np.array(g_labels)
    p_arr = np.array(p_labels)
    top = g_arr[ids]
    rank1 = float((top[:, 0] == p_arr).mean())
    rank5 = float((top == p_arr[:, None]).any(axis=1).mean())
    return {"engine": eng.name, "flip": flip, "gallery": len(gallery), "identities": identities,
            "probes": len(probes), "rank1": round(rank1, 5), "rank5": round(rank5, 5)}
