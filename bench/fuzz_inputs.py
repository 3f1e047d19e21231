"""Fuzz run (not CI): mutated JPEG/PNG files through load + detect + enroll.

Seeds: 128x128 crops around the astronaut's face (skimage.data.astronaut), saved as JPEG (quality
90, baseline and progressive) and PNG; the detector finds the face in every seed. Each of the
``--n`` inputs is one seed with one or more mutations (seeded): byte flips (1-32 random bytes),
truncation at a random length, header corruption (random bytes over the first 2-64 bytes),
zeroed ranges, duplicated/shuffled chunks, appended garbage, and combinations. One input in
``--shape-every`` (default 10) is instead a generated image of an extreme size (op ``shape:WxH``):
tiny (1-19 px sides), thin (aspect 100-20000, e.g. 4000x3, 30000x30, 30x65000), large (up to the
50 MP limit) or over the pixel limit (a decompression-bomb-like header), noise or flat grey, JPEG or PNG.

Every input goes through ``fasfinder.imaging.load_image`` and then ``FasFinder.enroll_one`` (which
loads again, runs ``FaceAnalyzer.detect`` - the same analyzer object - embeds with dlib-resnet, or
with ``--engine pixelhash`` the test-only engine of kill_test.py, and writes the gallery). Liveness and flip are switched off to keep the run short (they only run on
faces that decoded and were detected). Outcome per input: ``ok``, a typed error code
(FasFinderError), or ``crash`` (any other exception, an ``internal_error`` result - the service's
per-input boundary caught an untyped exception - or the worker process dying, e.g. a segfault
in a native decoder: a supervisor restarts the worker after the input that killed it).

    nohup python bench/fuzz_inputs.py --n 10000 --out docs/results/fuzz_inputs.json &
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def seeds() -> list[tuple[str, bytes]]:
    import cv2
    from PIL import Image
    from skimage import data

    a = data.astronaut()
    x0, y0, x1, y1 = 175, 76, 266, 167  # the detector's box of the astronaut's face
    cx, cy, h = (x0 + x1) // 2, (y0 + y1) // 2, (x1 - x0)
    out = []
    for scale in (1.0, 0.8, 1.2):
        hh = int(h * scale)
        crop = cv2.resize(a[max(0, cy - hh):cy + hh, max(0, cx - hh):cx + hh], (128, 128), interpolation=cv2.INTER_AREA)
        for fmt, kw in (("JPEG", {"quality": 90}), ("JPEG", {"quality": 75, "progressive": True}), ("PNG", {})):
            buf = io.BytesIO()
            Image.fromarray(crop).save(buf, fmt, **kw)
            out.append((".jpg" if fmt == "JPEG" else ".png", buf.getvalue()))
    return out


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    b = bytearray(data)
    ops = []
    for _ in range(int(rng.integers(1, 3))):
        op = rng.choice(["flip", "flip", "truncate", "header", "zero", "chunk", "append"])
        ops.append(str(op))
        n = len(b)
        if n == 0:
            break
        if op == "flip":
            for pos in rng.integers(0, n, int(rng.integers(1, 33))):
                b[pos] ^= 1 << int(rng.integers(0, 8))
        elif op == "truncate":
            b = b[: int(rng.integers(0, n))]
        elif op == "header":
            k = int(rng.integers(2, 65))
            b[:k] = rng.integers(0, 256, min(k, n), dtype=np.uint8).tobytes()
        elif op == "zero":
            s = int(rng.integers(0, n))
            e = min(n, s + int(rng.integers(1, 512)))
            b[s:e] = b"\0" * (e - s)
        elif op == "chunk":
            s, e = sorted(int(v) for v in rng.integers(0, n, 2))
            t = int(rng.integers(0, n))
            b = b[:t] + b[s:e] + b[t:]
        elif op == "append":
            b += rng.integers(0, 256, int(rng.integers(1, 4096)), dtype=np.uint8).tobytes()
    return bytes(b), "+".join(ops)


def shaped(rng: np.random.Generator) -> tuple[str, bytes, str]:
    """A generated image of an extreme size: (suffix, bytes, op name)."""

    from PIL import Image

    kind = rng.choice(["tiny", "thin", "thin", "large", "over"])
    if kind == "tiny":
        w, h = (int(v) for v in rng.integers(1, 20, 2))
    elif kind == "thin":
        short, long_ = int(rng.integers(1, 40)), int(rng.integers(2000, 65001))
        w, h = (short, long_) if rng.random() < 0.5 else (long_, short)
    elif kind == "large":
        w, h = (int(v) for v in rng.integers(2000, 7000, 2))
    else:
        w, h = 9000, 9000  # 81 MP: refused before decoding (too_large)
    fmt = "PNG" if rng.random() < 0.5 else "JPEG"
    if kind in ("large", "over") or rng.random() < 0.5:
        img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 256, 3)))
    else:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return (".png" if fmt == "PNG" else ".jpg"), buf.getvalue(), f"shape:{w}x{h}"


def worker(args) -> int:
    """Process inputs [start, n); append one JSON line per input to args.log."""

    from fasfinder.errors import FasFinderError
    from fasfinder.imaging import load_image
    from fasfinder.service import FasFinder
    from fasfinder.settings import Settings

    engine = "dlib-resnet"
    if args.engine == "pixelhash":
        sys.path.insert(0, str(REPO / "bench"))
        from kill_test import ENGINE, register_test_engine

        register_test_engine()
        engine = ENGINE
    settings = Settings(gallery=str(Path(args.workdir) / "fuzz.db"), liveness=False, flip=False, engine=engine)
    ff = FasFinder(settings.gallery, settings=settings)
    base = seeds()
    tmpdir = Path(args.workdir) / "files"
    tmpdir.mkdir(parents=True, exist_ok=True)
    with open(args.log, "a") as log:
        for i in range(args.start, args.n):
            rng = np.random.default_rng([args.seed, i])
            if args.shape_every and i % args.shape_every == args.shape_every - 1:
                suffix, blob, ops = shaped(rng)
            else:
                suffix, data = base[int(rng.integers(0, len(base)))]
                blob, ops = mutate(data, rng)
            path = tmpdir / f"in{i % 100:02d}{suffix}"
            path.write_bytes(blob)
            rec = {"i": i, "ops": ops, "bytes": len(blob)}
            try:
                try:
                    img = load_image(path)
                    rec["load"] = "ok"
                except FasFinderError as exc:
                    rec["load"] = exc.code
                    img = None
                if img is not None:
                    res = ff.enroll_one(path, label=f"fuzz{i % 50}")
                    rec["enroll"] = res.error["code"] if res.error else "ok"
                    rec["faces"] = res.faces
                    if res.error and res.error["code"] == "internal_error":  # caught by the boundary, still a bug
                        rec["crash"] = f"internal_error: {res.error['message']}"
            except Exception as exc:  # an untyped failure: a crash in the sense of the acceptance test
                rec["crash"] = f"{type(exc).__name__}: {exc}"
                rec["trace"] = traceback.format_exc()[-2000:]
            log.write(json.dumps(rec) + "\n")
            log.flush()
    ff.close()
    return 0


def supervise(args) -> int:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="fasfuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "results.jsonl"
    log.write_text("")
    t0 = time.time()
    hard = []
    start = 0
    while start < args.n:
        cmd = [sys.executable, __file__, "--worker", "--start", str(start), "--n", str(args.n), "--seed", str(args.seed),
               "--workdir", str(work), "--log", str(log), "--engine", args.engine, "--shape-every", str(args.shape_every)]
        rc = subprocess.call(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"))
        done = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        last = done[-1]["i"] if done else start - 1
        if rc == 0 and last >= args.n - 1:
            break
        # the worker died on input last+1: record it as a hard crash and go on after it
        hard.append({"i": last + 1, "rc": rc})
        with open(log, "a") as fh:
            fh.write(json.dumps({"i": last + 1, "crash": f"worker died (rc {rc})"}) + "\n")
        start = last + 2
    return summarize(log, args, time.time() - t0, len(hard))


def summarize(log: Path, args, seconds: float | None = None, hard: int | None = None) -> int:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    load = Counter(r.get("load", "crash") for r in rows)
    enroll = Counter(r["enroll"] for r in rows if "enroll" in r)
    crashes = [r for r in rows if "crash" in r]
    summary = {
        "inputs": len(rows), "requested": args.n, "seconds": round(seconds, 1) if seconds else None,
        "crashes": len(crashes), "hard_crashes": hard if hard is not None else sum("worker died" in r.get("crash", "") for r in rows),
        "load": dict(load.most_common()), "enroll": dict(enroll.most_common()),
        "ops": dict(Counter(r.get("ops", "?") for r in rows if not r.get("ops", "").startswith("shape:")).most_common(12)),
        "shaped": dict(Counter(r.get("enroll", r.get("load", "crash")) for r in rows
                               if r.get("ops", "").startswith("shape:")).most_common()),
        "crash_examples": crashes[:5], "seed": args.seed, "engine": args.engine,
    }
    text = json.dumps(summary, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0 if not crashes else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--workdir")
    ap.add_argument("--engine", choices=["dlib-resnet", "pixelhash"], default="dlib-resnet",
                    help="pixelhash: the test-only sha256-of-pixels engine of kill_test.py (skips the ~0.3 s dlib "
                         "embedding of each detected face; load and detection unchanged)")
    ap.add_argument("--shape-every", type=int, default=10, help="every Nth input is an image of an extreme size "
                    "(tiny, thin, large, over the pixel limit) instead of a mutated seed; 0: none")
    ap.add_argument("--out")
    ap.add_argument("--summarize", action="store_true", help="only summarise the results log in --workdir "
                    "(e.g. of a run still in progress)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--log", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.summarize:
        return summarize(Path(args.workdir) / "results.jsonl", args)
    return worker(args) if args.worker else supervise(args)


if __name__ == "__main__":
    sys.exit(main())
