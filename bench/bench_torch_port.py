"""Parity and speed of the PyTorch port of dlib's ResNet (engine ``dlib-resnet-torch``) vs dlib.

    python bench/bench_torch_port.py parity --n 500 [--json OUT]
        first N LFW images (sorted), faces found with FaceAnalyzer (central-box fallback when
        none), dlib's chips through both networks: largest absolute descriptor difference,
        minimum cosine.

    python bench/bench_torch_port.py speed [--runs 20] [--threads 2] [--json OUT]
        per-face descriptor time at batch 1 and batch 32 (chips given), medians of RUNS runs,
        dlib (single-threaded C++) and torch measured in the same run, as a ratio.

The LFW folder is ``../shared/data/lfw/images_deepfunneled`` relative to the repository root
(override with --lfw). The speed bench needs no data set (it uses skimage's astronaut).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_LFW = ROOT.parent / "shared" / "data" / "lfw" / "images_deepfunneled"


def lfw_chips(lfw: Path, n: int):
    from fasfinder.faces import FaceAnalyzer, face_chip
    from fasfinder.imaging import load_image

    files = sorted(lfw.glob("*/*.jpg"))[:n]
    if not files:
        raise SystemExit(f"no LFW images under {lfw}")
    fa = FaceAnalyzer()
    chips, fallback = [], 0
    for f in files:
        rgb = load_image(f).pixels
        faces = fa.detect(rgb)
        if faces:
            face = faces[0]
        else:
            h, w = rgb.shape[:2]
            face = fa.face_at(rgb, (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
            fallback += 1
        chips.append(face_chip(rgb, face))
    return files, chips, fallback


def parity(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from fasfinder.engines.dlib_resnet import DlibResNetEngine
    from fasfinder.engines.dlib_torch import DlibTorchEngine, load_model

    t0 = time.perf_counter()
    files, chips, fallback = lfw_chips(Path(args.lfw), args.n)
    t1 = time.perf_counter()
    ref = DlibResNetEngine().descriptors_from_chips(chips)
    t2 = time.perf_counter()
    results = {}
    # the engine (affine folded into the convolutions, channels_last) and the plain port used
    # by the explanations (convolution then affine, as dlib computes it)
    plain = load_model(fused=False)
    with torch.inference_mode():
        unfused = np.concatenate(
            [plain(plain.preprocess(np.stack(chips[i : i + 32]))).numpy() for i in range(0, len(chips), 32)]
        )
    for label, out in (("engine_fused", DlibTorchEngine().descriptors_from_chips(chips)), ("port_unfused", unfused)):
        diff = np.abs(out - ref)
        cos = (out * ref).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1))
        results[label] = {
            "max_abs_diff": float(diff.max()),
            "mean_abs_diff": float(diff.mean()),
            "min_cosine": float(cos.min()),
            "mean_cosine": float(cos.mean()),
        }
    return {
        "images": len(files),
        "first": files[0].name,
        "last": files[-1].name,
        "central_box_fallbacks": fallback,
        "dlib_descriptor_norm_mean": float(np.linalg.norm(ref, axis=1).mean()),
        **results,
        "seconds_detect_and_chip": round(t1 - t0, 1),
        "seconds_dlib": round(t2 - t1, 1),
        "torch_threads": args.threads,
    }


def _median_time(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def speed(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from skimage.data import astronaut

    from fasfinder.engines.dlib_resnet import DlibResNetEngine
    from fasfinder.engines.dlib_torch import load_model
    from fasfinder.faces import FaceAnalyzer, face_chip

    rgb = astronaut()
    face = FaceAnalyzer().detect(rgb)[0]
    base = face_chip(rgb, face)
    rng = np.random.default_rng(0)
    # 32 distinct chips (the same face with small noise) so nothing is cached
    chips = [np.clip(base.astype(np.int16) + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8) for _ in range(32)]

    dlib_engine = DlibResNetEngine()
    variants = {
        "plain": load_model(fused=False),
        "fused": load_model(fused=True),
        "fused_channels_last": load_model(fused=True).to(memory_format=torch.channels_last),
    }
    x32 = variants["plain"].preprocess(np.stack(chips))
    x1 = x32[:1].clone()

    def torch_fn(model, x, cl):
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)

        def run():
            with torch.inference_mode():
                model(x)

        return run

    res = {"torch_threads": args.threads, "runs": args.runs, "torch_version": torch.__version__}
    for batch in (1, 32):
        dl = _median_time(lambda: dlib_engine.descriptors_from_chips(chips[:batch]), args.runs) / batch
        row = {"dlib_ms_per_face": round(dl * 1000, 2)}
        for name, model in variants.items():
            x = x1 if batch == 1 else x32
            t = _median_time(torch_fn(model, x, "channels_last" in name), args.runs) / batch
            row[f"torch_{name}_ms_per_face"] = round(t * 1000, 2)
            row[f"speedup_{name}"] = round(dl / t, 2)
        # the whole engine path (numpy chips in, descriptors out)
        from fasfinder.engines.dlib_torch import DlibTorchEngine

        eng = DlibTorchEngine()
        t = _median_time(lambda: eng.descriptors_from_chips(chips[:batch]), args.runs) / batch
        row["torch_engine_ms_per_face"] = round(t * 1000, 2)
        row["speedup_engine"] = round(dl / t, 2)
        res[f"batch{batch}"] = row
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("parity")
    pp.add_argument("--n", type=int, default=500)
    pp.add_argument("--lfw", default=str(DEFAULT_LFW))
    pp.add_argument("--threads", type=int, default=1)
    pp.add_argument("--json")
    ps = sub.add_parser("speed")
    ps.add_argument("--runs", type=int, default=20)
    ps.add_argument("--threads", type=int, default=2)
    ps.add_argument("--json")
    args = p.parse_args(argv)
    out = parity(args) if args.cmd == "parity" else speed(args)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
