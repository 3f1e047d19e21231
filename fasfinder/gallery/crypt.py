"""Encryption at rest: the gallery key, SQLCipher connections and AES-GCM for the index files.

A gallery is encrypted when it is opened with a key (``Gallery(path, key=...)``): a passphrase the
user gives (the service reads it from ``FASFINDER_GALLERY_KEY`` or a key file, never from the
settings). The key is never written anywhere.

* The SQLite file (and its ``-wal``): SQLCipher 4 (``sqlcipher3-binary``), ``PRAGMA key`` right after
  connect: AES-256 pages with an HMAC per page, the key derived by SQLCipher's PBKDF2-HMAC-SHA512
  with the random salt in the file's first 16 bytes.
* The FAISS index files: :class:`FileCipher`, AES-256-GCM (``cryptography``) over the whole plain
  index file (index.py's format), the key derived from the passphrase with scrypt and a random salt
  stored in the clear header, which is also the GCM associated data::

      b"FASENC1\\n" | 8-byte little-endian header length | header JSON (kdf, salt, nonce) | ciphertext+tag

A wrong key fails the page HMAC / the GCM tag: the gallery raises ``wrong_key`` (index files are
derived state and are rebuilt from the decrypted gallery if they ever fail).
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
from pathlib import Path

from sqlcipher3 import dbapi2 as sqlcipher

from ..errors import GalleryError

ENC_MAGIC = b"FASENC1\n"
SQLITE_MAGIC = b"SQLite format 3\x00"
#: scrypt cost (2**15, r=8: 32 MiB and about 0.1 s per derivation; derived keys are cached per salt).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1

#: Exceptions of either driver (plain galleries use the standard sqlite3 module, encrypted ones sqlcipher3).
DATABASE_ERRORS = (sqlite3.DatabaseError, sqlcipher.DatabaseError)
OPERATIONAL_ERRORS = (sqlite3.OperationalError, sqlcipher.OperationalError)


def check_key(key: str | None) -> str | None:
    """The key as given, None for no key; an empty key or one with a NUL is refused (``bad_argument``)."""

    if key is None:
        return None
    if not isinstance(key, str) or not key or "\x00" in key:
        raise GalleryError("the gallery key must be a non-empty text without NUL characters", code="bad_argument")
    return key


def file_kind(path: Path) -> str:
    """``missing``/``empty``, ``plain`` (an SQLite file) or ``other`` (SQLCipher, or not a database)."""

    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "other"
    if not head:
        return "empty"
    return "plain" if head == SQLITE_MAGIC else "other"


def looks_encrypted(path: Path) -> bool:
    """A SQLCipher file as far as can be told without the key: whole pages (a multiple of 512 bytes)
    whose first KiB looks random (a byte entropy of at least 7 bits; text or zeros are far below)."""

    import math
    from collections import Counter

    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return False
    if size < 1024 or size % 512:
        return False
    entropy = -sum(c / len(head) * math.log2(c / len(head)) for c in Counter(head).values())
    return entropy >= 7.0


def connect(target: str, key: str | None, *, uri: bool = False):
    """A connection of the driver for ``key`` (sqlite3 without, SQLCipher with ``PRAGMA key`` set)."""

    if key is None:
        conn = sqlite3.connect(target, timeout=30.0, check_same_thread=False, isolation_level=None, uri=uri)
        conn.row_factory = sqlite3.Row
        return conn
    conn = sqlcipher.connect(target, timeout=30.0, check_same_thread=False, isolation_level=None, uri=uri)
    conn.row_factory = sqlcipher.Row
    conn.execute("PRAGMA cipher_log_level = NONE")  # a wrong key is reported as a typed error, not logged raw
    conn.execute(f"PRAGMA key = {sql_text(key)}")
    conn.execute("PRAGMA temp_store = MEMORY")  # no temporary file outside the encrypted database
    return conn


def sql_text(text: str) -> str:
    """``text`` as an SQL string literal (PRAGMA and ATTACH ... KEY take no parameters)."""

    return "'" + text.replace("'", "''") + "'"


def open_error(path: Path, key: str | None, exc: Exception) -> GalleryError:
    """The typed error for a gallery file SQLite refused to open: locked, wrong key, or damaged."""

    kind = file_kind(path)
    if key is None and kind == "other" and looks_encrypted(path):
        return GalleryError(f"{path}: the gallery is encrypted (or is not a FASFinder gallery): give its key "
                            "(environment variable FASFINDER_GALLERY_KEY; the CLI also takes --key-file)",
                            code="gallery_locked")
    if key is not None and kind == "plain":
        return GalleryError(f"{path}: the gallery is not encrypted: open it without a key, or encrypt it first "
                            "(`main.py encrypt --db FILE`)", code="not_encrypted")
    if key is not None and kind == "other":
        return GalleryError(f"{path}: wrong key for this encrypted gallery (or not a FASFinder gallery)",
                            code="wrong_key")
    return GalleryError(f"{path}: not a FASFinder gallery or damaged ({exc})")


class WrongKey(Exception):
    """An encrypted index file whose tag does not verify under this key (wrong key or tampered)."""


class FileCipher:
    """AES-256-GCM for whole files, the key from a passphrase by scrypt (cached per salt)."""

    def __init__(self, passphrase: str):
        self._secret = passphrase.encode("utf-8")
        self._keys: dict[tuple, bytes] = {}
        self._salt = os.urandom(16)  # one salt per opened gallery: one scrypt derivation per process

    def _key(self, salt: bytes, n: int, r: int, p: int) -> bytes:
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        cache_key = (salt, n, r, p)
        if cache_key not in self._keys:
            self._keys[cache_key] = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(self._secret)
        return self._keys[cache_key]

    def encrypt(self, plain: bytes, magic: bytes = ENC_MAGIC) -> bytes:
        """``magic`` | header length | header | ciphertext+tag (the magic names the file kind)."""

        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        header = json.dumps({"alg": "AES-256-GCM", "kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                             "salt": self._salt.hex(), "nonce": nonce.hex()}, sort_keys=True).encode("utf-8")
        aad = magic + struct.pack("<Q", len(header)) + header
        key = self._key(self._salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        return aad + AESGCM(key).encrypt(nonce, bytes(plain), aad)

    def decrypt(self, blob: bytes, magic: bytes = ENC_MAGIC) -> bytes:
        """The plain bytes; ValueError for a file not in this format, :class:`WrongKey` when the tag fails."""

        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if blob[:len(magic)] != magic or len(blob) < len(magic) + 8:
            raise ValueError("not an encrypted FASFinder file")
        (hlen,) = struct.unpack("<Q", blob[len(magic):len(magic) + 8])
        if hlen > 1 << 16:
            raise ValueError("encrypted file header too long")
        start = len(magic) + 8
        header = json.loads(blob[start:start + hlen].decode("utf-8"))
        if header.get("alg") != "AES-256-GCM" or header.get("kdf") != "scrypt":
            raise ValueError("unknown encryption scheme")
        n, r, p = int(header["n"]), int(header["r"]), int(header["p"])
        if not (2 ** 10 <= n <= 2 ** 20 and 1 <= r <= 16 and 1 <= p <= 4):
            raise ValueError("scrypt parameters out of range")
        key = self._key(bytes.fromhex(header["salt"]), n, r, p)
        try:
            return AESGCM(key).decrypt(bytes.fromhex(header["nonce"]), blob[start + hlen:], blob[:start + hlen])
        except InvalidTag as exc:
            raise WrongKey("the index file does not decrypt with this key") from exc


def is_encrypted(blob: bytes) -> bool:
    return blob[:len(ENC_MAGIC)] == ENC_MAGIC
