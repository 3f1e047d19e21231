"""Demo gallery for a fresh machine: skimage's astronaut plus a few LFW identities when present. No Qt."""

from __future__ import annotations

from pathlib import Path

from fasfinder.settings import data_dir

DEMO_ASTRONAUT = "demo: Eileen Collins"
LFW_IDENTITIES = 20
LFW_PER_IDENTITY = 2


def lfw_dir() -> Path | None:
    """``../shared/data/lfw/images_deepfunneled`` next to the repository, when it exists."""

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"
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


def seed_demo(service, identities: int = LFW_IDENTITIES, per_identity: int = LFW_PER_IDENTITY,
              folder: str | None = None, progress=None, cancel=None) -> list:
    """Enroll the demo persons through the service; returns the EnrollResults."""

    plan = demo_plan(identities, per_identity, Path(folder) if folder else None)
    total = sum(len(files) for _, files in plan)
    done = 0
    results = []
    for label, files in plan:
        for res in service.enroll(files, label=label, case_id="demo", metadata={"source": "demo"}, cancel=cancel):
            done += 1
            results.append(res)
            if progress:
                progress(done, total, f"{label}: {Path(res.path).name}")
        if cancel is not None and cancel.cancelled:
            break
    return results


def demo_query(folder: Path | None = None) -> Path:
    """A photo to search the demo gallery with: an LFW photo of a demo person that is not itself
    enrolled (their third image) when LFW is present, else the astronaut."""

    for label, files in demo_plan(folder=folder)[1:]:
        person = files[0].parent
        extra = sorted(person.glob("*.jpg"))[LFW_PER_IDENTITY:]
        if extra:
            return extra[0]
    return astronaut_png(folder)


def ensure_demo(gallery: str, settings=None, progress=None) -> Path:
    """Enroll the demo gallery into ``gallery`` when it holds no photo; return :func:`demo_query`."""

    from fasfinder.service import FasFinder

    ff = FasFinder(gallery, settings=settings)
    try:
        if ff.gallery.counts()["images"] == 0:
            seed_demo(ff, progress=progress)
    finally:
        ff.close()
    return demo_query()
