"""Signed export archives: one Ed25519 key pair per office, trusted by fingerprint.

Why this scheme. Archives move between two offices (say a police unit and a missing-persons
bureau) by USB stick or mail, with no server and no network in between. The hashes of
:mod:`fasfinder.gallery.transfer` only detect damage: whoever can edit the file can recompute
them. What a case worker needs to know is *which office wrote this file, and has it changed
since*. So:

* **One key pair per office** (per user config dir), created automatically on the first export or
  with ``python main.py keys init --name OFFICE``. The private key is a PEM file readable by its
  owner only (0600, in a 0700 folder); it never leaves the machine and needs no passphrase, so
  nothing gets in the way of a routine export. (Protecting it at rest is the job of the user
  account / disk encryption, like the gallery itself.)
* **The public key is one short line of text** (``fasfinder-ed25519 BASE64 NAME``) that can go in
  a mail or be read out over the phone; the other office adds it with
  ``python main.py keys trust FILE --name OFFICE`` and checks the **fingerprint** (32 hex digits
  in groups of four, the first 128 bits of the key's sha256) with the sender over a second channel
  -- the same habit as checking an SSH host key. ``keys list`` shows the own key and every trusted
  one; ``keys untrust NAME`` removes one (an office that lost its laptop).
* No certificate authority, expiry or revocation lists: two or three offices that know each other
  do not run a PKI, and a scheme they cannot run is a scheme they switch off. Ed25519 (the
  ``cryptography`` package) has small keys, deterministic signatures and no parameters to get
  wrong.

What is signed. The archive's ``manifest.json`` holds the sha256 of ``records.jsonl`` and of each
of its lines, and every record holds the sha256 of its crops and embeddings; so a signature over
the manifest covers the whole content. The signature (member ``signature.json``) signs the sha256
of the exact manifest bytes, prefixed with a context string, and names the signer's fingerprint
and office name. Relabelling a record and recomputing every hash changes the manifest and fails
the check.

Import. The signer must be the own office or a trusted key. Errors (``GalleryError`` codes):
``unsigned_archive`` (no signature member: an old archive, or the signature was stripped),
``untrusted_signer`` (a well-formed signature by a key not in the trusted list),
``bad_signature`` (a malformed signature, or one that does not verify for the trusted key it
names: the file was changed after it was signed). The user may accept the first two explicitly
(``allow_unsigned``; the import's audit row then says so); a bad signature is always refused,
because it is positive evidence of a change after signing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import socket
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import GalleryError
from ..settings import config_dir
from .stamp import now_iso

SCHEME = "ed25519"
SIGNATURE = "signature.json"  # archive member
PUBLIC_PREFIX = "fasfinder-ed25519"
CONTEXT = b"fasfinder-gallery-export-signature/v1\n"
PRIVATE_FILE = "office_ed25519.pem"
NAME_FILE = "office_name.txt"
TRUSTED_FILE = "trusted.json"
MAX_NAME = 100


def _error(msg: str, code: str) -> GalleryError:
    return GalleryError(msg, code=code)


def keys_dir() -> Path:
    """Where the office key and the trusted keys live (``<config dir>/keys``)."""

    return config_dir() / "keys"


def fingerprint(raw: bytes) -> str:
    """32 hex digits: the first 128 bits of the sha256 of the raw 32-byte public key."""

    return hashlib.sha256(raw).hexdigest()[:32]


def pretty(fp: str) -> str:
    """A fingerprint in groups of four, to read out over the phone."""

    return " ".join(fp[i:i + 4] for i in range(0, len(fp), 4))


def _clean_name(name: str | None) -> str:
    name = " ".join(str(name or "").split())[:MAX_NAME]
    return "".join(ch for ch in name if ch.isprintable())


def _raw(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_line(raw: bytes, name: str) -> str:
    return f"{PUBLIC_PREFIX} {base64.b64encode(raw).decode('ascii')} {_clean_name(name)}".rstrip()


def parse_public(text: str) -> tuple[bytes, str]:
    """``(raw key, name)`` from a public key line (the first ``fasfinder-ed25519`` line of ``text``)."""

    for line in str(text).splitlines():
        parts = line.strip().split(None, 2)
        if len(parts) >= 2 and parts[0] == PUBLIC_PREFIX:
            try:
                raw = base64.b64decode(parts[1].encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError, ValueError):
                raw = b""
            if len(raw) != 32:
                raise _error("not a valid FASFinder public key (the key is not 32 bytes of base64)", "key_invalid")
            return raw, _clean_name(parts[2] if len(parts) > 2 else "")
    raise _error(f"no '{PUBLIC_PREFIX} ...' line found: not a FASFinder public key", "key_invalid")


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(str(tmp), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _ensure_dir() -> Path:
    d = keys_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(d, 0o700)
    return d


def _load_private(create: bool) -> tuple[Ed25519PrivateKey | None, bool]:
    path = keys_dir() / PRIVATE_FILE
    try:
        if path.is_file():
            if path.stat().st_mode & 0o077:
                raise _error(f"{path}: the office's private key is readable by others; run chmod 600 on it",
                             "key_permissions")
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise _error(f"{path}: not an Ed25519 key", "key_invalid")
            return key, False
        if not create:
            return None, False
        _ensure_dir()
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        _write_private(path, pem)
        name_file = keys_dir() / NAME_FILE
        if not name_file.is_file():
            _write_private(name_file, _clean_name(socket.gethostname() or "office").encode("utf-8"), 0o644)
        return key, True
    except GalleryError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise _error(f"{path}: cannot read or create the office's signing key ({exc})", "key_error") from exc


def _own_name() -> str:
    try:
        return _clean_name((keys_dir() / NAME_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return ""


def _own_entry(key: Ed25519PrivateKey) -> dict:
    raw = _raw(key.public_key())
    name = _own_name()
    return {"name": name, "fingerprint": fingerprint(raw), "fingerprint_pretty": pretty(fingerprint(raw)),
            "public_key": public_line(raw, name), "own": True}


def init(name: str | None = None) -> dict:
    """The office key (created when missing, never replaced); ``name`` sets the office name."""

    key, created = _load_private(create=True)
    if name is not None and _clean_name(name):
        try:
            _write_private(keys_dir() / NAME_FILE, _clean_name(name).encode("utf-8"), 0o644)
        except OSError as exc:
            raise _error(f"cannot write the office name ({exc})", "key_error") from exc
    return dict(_own_entry(key), created=created, path=str(keys_dir() / PRIVATE_FILE))


def _load_trusted() -> dict:
    path = keys_dir() / TRUSTED_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _error(f"{path}: the trusted keys file is damaged ({exc})", "key_error") from exc
    if not isinstance(data, dict):
        raise _error(f"{path}: the trusted keys file is damaged", "key_error")
    return data


def _save_trusted(data: dict) -> None:
    try:
        _ensure_dir()
        _write_private(keys_dir() / TRUSTED_FILE, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))
    except OSError as exc:
        raise _error(f"cannot write the trusted keys ({exc})", "key_error") from exc


def trust(text: str, name: str | None = None) -> dict:
    """Add another office's public key (its line of text) to the trusted keys."""

    raw, line_name = parse_public(text)
    name = _clean_name(name) or line_name
    if not name:
        raise _error("a trusted key needs a name (the office it belongs to)", "bad_argument")
    fp = fingerprint(raw)
    data = _load_trusted()
    data[fp] = {"name": name, "public_key": base64.b64encode(raw).decode("ascii"), "added_at": now_iso()}
    _save_trusted(data)
    return {"name": name, "fingerprint": fp, "fingerprint_pretty": pretty(fp), "public_key": public_line(raw, name),
            "own": False, "added_at": data[fp]["added_at"]}


def untrust(who: str) -> int:
    """Remove the trusted keys with this name or fingerprint; how many went."""

    who_fp = str(who).replace(" ", "").lower()
    data = _load_trusted()
    keep = {fp: e for fp, e in data.items() if fp != who_fp and e.get("name") != who}
    if len(keep) != len(data):
        _save_trusted(keep)
    return len(data) - len(keep)


def list_keys() -> list[dict]:
    """The own key (when created) first, then every trusted key by name."""

    out = []
    key, _ = _load_private(create=False)
    if key is not None:
        out.append(_own_entry(key))
    for fp, e in sorted(_load_trusted().items(), key=lambda kv: (str(kv[1].get("name")), kv[0])):
        try:
            line = public_line(base64.b64decode(e["public_key"]), e.get("name", ""))
        except (KeyError, TypeError, ValueError, binascii.Error):
            line = None
        out.append({"name": e.get("name"), "fingerprint": fp, "fingerprint_pretty": pretty(fp), "public_key": line,
                    "own": False, "added_at": e.get("added_at")})
    return out


def _message(manifest_bytes: bytes) -> bytes:
    return CONTEXT + hashlib.sha256(manifest_bytes).hexdigest().encode("ascii")


def sign_manifest(manifest_bytes: bytes) -> tuple[bytes, dict]:
    """``(signature member bytes, signer)`` for these exact manifest bytes (creates the key if needed)."""

    key, _ = _load_private(create=True)
    own = _own_entry(key)
    sig = {"scheme": SCHEME, "signer": own["fingerprint"], "signer_name": own["name"],
           "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
           "signature": base64.b64encode(key.sign(_message(manifest_bytes))).decode("ascii")}
    return json.dumps(sig, indent=1, sort_keys=True).encode("utf-8"), {"fingerprint": own["fingerprint"],
                                                                        "name": own["name"]}


def _trusted_public(fp: str) -> tuple[bytes, str, bool] | None:
    key, _ = _load_private(create=False)
    if key is not None:
        own = _raw(key.public_key())
        if fingerprint(own) == fp:
            return own, _own_name(), True
    e = _load_trusted().get(fp)
    if e is None:
        return None
    try:
        return base64.b64decode(e["public_key"], validate=True), str(e.get("name") or ""), False
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None


def verify(manifest_bytes: bytes, signature_bytes: bytes | None, *, allow_unsigned: bool = False,
           where: str = "archive") -> dict:
    """Check an archive's signature; the verdict as a dict (for the import's stats and audit row).

    Raises ``GalleryError`` ``unsigned_archive`` / ``untrusted_signer`` (unless ``allow_unsigned``)
    or ``bad_signature`` (always).
    """

    if signature_bytes is None:
        if not allow_unsigned:
            raise _error(f"{where}: the archive is not signed (an old export, or its signature was removed); "
                         "import it only if you trust where it came from (--allow-unsigned)", "unsigned_archive")
        return {"status": "unsigned", "allowed_by_user": True}
    try:
        sig = json.loads(signature_bytes.decode("utf-8"))
        fp, name = str(sig["signer"]).lower(), _clean_name(sig.get("signer_name"))
        raw_sig = base64.b64decode(str(sig["signature"]).encode("ascii"), validate=True)
        if sig.get("scheme") != SCHEME or len(fp) != 32 or len(raw_sig) != 64:
            raise ValueError("unknown scheme or malformed fields")
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError,
            binascii.Error) as exc:
        raise _error(f"{where}: the archive's signature is malformed ({type(exc).__name__})", "bad_signature") from exc
    known = _trusted_public(fp)
    if known is None:
        if not allow_unsigned:
            raise _error(f"{where}: signed by a key that is not trusted here ({name or 'no name'}, fingerprint "
                         f"{pretty(fp)}); check the fingerprint with that office, then `keys trust`",
                         "untrusted_signer")
        return {"status": "untrusted_signer", "signer": fp, "signer_name": name, "allowed_by_user": True}
    raw, trusted_name, own = known
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(raw_sig, _message(manifest_bytes))
    except (InvalidSignature, ValueError) as exc:
        raise _error(f"{where}: the signature of {trusted_name or pretty(fp)} does not match the content "
                     "(changed after it was signed)", "bad_signature") from exc
    return {"status": "verified", "signer": fp, "signer_name": trusted_name, "own_key": own}
