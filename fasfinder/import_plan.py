"""What importing a folder will create, before anything is written (the GUI's import dialog, issue 17).

:func:`plan_import` lists a folder (every entry, as :func:`expand_inputs` does for ``enroll``),
reads each file once (the same checks as enrolment: format, size, decodability; sha256 against the
gallery and the other files of the folder) and groups the good ones into the persons they will
become, in one of three :data:`MODES`:

* ``one`` -- every photo is one person (``label``, default: the folder's name);
* ``subfolders`` -- one person per first-level sub-folder (photos directly in the folder go to
  ``label`` / the folder's name);
* ``unknowns`` -- each photo its own unknown person, ``Unknown <file name>``.

Labels made from names read underscores as spaces (``Anna_Berg`` -> ``Anna Berg``). A person
that already exists is marked (its photos are added to it: "import into an existing person").
Files that would be refused are listed in ``skipped`` with the typed error's code and message.
No face detection here (that is the import itself, whose per-file results name what else fails).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import BadArgument, FasFinderError, check_label
from .imaging import load_image
from .operations import CancelToken, Progress

MODES = ("one", "subfolders", "unknowns")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


def expand_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, plus every entry found recursively in folders (sorted).

    Nothing found in a folder is dropped silently: every file is returned whatever its suffix, and so
    are devices, symlinks and folders named like images (``x.jpg``); loading decides by content, so each
    gets one result (a ``.jfif`` JPEG is enrolled, a ``.heic`` or ``.svg`` is ``unsupported_format``, a
    device or a folder ``unreadable_image``: not a regular file). Other sub-folders are descended into.
    """

    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_symlink() or not f.is_dir() or f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


def nice_label(name: str) -> str:
    """A person label from a file or folder name: underscores as spaces, runs of spaces as one."""

    return " ".join(str(name).replace("_", " ").split())


def plan_import(folder: str | os.PathLike, mode: str = "one", *, label: str | None = None,
                case_id: str | None = None, metadata: dict | None = None, max_pixels: int | None = None,
                known: Callable[[str], int | None] = lambda _sha: None, existing: Iterable[str] = (),
                progress: Progress | None = None, cancel: CancelToken | None = None) -> dict:
    """The persons an import of ``folder`` in ``mode`` would create and the files it would skip.

    ``known(sha256)``: the gallery record already holding that content (or None); ``existing``: the
    labels in the gallery. Returns ``{"folder", "mode", "persons": [{"label", "files", "existing",
    "case_id", "metadata"}], "skipped": [{"path", "code", "message"}], "files"}``.
    """

    root = Path(folder)
    if mode not in MODES:
        raise BadArgument(f"unknown import mode {mode!r} (use one of {', '.join(MODES)})")
    if not root.is_dir():
        raise BadArgument(f"{root}: not a folder")
    base = nice_label(label) if label and label.strip() else nice_label(root.name) or "Unknown"
    existing = set(existing)
    files = expand_inputs([root])
    groups: dict[str, list[str]] = {}
    skipped: list[dict] = []
    seen: dict[str, str] = {}
    for i, f in enumerate(files):
        if cancel is not None:
            cancel.check()
        if progress:
            progress(i + 1, len(files), str(f))
        try:
            sha = load_image(f, max_pixels=max_pixels).sha256
        except FasFinderError as exc:
            skipped.append({"path": str(f), "code": exc.code, "message": str(exc)})
            continue
        if sha in seen:
            skipped.append({"path": str(f), "code": "duplicate", "message": f"same content as {seen[sha]}"})
            continue
        seen[sha] = str(f)
        record = known(sha)
        if record is not None:
            skipped.append({"path": str(f), "code": "duplicate",
                            "message": f"already in the gallery (same content, record {record})"})
            continue
        parts = f.relative_to(root).parts
        if mode == "one":
            who = base
        elif mode == "subfolders":
            who = nice_label(parts[0]) if len(parts) > 1 else base
        else:
            who = f"Unknown {nice_label(f.stem)}"
            n = 2
            while who in groups or who in existing:
                who = f"Unknown {nice_label(f.stem)} ({n})"
                n += 1
        groups.setdefault(who, []).append(str(f))
    persons = []
    for who, paths in groups.items():
        try:
            check_label(who)
        except FasFinderError as exc:
            skipped.extend({"path": p, "code": exc.code, "message": f"label {who!r}: {exc}"} for p in paths)
            continue
        meta = dict(metadata or {})
        if mode == "unknowns":
            meta.setdefault("unknown", True)
        persons.append({"label": who, "files": paths, "existing": who in existing, "case_id": case_id or None,
                        "metadata": meta})
    return {"folder": str(root), "mode": mode, "persons": persons, "skipped": skipped, "files": len(files)}
