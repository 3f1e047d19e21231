"""Validation of what an export archive holds, before anything of it is decoded or written.

Limits on the zip directory (member count, uncompressed sizes, compression ratio: a zip bomb is
refused from the directory, before a byte is inflated), on engine names (installed ones, or
``[a-z0-9][a-z0-9-]{0,63}``, and at most MAX_UNKNOWN_ENGINES new unknown engines per archive) and
on every field of a record (type and range). Every failure is GalleryError code ``bad_archive``.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from ..errors import GalleryError


def bad_archive(msg: str) -> GalleryError:
    """A malformed field, an oversized or bomb-like member: the archive is refused, nothing written."""

    return GalleryError(msg, code="bad_archive")


# -- limits on what an archive may make the importer read or decode ----------------------------
#: Most members in an archive (it has three).
MAX_MEMBERS = 16
#: Most uncompressed bytes of the manifest, of one record line and of the whole archive.
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_RECORD_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = int(os.environ.get("FASFINDER_MAX_ARCHIVE_BYTES") or 16 * 1024 ** 3)
#: Largest uncompressed / compressed ratio of a member over 1 MiB (base64 JSON of JPEGs and floats
#: deflates ~1.4x; a zip bomb ~1000x).
MAX_RATIO = 100
#: Engine names: those installed, or this pattern; an archive may add at most this many engines
#: that are neither installed nor already in the gallery (each gets an index file).
ENGINE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
MAX_UNKNOWN_ENGINES = 2
MAX_DIM = 65536
MAX_SIDE = 1 << 20  # image width / height
MAX_FACES = 1000
MAX_TEXT = 4096
MAX_JSON = 1 << 20  # a metadata / provenance / liveness field, encoded


def _installed_engines() -> set[str]:
    try:
        from ..engines import engine_names

        return set(engine_names())
    except Exception:  # an engine module that fails to import installs nothing
        return set()


def check_text(v, what: str, *, optional: bool = False, limit: int = MAX_TEXT) -> str | None:
    if v is None and optional:
        return None
    if not isinstance(v, str) or len(v) > limit or "\x00" in v:
        raise bad_archive(f"{what} must be text of at most {limit} characters without NUL (got {type(v).__name__})")
    return v


def check_int(v, what: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise bad_archive(f"{what} must be an integer in [{lo}, {hi}]")
    return v


def check_num(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(float(v)):
        raise bad_archive(f"{what} must be a finite number")
    return float(v)


def check_json(v, what: str, kinds: tuple, *, optional: bool = True):
    if v is None and optional:
        return None
    if not isinstance(v, kinds) or len(json.dumps(v)) > MAX_JSON:
        raise bad_archive(f"{what} must be a {'/'.join(k.__name__ for k in kinds)} of at most {MAX_JSON} bytes")
    return v


def check_engine_names(engines, known: set[str], where: str) -> dict[str, int]:
    """The manifest's ``{engine: dim}``, each name installed or of ENGINE_NAME's form, each size sane,
    at most MAX_UNKNOWN_ENGINES neither installed nor in ``known`` (the target gallery's)."""

    if not isinstance(engines, dict) or len(engines) > 64:
        raise bad_archive(f"{where}: manifest 'engines' must map at most 64 engine names to sizes")
    installed = _installed_engines()
    out = {}
    for name, dim in engines.items():
        if not isinstance(name, str) or (name not in installed and not ENGINE_NAME.fullmatch(name)):
            raise bad_archive(f"{where}: engine name {name!r} is neither installed nor of the form [a-z0-9-] (64 at most)")
        out[name] = check_int(dim, f"{where}: size of engine {name}", 1, MAX_DIM)
    unknown = sorted(set(out) - installed - set(known))
    if len(unknown) > MAX_UNKNOWN_ENGINES:
        raise bad_archive(f"{where}: {len(unknown)} engines neither installed nor in the gallery ({', '.join(unknown[:5])}); "
                   f"at most {MAX_UNKNOWN_ENGINES} are accepted")
    return out


def check_members(zf: zipfile.ZipFile, path: Path, manifest_name: str) -> None:
    """Refuse bombs from the zip directory before reading a byte: member count, sizes, ratio."""

    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise bad_archive(f"{path}: {len(infos)} members (an export has 3)")
    total = 0
    for info in infos:
        size, packed = int(info.file_size), int(info.compress_size)
        limit = MAX_MANIFEST_BYTES if info.filename == manifest_name else MAX_TOTAL_BYTES
        if size < 0 or packed < 0 or size > limit:
            raise bad_archive(f"{path}: member {info.filename!r} is {size} bytes uncompressed (limit {limit})")
        if size > (1 << 20) and size > MAX_RATIO * max(packed, 1):
            raise bad_archive(f"{path}: member {info.filename!r} expands {size / max(packed, 1):.0f}x "
                       f"({packed} -> {size} bytes): refused as a decompression bomb")
        total += size
    if total > MAX_TOTAL_BYTES:
        raise bad_archive(f"{path}: {total} bytes uncompressed, over the {MAX_TOTAL_BYTES}-byte limit")
