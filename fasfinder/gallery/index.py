"""FAISS vector index for one engine: derived state, rebuilt or repaired from SQLite.

Two kinds, chosen by the gallery from its size (``Gallery.exact_max``):

* ``flat``: ``IndexIDMap2(IndexFlatIP)``, exact cosine search (default up to ``EXACT_MAX`` faces);
* ``ivf``: ``IndexIVFFlat`` (inner product) with ``nlist`` lists from :func:`pick_nlist` and
  ``nprobe`` from :func:`pick_nprobe`, parameters measured by ``bench/bench_gallery_scale.py`` on
  real dlib face embeddings (recall@5 >= 0.99 against exact search). IVF was chosen over HNSW
  because it supports removal by id (deleting a person must take their faces out of the index)
  and builds several times faster on a 2-core workstation; see docs/results/gallery.md.

On disk an index is one file written atomically (temporary file, fsync, ``os.replace``)::

    b"FASIDX1\\n" | 8-byte little-endian header length | header JSON | faiss.serialize_index bytes

The header holds the index kind, dimension, the identity of its gallery (``gallery_id``, the random
id in the gallery's meta table: an index beside a gallery it was not built for is rebuilt, see
vectors.py), the gallery generation (``gen``, a counter SQLite triggers bump on every change of the
embeddings table) the index reflects, and the sha256 of the payload. The index of an encrypted
gallery is this whole file encrypted with AES-256-GCM (crypt.py: ``FASENC1`` header, scrypt salt). A file whose checksum fails is never handed to FAISS (a damaged FAISS file can crash the
process instead of raising); it is rebuilt from SQLite instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np

from .crypt import FileCipher

MAGIC = b"FASIDX1\n"

#: Exact (Flat) search up to this many faces; above it IVF (overridable per gallery).
EXACT_MAX = 100_000

#: IVF nprobe per nlist, from bench/bench_gallery_scale.py on real dlib face embeddings (500 held-out
#: real LFW queries with a mate in the database; database = 9,045 real LFW/CelebA vectors + synthesised
#: ones, see docs/results/gallery.md): the smallest nprobe with recall@5 >= 0.99 plus one step of margin.
#: Measured on an idle machine (docs/results/gallery_scale_idle*.json): nlist 1024 @ 1e5: 48 -> 0.986,
#: 64 -> 0.995, 96 -> 0.998; nlist 4096 @ 1e6: 32 -> 0.990, 48 -> 0.994, 64 -> 0.995 (p99 1.2 ms),
#: 96 -> 0.997. (An earlier bench with only 682 real vectors had found 24 and 32 enough: too optimistic.)
#: Other nlists: not measured, set conservatively between and beyond these.
NPROBE_FOR_NLIST = {256: 48, 512: 64, 1024: 96, 2048: 96, 4096: 64, 8192: 128, 16384: 192, 32768: 256}


def pick_nlist(n: int) -> int:
    """About 4 * sqrt(n) lists, rounded to the nearest power of two in [256, 32768] (1e6 -> 4096)."""

    target = 4.0 * np.sqrt(max(n, 1))
    return int(min(32768, max(256, 2 ** int(round(np.log2(target))))))


def pick_nprobe(nlist: int) -> int:
    return NPROBE_FOR_NLIST.get(nlist, max(16, nlist // 128))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temp_files(path: Path) -> int:
    """Remove ``<index>.<pid>.tmp`` files left by processes that died mid-save."""

    removed = 0
    for tmp in path.parent.glob(path.name + ".*.tmp"):
        try:
            pid = int(tmp.name[len(path.name) + 1:-4])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            try:
                tmp.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def write_atomic(path: Path, parts) -> None:
    """Write ``parts`` (bytes-like) to ``path`` atomically: ``<path>.<pid>.tmp`` (0600), fsync,
    ``os.replace``, fsync of the folder."""

    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(str(tmp), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            for part in parts:
                fh.write(part)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            try:
                tmp.unlink()
            except OSError:
                pass


class VectorIndex:
    """Cosine search (inner product on L2-normalised vectors) keyed by SQLite face ids."""

    def __init__(self, dim: int, path: Path | None = None, *, kind: str = "flat", nlist: int | None = None):
        import faiss

        self.dim = int(dim)
        self.path = Path(path) if path else None
        self.kind = kind
        self.gen = -1  # gallery generation this index reflects (-1: unknown)
        self.gallery_id = ""  # identity of the gallery it was built for ("" : unknown / older file)
        self.trained_on = 0
        if kind == "flat":
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            self.nlist = 0
        elif kind == "ivf":
            self.nlist = int(nlist or 1024)
            quantizer = faiss.IndexFlatIP(self.dim)
            self._index = faiss.IndexIVFFlat(quantizer, self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
            self._index.own_fields = True
            quantizer.this.disown()
            self._index.nprobe = pick_nprobe(self.nlist)
        else:
            raise ValueError(f"unknown index kind {kind!r}")
        self.dirty = False

    # -- building ------------------------------------------------------------------------
    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray, *, kind: str = "flat", path: Path | None = None,
              nlist: int | None = None, train_max: int = 131072, seed: int = 1234) -> VectorIndex:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
        if kind == "ivf":
            nlist = nlist or pick_nlist(len(ids))
            if len(ids) < nlist * 4:  # too few to train: exact search is fast at this size anyway
                kind = "flat"
        idx = cls(dim, path, kind=kind, nlist=nlist)
        if kind == "ivf":
            idx.train(vectors, train_max=train_max, seed=seed)
        idx.add(ids, vectors)
        return idx

    def train(self, vectors: np.ndarray, *, train_max: int = 131072, seed: int = 1234) -> None:
        if self.kind != "ivf":
            return
        rng = np.random.default_rng(seed)
        sample = vectors if len(vectors) <= train_max else vectors[rng.choice(len(vectors), train_max, replace=False)]
        self._index.train(np.ascontiguousarray(sample, dtype=np.float32))
        self.trained_on = len(vectors)

    @property
    def nprobe(self) -> int:
        return int(self._index.nprobe) if self.kind == "ivf" else 0

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self.kind == "ivf":
            self._index.nprobe = int(value)

    # -- persistence ---------------------------------------------------------------------
    @classmethod
    def load(cls, dim: int, path: Path, cipher: FileCipher | None = None) -> VectorIndex | None:
        """The index saved at ``path``, or None when it is missing, damaged or of another size.

        With ``cipher`` (an encrypted gallery) only an encrypted file that decrypts is accepted; without
        one only a plain file (a file of the other kind is rebuilt from SQLite, like a damaged one).
        """

        import faiss

        path = Path(path)
        if not path.is_file():
            return None
        try:
            blob = path.read_bytes()
            if cipher is not None:
                blob = cipher.decrypt(blob)  # ValueError / WrongKey: rebuilt from the (decrypted) gallery
            if blob[:len(MAGIC)] != MAGIC:
                return None  # an older raw FAISS file, an encrypted one without the key, or garbage
            (hlen,) = struct.unpack("<Q", blob[len(MAGIC):len(MAGIC) + 8])
            if hlen > 1 << 20:
                return None
            start = len(MAGIC) + 8
            header = json.loads(blob[start:start + hlen].decode("utf-8"))
            payload = blob[start + hlen:]
            if len(payload) != header["payload_bytes"] or hashlib.sha256(payload).hexdigest() != header["sha256"]:
                return None
            if int(header["dim"]) != dim or header["kind"] not in ("flat", "ivf"):
                return None
            loaded = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        except Exception:  # any damage: the caller rebuilds from SQLite
            return None
        if loaded.d != dim:
            return None
        idx = cls.__new__(cls)
        idx.dim = dim
        idx.path = path
        idx.kind = header["kind"]
        idx.gen = int(header.get("gen", -1))
        idx.gallery_id = str(header.get("gallery_id") or "")
        idx.trained_on = int(header.get("trained_on", 0))
        idx.dirty = False
        idx._owner = loaded  # the deserialised object owns the C++ index: keep it alive with the downcast view
        if idx.kind == "flat":
            if not isinstance(loaded, faiss.IndexIDMap2):
                return None
            idx.nlist = 0
        else:
            loaded = faiss.downcast_index(loaded)
            if not isinstance(loaded, faiss.IndexIVFFlat):
                return None
            idx.nlist = int(loaded.nlist)
            # the measured table decides (an index saved under an older table would otherwise keep its nprobe)
            loaded.nprobe = pick_nprobe(idx.nlist)
        idx._index = loaded
        return idx

    def save(self, cipher: FileCipher | None = None) -> None:
        """Write atomically: ``<path>.<pid>.tmp``, fsync, ``os.replace``, fsync of the folder.

        With ``cipher`` the whole file is written encrypted (crypt.py's AES-GCM format)."""

        import faiss

        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = faiss.serialize_index(self._index)
        header = json.dumps({
            "kind": self.kind, "dim": self.dim, "gen": self.gen, "gallery_id": self.gallery_id, "ntotal": self.ntotal, "nlist": self.nlist,
            "nprobe": self.nprobe, "trained_on": self.trained_on, "payload_bytes": int(payload.nbytes),
            "sha256": hashlib.sha256(payload.data).hexdigest(),
        }, sort_keys=True).encode("utf-8")
        plain = [MAGIC, struct.pack("<Q", len(header)), header, payload.data]
        write_atomic(self.path, plain if cipher is None else [cipher.encrypt(b"".join(plain))])
        self.dirty = False

    def nbytes(self) -> int:
        import faiss

        return int(faiss.serialize_index(self._index).nbytes)

    # -- content -------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        import faiss

        if self.kind == "flat":
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        invlists = self._index.invlists
        parts = []
        for lst in range(self.nlist):
            n = invlists.list_size(lst)
            if n:
                parts.append(faiss.rev_swig_ptr(invlists.get_ids(lst), n).astype(np.int64))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) the index holds, ordered by id (for a content comparison with SQLite)."""

        import faiss

        if self.kind == "flat":
            ids = self.ids()
            vecs = faiss.downcast_index(self._index.index).reconstruct_n(0, self.ntotal) if len(ids) else \
                np.zeros((0, self.dim), np.float32)
        else:
            invlists = self._index.invlists
            id_parts, vec_parts = [], []
            for lst in range(self.nlist):
                n = invlists.list_size(lst)
                if n:
                    id_parts.append(faiss.rev_swig_ptr(invlists.get_ids(lst), n).astype(np.int64))
                    codes = faiss.rev_swig_ptr(invlists.get_codes(lst), n * invlists.code_size)
                    vec_parts.append(np.frombuffer(codes.tobytes(), np.float32).reshape(n, self.dim))
            ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int64)
            vecs = np.concatenate(vec_parts) if vec_parts else np.zeros((0, self.dim), np.float32)
        order = np.argsort(ids, kind="stable")
        return ids[order], np.asarray(vecs, np.float32).reshape(-1, self.dim)[order]

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vec = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        self._index.add_with_ids(vec, np.ascontiguousarray(ids, dtype=np.int64))
        self.dirty = True

    def remove(self, ids) -> int:
        import faiss

        ids = np.ascontiguousarray(np.fromiter((int(i) for i in ids), dtype=np.int64))
        if len(ids) == 0:
            return 0
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))))
        self.dirty = self.dirty or removed > 0
        return removed

    def reset(self) -> None:
        self._index.reset()
        self.dirty = True

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if self.ntotal == 0 or k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        sims, ids = self._index.search(q, min(k, self.ntotal))
        return sims, ids
