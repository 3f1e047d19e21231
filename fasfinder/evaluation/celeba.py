"""The CelebA split of docs/BENCHMARKS.md section 4, shared by the heatmap models' training and protocol 4.

Per identity of ``celeba_subset`` the first 6 images by file name train and the last 2 validate;
every ``celeba_extra`` crop of the same 244 identities trains. LFW is never read here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..modelfiles import repo_root

#: ``FASFINDER_DATA``, else ``../shared/data`` beside the repository
DATA_ROOT = Path(os.environ.get("FASFINDER_DATA") or repo_root().parent / "shared" / "data")


def _read_ids(path: Path) -> list[tuple[str, int]]:
    out = []
    for line in path.read_text().split("\n"):
        parts = line.split()
        if len(parts) == 2:
            out.append((parts[0], int(parts[1])))
    return out


def list_images(data_root: Path = DATA_ROOT) -> list[dict]:
    """Every training/validation image: ``{"path", "identity", "split", "source"}``."""

    subset = data_root / "celeba_subset"
    extra = data_root / "celeba_extra"
    by_id: dict[int, list[str]] = {}
    for name, ident in _read_ids(subset / "identity_CelebA_subset.txt"):
        by_id.setdefault(ident, []).append(name)
    items = []
    for ident, names in sorted(by_id.items()):
        names = sorted(names)
        for k, name in enumerate(names):
            split = "train" if k < len(names) - 2 else "val"
            items.append({"path": str(subset / "Celeb" / name), "identity": ident, "split": split, "source": "celeba_subset"})
    if (extra / "identity_CelebA_extra.txt").is_file():
        for name, ident in sorted(_read_ids(extra / "identity_CelebA_extra.txt")):
            if ident in by_id:
                items.append({"path": str(extra / "Celeb" / name), "identity": ident, "split": "train", "source": "celeba_extra"})
    return items
