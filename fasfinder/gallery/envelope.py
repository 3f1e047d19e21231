"""The encrypted envelope of an export archive (encryption at rest for exports).

An encrypted export is the whole signed zip (records, manifest, signature; transfer.py) encrypted
with a passphrase the two offices share, by crypt.py's :class:`~fasfinder.gallery.crypt.FileCipher`
(AES-256-GCM, the key from the passphrase by scrypt with a random salt, a random nonce)::

    b"FASARC1\\n" | 8-byte little-endian header length | header JSON (kdf, salt, nonce) | ciphertext+tag

The magic names the file kind and the envelope version (1); magic, length and header are the GCM
associated data, so a changed byte anywhere fails the tag. The signature inside still says which
office made the archive; the passphrase keeps a lost USB stick unreadable.

The envelope is built and opened in memory (no plain copy of the zip ever reaches the disk); AES-GCM
takes at most 2**31 - 1 bytes at once, so an encrypted export holds at most :data:`MAX_PLAIN_BYTES`.
Errors (GalleryError): ``archive_locked`` (an envelope and no key), ``archive_wrong_key`` (the tag does
not verify: a wrong passphrase or a changed byte), ``bad_archive`` (a malformed or oversized envelope),
``archive_too_large`` (an export over the limit).
"""

from __future__ import annotations

import io
from pathlib import Path

from ..errors import GalleryError
from .archive_checks import MAX_TOTAL_BYTES, bad_archive
from .crypt import FileCipher, WrongKey, check_key

ARCHIVE_MAGIC = b"FASARC1\n"
#: AES-GCM's one-shot limit (cryptography: 2**31 - 1 bytes), less room for the header.
MAX_PLAIN_BYTES = (1 << 31) - 1 - (1 << 17)


def is_envelope(path: Path) -> bool:
    """Whether the file starts with the envelope's magic (a zip starts with ``PK``)."""

    try:
        with open(path, "rb") as fh:
            return fh.read(len(ARCHIVE_MAGIC)) == ARCHIVE_MAGIC
    except OSError:
        return False


def seal(plain: bytes, passphrase: str) -> bytes:
    """The envelope of ``plain`` (the zip's bytes) under ``passphrase``."""

    passphrase = check_key(passphrase)
    if len(plain) > MAX_PLAIN_BYTES:
        raise GalleryError(f"the export is {len(plain)} bytes: an encrypted export holds at most {MAX_PLAIN_BYTES} "
                           "bytes (export fewer persons or cases per file)", code="archive_too_large")
    return FileCipher(passphrase).encrypt(plain, magic=ARCHIVE_MAGIC)


def open_envelope(path: Path, passphrase: str | None) -> io.BytesIO:
    """The decrypted zip of the envelope at ``path``, in memory, its size checked before it is read."""

    if passphrase is None:
        raise GalleryError(f"{path}: the archive is encrypted: give its passphrase (--archive-key-file FILE or "
                           "$FASFINDER_ARCHIVE_KEY; without them the gallery key is tried)", code="archive_locked")
    passphrase = check_key(passphrase)
    size = path.stat().st_size
    limit = min(MAX_TOTAL_BYTES, MAX_PLAIN_BYTES + (1 << 17))
    if size > limit:  # the plain zip is as large as the ciphertext: the archive limits apply before reading
        raise bad_archive(f"{path}: encrypted archive of {size} bytes, over the {limit}-byte limit")
    blob = path.read_bytes()
    try:
        plain = FileCipher(passphrase).decrypt(blob, magic=ARCHIVE_MAGIC)
    except WrongKey as exc:
        raise GalleryError(f"{path}: the archive does not decrypt with this passphrase (wrong passphrase, or the "
                           "file was changed)", code="archive_wrong_key") from exc
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise bad_archive(f"{path}: malformed encrypted archive ({type(exc).__name__})") from exc
    return io.BytesIO(plain)
