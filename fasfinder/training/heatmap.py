"""Train the heatmap-channel recognizers (issue 6).

    python -m fasfinder.training.heatmap prepare              # detections, crops, heatmaps, teacher (cache)
    python -m fasfinder.training.heatmap train --backbone shufflenet --variant heatmap --epochs 30
    python -m fasfinder.training.heatmap export --backbone shufflenet --variant heatmap
    python -m fasfinder.training.heatmap all                  # the full recipe: 3 backbones x 2 variants

``train`` resumes from ``<runs>/<name>/last.pt`` (written every epoch); re-run the same command
to continue, or raise ``--epochs``. ``--distill 0`` trains from scratch (name suffix ``-scratch``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path


def _runs_dir(args) -> Path:
    return Path(args.runs or os.environ.get("FASFINDER_HEATMAP_RUNS", "/tmp/fasfinder-heatmap-runs"))


def main(argv=None) -> int:
    from ..heatmap_models.backbones import BACKBONES, VARIANTS

    p = argparse.ArgumentParser(prog="python -m fasfinder.training.heatmap", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["prepare", "train", "export", "all"])
    p.add_argument("--backbone", choices=BACKBONES, default="shufflenet")
    p.add_argument("--variant", choices=VARIANTS, default="heatmap")
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--distill", type=float, default=10.0, help="weight of 1 - cos(emb, teacher); 0 = from scratch")
    p.add_argument("--raw-teacher", action="store_true", help="distil to dlib's raw embeddings instead of centred ones")
    p.add_argument("--arc-weight", type=float, default=1.0, help="weight of the ArcFace loss (0 = distillation only)")
    p.add_argument("--margin", type=float, default=0.3)
    p.add_argument("--scale", type=float, default=32.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device for the network (cpu, cuda)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shards", type=int, default=2, help="prepare: number of shards (run one process per shard with --shard)")
    p.add_argument("--shard", type=int, default=-1, help="prepare: only this shard (default: all, sequentially)")
    p.add_argument("--max-minutes", type=float, default=0.0)
    p.add_argument("--cache", default=None, help="cache dir (default: user cache/fasfinder/heatmap_train)")
    p.add_argument("--runs", default=None, help="checkpoint dir (default /tmp/fasfinder-heatmap-runs)")
    p.add_argument("--models", default=None, help="export destination (default: models/)")
    args = p.parse_args(argv)

    import torch

    from ..heatmap_models.data import build_cache, default_cache_dir, load_cache, prepare_shard
    from ..heatmap_models.train import TrainConfig, export, train
    from ..modelfiles import models_dir

    torch.set_num_threads(args.threads)
    cache = Path(args.cache) if args.cache else default_cache_dir()
    if args.action in ("prepare", "all"):
        shards = [args.shard] if args.shard >= 0 else range(args.shards)
        for s in shards:
            prepare_shard(cache, s, args.shards, size=args.size)
        if all((cache / f"shard{s}of{args.shards}-{args.size}.npz").is_file() for s in range(args.shards)):
            print(build_cache(cache, args.shards, size=args.size))
        if args.action == "prepare":
            return 0
    cache_path = build_cache(cache, args.shards, size=args.size)
    combos = [(b, v) for b in BACKBONES for v in VARIANTS] if args.action == "all" else [(args.backbone, args.variant)]
    for backbone, variant in combos:
        cfg = TrainConfig(backbone=backbone, variant=variant, size=args.size, epochs=args.epochs, batch=args.batch,
                          lr=args.lr, arc_weight=args.arc_weight, arc_scale=args.scale, arc_margin=args.margin, distill=args.distill, distill_center=not args.raw_teacher, seed=args.seed,
                          threads=args.threads, device=args.device, max_minutes=args.max_minutes)
        run_dir = _runs_dir(args) / cfg.name
        if args.action in ("train", "all"):
            train(cfg, cache_path, run_dir)
        if args.action in ("export", "all"):
            cmd = "python -m fasfinder.training.heatmap train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])[1:])
            cmd = cmd.replace(" export ", " train ")
            meta = load_cache(cache_path)["meta"]
            print(export(run_dir, Path(args.models) if args.models else models_dir(), command=cmd,
                         cache_meta={"listed": meta["listed"], "kept": meta["kept"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
