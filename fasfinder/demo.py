"""What the demo gallery holds: skimage's astronaut plus a few LFW identities when present. No Qt.

The service enrolls it (``FasFinder.seed_demo`` / ``ensure_demo``); this module only plans it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .settings import data_dir

DEMO_ASTRONAUT = "demo: Eileen Collins"
LFW_IDENTITIES = 20
LFW_PER_IDENTITY = 2


def lfw_dir() -> Path | None:
    """``../shared/data/lfw/images_deepfunneled`` next to the repository (``$FASFINDER_DATA/lfw``
    when set, as the evaluations), when it exists."""

    data = os.environ.get("FASFINDER_DATA")
    root = Path(data) / "lfw" if data else Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"
    for cand in (root / "images_deepfunneled", root):
        if cand.is_dir() and any(p.is_dir() for p in cand.iterdir()):
            return cand
    return None


def astronaut_png(folder: Path | None = None) -> Path:
    import skimage.data
    from PIL import Image

    folder = Path(folder or data_dir() / "demo")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "astronaut.png"
    if not path.is_file():
        Image.fromarray(skimage.data.astronaut()).save(path)
    return path


def demo_plan(identities: int = LFW_IDENTITIES, per_identity: int = LFW_PER_IDENTITY,
              folder: Path | None = None) -> list[tuple[str, list[Path]]]:
    """(label, files) pairs: the astronaut, then LFW people with at least ``per_identity`` images."""

    plan = [(DEMO_ASTRONAUT, [astronaut_png(folder)])]
    lfw = lfw_dir()
    if lfw is not None and identities > 0:
        for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
            files = sorted(person.glob("*.jpg"))[:per_identity]
            if len(files) >= per_identity:
                plan.append((f"demo: {person.name.replace('_', ' ')}", files))
            if len(plan) > identities:
                break
    return plan


def demo_query(folder: Path | None = None) -> Path:
    """A photo to search the demo gallery with: an LFW photo of a demo person that is not itself
    enrolled (their third image) when LFW is present, else the astronaut."""

    for _label, files in demo_plan(folder=folder)[1:]:
        person = files[0].parent
        extra = sorted(person.glob("*.jpg"))[LFW_PER_IDENTITY:]
        if extra:
            return extra[0]
    return astronaut_png(folder)
