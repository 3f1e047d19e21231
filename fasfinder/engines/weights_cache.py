"""Converted weights in the user cache dir, checked like shipped ones.

A model converted from a shipped weights file (dlib's .dat -> a PyTorch state dict) is cached in the
user cache dir, which anyone who can write the user's files can change. Each load recomputes the
cached tensors' sha256 (:func:`state_dict_digest`) and compares it with the model card's
``converted_state_dict.sha256`` (for the shipped source file) or, for other sources, with the digest
written beside the cache at conversion; a mismatch is logged and the cache rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from ..errors import ModelError
from ..modelfiles import load_card, sha256_file

log = logging.getLogger("fasfinder")


def state_dict_digest(sd: dict) -> str:
    """sha256 over a state dict's names, dtypes, shapes and tensor bytes (in name order): the same for
    every conversion of one .dat, whatever the file layout ``torch.save`` chose."""

    digest = hashlib.sha256()
    for name in sorted(sd):
        t = sd[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def _expected_digest(card_name: str, source_sha256: str) -> str | None:
    """The converted state dict's digest the model card records for this .dat (None if it records none)."""

    try:
        conv = load_card(card_name).get("converted_state_dict") or {}
    except ModelError:
        return None
    return conv.get("sha256") if conv.get("source_sha256") == source_sha256 else None


def cached_state_dict(path: Path, card_name: str, convert: Callable[[Path], dict]) -> dict:
    """``convert(path)`` (a state dict converted from the weights file ``path``), cached in the user
    cache dir keyed by the file's sha256.

    The cache is checked like a shipped weight file: its tensors' digest (:func:`state_dict_digest`)
    must equal the one the model card ``card_name`` records for this file, or, for a file the card does not know,
    the one recorded beside the cache file at conversion (``.pt.sha256``). A cache that fails the
    check is reported and rebuilt from the (verified) file, so tampering with it cannot change results.
    """

    import torch

    digest = sha256_file(path)
    expected = _expected_digest(card_name, digest)
    cache_file = None
    try:
        from ..settings import cache_dir

        cache_file = cache_dir() / f"{card_name}-{digest[:24]}.pt"
        if cache_file.is_file():
            sd = torch.load(cache_file, weights_only=True, map_location="cpu")
            sidecar = cache_file.with_name(cache_file.name + ".sha256")
            want = expected or (sidecar.read_text().strip() if sidecar.is_file() else None)
            if want is not None and state_dict_digest(sd) == want:
                return sd
            log.warning("converted weights %s fail their integrity check (sha256 of the tensors differs from "
                        "the one recorded at conversion); converting %s again", cache_file, path)
    except Exception as exc:  # a broken cache is rebuilt below
        log.debug("converted weights cache unusable: %s", exc)
    sd = convert(path)
    got = state_dict_digest(sd)
    if expected is not None and got != expected:
        raise ModelError(f"converting {path} gave tensors of sha256 {got[:12]}..., the card says {expected[:12]}... "
                         "(a converter bug or a different torch)", code="model_integrity")
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = cache_file.with_suffix(".tmp")
            torch.save(sd, tmp)
            side_tmp = cache_file.with_name(cache_file.name + ".sha256.tmp")
            side_tmp.write_text(got + "\n")
            side_tmp.replace(cache_file.with_name(cache_file.name + ".sha256"))
            tmp.replace(cache_file)
        except OSError:
            pass
    return sd
