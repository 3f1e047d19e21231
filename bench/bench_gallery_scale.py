"""Gallery scale bench: exact (Flat) vs approximate (IVF-Flat, HNSW) search at 1e5 / 1e6 faces.

Real embeddings: the LFW dlib-resnet cache the LFW eval fills
(``~/.cache/fasfinder/eval/lfw-dlib-resnet.npz``: ``plain`` and ``mirror`` per image, and the
matching ``.json`` list of paths). The product stores flip embeddings, so the real vector of an
image is normalise(plain + mirror).

Split: ``--queries`` real images (seeded choice among identities with >= 2 cached images, so a
true same-person neighbour usually exists in the database) are held out as queries; every other
real vector goes into the database as is.

Synthesis (to reach 1e5 / 1e6 from a few thousand real vectors): each synthetic vector is

    v = normalise(a * r_i + (1 - a) * r_j + s * L z),   a ~ U(a_low, 1),  z ~ N(0, I)

with r_i, r_j two distinct real database vectors (never a query), L the Cholesky factor of the
covariance of the real vectors (so the noise follows the real data's anisotropy), and ``s`` and
``a_low`` chosen by a grid search so that the distribution of nearest-neighbour cosine similarities of a
synthetic set the size of the real set matches that of the real set (Kolmogorov-Smirnov distance
reported), together with the distribution of cosines to the mean direction (how tight the dlib
"cone" is). Mixtures make new identities between real ones rather than noisy copies of them.

Recall@5: fraction of the exact top-5 (IndexFlatIP over the same database) found by the
approximate index's top-5, averaged over the held-out real queries. Latency: one query at a time
(``--latency-queries`` >= 200), faiss with 1 OpenMP thread (a single query does not parallelise
well and the workstation has 2 cores); builds and ground truth use ``--build-threads`` (2).

    python bench/bench_gallery_scale.py --sizes 100000 1000000 --out docs/results/gallery_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CACHE = Path.home() / ".cache" / "fasfinder" / "eval" / "lfw-dlib-resnet.npz"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def l2n(x):
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def load_real(paths: list[Path]):
    """Flip embeddings and identities from one or more caches (deduplicated by image path).

    Non-LFW paths (CelebA files sit in one folder) each count as their own identity: they only
    serve as real database vectors, never as queries with a known mate.
    """

    import shutil
    import tempfile

    vecs, idents, seen = [], [], set()
    for path in paths:
        if not path.is_file() or not path.with_suffix(".json").is_file():
            continue
        tmp = Path(tempfile.mkdtemp(prefix="fasbench-"))  # snapshot: the eval may rewrite the cache
        shutil.copy(path, tmp / "c.npz")
        shutil.copy(path.with_suffix(".json"), tmp / "c.json")
        d = np.load(tmp / "c.npz")
        meta = json.loads((tmp / "c.json").read_text())
        plist = meta["paths"] if isinstance(meta, dict) else meta
        n = min(len(d["plain"]), len(d["mirror"]), len(plist))
        v = l2n(d["plain"][:n] + d["mirror"][:n])
        for i in range(n):
            key = Path(plist[i]).name + Path(plist[i]).parent.name
            if key in seen or not np.all(np.isfinite(v[i])):
                continue
            seen.add(key)
            vecs.append(v[i])
            p = Path(plist[i])
            idents.append(p.parent.name if "lfw" in str(p) else f"single:{p.name}")
        shutil.rmtree(tmp, ignore_errors=True)
    return np.array(vecs, np.float32), np.array(idents)


def nn_sims(x: np.ndarray) -> np.ndarray:
    import faiss

    idx = faiss.IndexFlatIP(x.shape[1])
    idx.add(x)
    s, _ = idx.search(x, 2)
    return s[:, 1]


def ks(a, b) -> float:
    grid = np.sort(np.concatenate([a, b]))
    ca = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.max(np.abs(ca - cb)))


class Synth:
    def __init__(self, base: np.ndarray, seed: int):
        self.base = base
        cov = np.cov(base.T) + 1e-6 * np.eye(base.shape[1])
        self.chol = np.linalg.cholesky(cov).astype(np.float32)
        self.rng = np.random.default_rng(seed)
        self.s = 1.0
        self.a_low = 0.5

    def make(self, n: int, chunk: int = 200_000) -> np.ndarray:
        out = np.empty((n, self.base.shape[1]), np.float32)
        nb = len(self.base)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            i = self.rng.integers(0, nb, m)
            j = (i + self.rng.integers(1, nb, m)) % nb
            a = self.rng.uniform(self.a_low, 1.0, (m, 1)).astype(np.float32)
            z = self.rng.standard_normal((m, self.base.shape[1]), dtype=np.float32) @ self.chol.T
            out[start:start + m] = l2n(a * self.base[i] + (1 - a) * self.base[j] + self.s * z)
        return out


def calibrate(synth: Synth, real: np.ndarray) -> dict:
    target_nn = nn_sims(real)
    mean = l2n(real.mean(0, keepdims=True))[0]
    target_cone = real @ mean
    best = None
    for a_low in (0.5, 0.7, 0.85, 1.0):
        for s in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0):
            synth.s, synth.a_low = s, a_low
            x = synth.make(len(real))
            d_nn = ks(nn_sims(x), target_nn)
            d_cone = ks(x @ mean, target_cone)
            score = d_nn + d_cone
            if best is None or score < best["score"]:
                best = {"s": s, "a_low": a_low, "ks_nn": d_nn, "ks_cone": d_cone, "score": score}
    synth.s, synth.a_low = best["s"], best["a_low"]
    x = synth.make(len(real))
    sn = nn_sims(x)
    q = [0.05, 0.25, 0.5, 0.75, 0.95]
    best["nn_quantiles_real"] = [round(float(v), 4) for v in np.quantile(target_nn, q)]
    best["nn_quantiles_synth"] = [round(float(v), 4) for v in np.quantile(sn, q)]
    best["cone_quantiles_real"] = [round(float(v), 4) for v in np.quantile(target_cone, q)]
    best["cone_quantiles_synth"] = [round(float(v), 4) for v in np.quantile(x @ mean, q)]
    return best


def latency(index, queries: np.ndarray, k: int = 5) -> dict:
    times = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(q[None], k)
        times.append((time.perf_counter() - t0) * 1e3)
    t = np.array(times)
    return {"p50_ms": round(float(np.percentile(t, 50)), 3), "p99_ms": round(float(np.percentile(t, 99)), 3),
            "mean_ms": round(float(t.mean()), 3), "n": len(t)}


def recall_at(gt: np.ndarray, got: np.ndarray) -> float:
    hits = [len(set(a.tolist()) & set(b.tolist())) / len(a) for a, b in zip(gt, got)]
    return float(np.mean(hits))


def bench_size(n: int, db_real: np.ndarray, queries: np.ndarray, synth: Synth, args) -> dict:
    import faiss

    from fasfinder.gallery.index import VectorIndex, pick_nlist, pick_nprobe

    res = {"n": n, "real_in_db": int(min(len(db_real), n))}
    t0 = time.perf_counter()
    db = np.concatenate([db_real[:n], synth.make(max(0, n - len(db_real)))]) if n > len(db_real) else db_real[:n]
    ids = np.arange(len(db), dtype=np.int64)
    res["synth_s"] = round(time.perf_counter() - t0, 2)
    lat_q = queries[: args.latency_queries]

    # exact
    faiss.omp_set_num_threads(args.build_threads)
    r0 = rss_mb()
    t0 = time.perf_counter()
    flat = VectorIndex.build(db.shape[1], ids, db, kind="flat")
    build = time.perf_counter() - t0
    mem = rss_mb() - r0
    t0 = time.perf_counter()
    _, gt = flat.search(queries, 5)
    res["ground_truth_s"] = round(time.perf_counter() - t0, 2)
    faiss.omp_set_num_threads(1)
    res["flat"] = {"build_s": round(build, 2), "index_mb": round(db.nbytes / 2**20 + len(db) * 8 / 2**20, 1),
                   "rss_delta_mb": round(mem, 1), "latency": latency(flat, lat_q), "recall5": 1.0}
    del flat

    # IVF-Flat (the product's choice)
    faiss.omp_set_num_threads(args.build_threads)
    nlist = args.nlist or pick_nlist(n)
    r0 = rss_mb()
    t0 = time.perf_counter()
    ivf = VectorIndex(db.shape[1], kind="ivf", nlist=nlist)
    ivf.train(db)
    train_s = time.perf_counter() - t0
    ivf.add(ids, db)
    build = time.perf_counter() - t0
    mem = rss_mb() - r0
    faiss.omp_set_num_threads(1)
    sweep = []
    for nprobe in args.nprobes:
        if nprobe > nlist:
            continue
        ivf.nprobe = nprobe
        _, got = ivf.search(queries, 5)
        sweep.append({"nprobe": nprobe, "recall5": round(recall_at(gt, got), 4), "latency": latency(ivf, lat_q)})
        print(f"  n={n} ivf nlist={nlist} nprobe={nprobe}: recall@5={sweep[-1]['recall5']:.4f} "
              f"p50={sweep[-1]['latency']['p50_ms']} ms p99={sweep[-1]['latency']['p99_ms']} ms", flush=True)
    ok = [s for s in sweep if s["recall5"] >= 0.99]
    chosen = ok[0] if ok else sweep[-1]
    res["ivf"] = {"nlist": nlist, "train_s": round(train_s, 2), "build_s": round(build, 2),
                  "index_mb": round(ivf.nbytes() / 2**20, 1), "rss_delta_mb": round(mem, 1), "sweep": sweep,
                  "chosen": chosen, "product_nprobe": pick_nprobe(nlist)}
    del ivf

    # HNSW (comparison; no removal by id, which the gallery needs for deletes)
    if n <= args.hnsw_max:
        faiss.omp_set_num_threads(args.build_threads)
        r0 = rss_mb()
        t0 = time.perf_counter()
        h = faiss.IndexHNSWFlat(db.shape[1], args.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        h.hnsw.efConstruction = args.hnsw_efc
        h.add(db)
        build = time.perf_counter() - t0
        mem = rss_mb() - r0
        faiss.omp_set_num_threads(1)
        hs = []
        for ef in args.efs:
            h.hnsw.efSearch = ef
            _, got = h.search(queries, 5)
            hs.append({"efSearch": ef, "recall5": round(recall_at(gt, got), 4), "latency": latency(h, lat_q)})
            print(f"  n={n} hnsw M={args.hnsw_m} ef={ef}: recall@5={hs[-1]['recall5']:.4f} "
                  f"p50={hs[-1]['latency']['p50_ms']} ms", flush=True)
        res["hnsw"] = {"M": args.hnsw_m, "efConstruction": args.hnsw_efc, "build_s": round(build, 2),
                       "rss_delta_mb": round(mem, 1), "sweep": hs}
        del h
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", action="append", help="embedding cache .npz (repeatable); default: the LFW "
                    "dlib-resnet cache and, when present, the CelebA/LFW dlib-resnet-torch caches (the PyTorch port "
                    "of the same network, parity-tested)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--latency-queries", type=int, default=300)
    ap.add_argument("--nprobes", type=int, nargs="+", default=[8, 16, 24, 32, 48, 64, 96, 128])
    ap.add_argument("--efs", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--hnsw-max", type=int, default=100_000, help="bench HNSW up to this size (its build is slow)")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--hnsw-efc", type=int, default=80)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--nlist", type=int, help="IVF lists (default: the product's pick_nlist(n))")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    import faiss

    caches = [Path(c) for c in (args.cache or [CACHE, CACHE.with_name("lfw-dlib-resnet-torch.npz"),
                                                CACHE.with_name("celeba-dlib-resnet-torch.npz")])]
    real, ident = load_real(caches)
    rng = np.random.default_rng(args.seed)
    names, counts = np.unique(ident, return_counts=True)
    multi = set(names[counts >= 2])
    cand = np.array([i for i in range(len(real)) if ident[i] in multi])
    rng.shuffle(cand)
    # at most one query per identity first, then more if needed
    seen, q_idx = set(), []
    for i in cand:
        if ident[i] not in seen:
            q_idx.append(i)
            seen.add(ident[i])
    chosen = set(q_idx)
    rest = [i for i in cand if i not in chosen]
    others = [i for i in rng.permutation(len(real)) if i not in chosen and i not in set(rest)]
    q_idx = (q_idx + rest + others)[: args.queries]
    q_mask = np.zeros(len(real), bool)
    q_mask[q_idx] = True
    queries = real[q_mask]
    db_real = real[~q_mask]
    print(f"real embeddings: {len(real)} ({len(names)} identities); queries {len(queries)}, real in db {len(db_real)}",
          flush=True)
    synth = Synth(db_real, args.seed + 1)
    cal = calibrate(synth, db_real)
    print(f"synthesis: a_low={cal['a_low']} s={cal['s']} KS(nn)={cal['ks_nn']:.3f} KS(cone)={cal['ks_cone']:.3f}", flush=True)
    out = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "faiss": faiss.__version__,
                    "search_threads": 1, "build_threads": args.build_threads},
        "real": {"vectors": int(len(real)), "identities": int(len(names)), "queries": int(len(queries)),
                 "db_real": int(len(db_real)), "caches": [str(c) for c in caches if c.is_file()],
                 "queries_with_mate_in_db": int(sum(1 for i in q_idx if ident[i] in multi))},
        "synthesis": cal, "sizes": [],
    }
    for n in args.sizes:
        print(f"size {n} ...", flush=True)
        out["sizes"].append(bench_size(n, db_real, queries, synth, args))
        print(json.dumps(out["sizes"][-1]["flat"]), flush=True)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    text = json.dumps(out, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
