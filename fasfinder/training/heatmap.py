"""Train the heatmap-channel recognizers (issue 6).

    python -m fasfinder.training.heatmap prepare              # detections, crops, heatmaps, teacher (cache)
    python -m fasfinder.training.heatmap train --backbone shufflenet --variant heatmap --epochs 30
    python -m fasfinder.training.heatmap export --backbone shufflenet --variant heatmap
    python -m fasfinder.training.heatmap all                  # the full recipe: 3 backbones x 2 variants

Online-teacher training (GPU box; see fasfinder.training.heatmap_online):

    python -m fasfinder.training.heatmap chips --chips FILE   # aligned 150 px chips (JPEG) of every face, one .npz
    python -m fasfinder.training.heatmap online --chips FILE --teacher-weights SD.pt --device cuda \
        --backbone shufflenet --variant heatmap --minutes 6 --runs DIR [--heat-cache FILE]
    python -m fasfinder.training.heatmap export-online --runs DIR --backbone shufflenet --variant heatmap

``train`` resumes from ``<runs>/<name>/last.pt`` (written every epoch); re-run the same command
to continue, or raise ``--epochs``. ``--distill 0`` trains from scratch (name suffix ``-scratch``).

Modules: the networks (fasfinder.engines.backbones) and the heatmap channel
(fasfinder.engines.heatmap_input) are runtime code shared with the engines; the training side is
fasfinder.training.arcface (the ArcFace head), .heatmap_data (split, cache, augmentation),
.heatmap_train (the resumable CPU loop and export) and .heatmap_online (the online-teacher loop).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path


def _runs_dir(args) -> Path:
    from ..settings import cache_dir

    return Path(args.runs or os.environ.get("FASFINDER_HEATMAP_RUNS") or cache_dir() / "heatmap-runs")


def main(argv=None) -> int:
    from ..engines.backbones import BACKBONES, VARIANTS

    p = argparse.ArgumentParser(prog="python -m fasfinder.training.heatmap", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["prepare", "train", "export", "all", "chips", "online", "export-online"])
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
    p.add_argument("--runs", default=None, help="checkpoint dir (default: heatmap-runs in the user cache dir; never world-writable /tmp)")
    p.add_argument("--models", default=None, help="export destination (default: models/)")
    p.add_argument("--chips", default=None, help="chips/online: the chip file (.npz)")
    p.add_argument("--teacher-weights", default=None, help="online: converted dlib-port state dict (default: the installed .dat)")
    p.add_argument("--heat-cache", default=None, help="online: .npz of heatmaps + teacher embeddings shared by several runs")
    p.add_argument("--minutes", type=float, default=0.0, help="online: time budget; the epoch count is fitted after 2 epochs")
    p.add_argument("--arc-ramp", type=float, default=0.2, help="online: fraction of steps over which ArcFace weight/margin ramp up")
    p.add_argument("--weight-decay", type=float, default=0.05, help="online: AdamW weight decay")
    p.add_argument("--command", default=None, help="export-online: the training command to record in the card")
    p.add_argument("--transfer", default="", help="export-online: how the chips and teacher reached the training machine")
    args = p.parse_args(argv)

    import torch

    from ..modelfiles import models_dir
    from .heatmap_data import build_cache, default_cache_dir, load_cache, prepare_shard
    from .heatmap_train import TrainConfig, export, train

    torch.set_num_threads(args.threads)
    if args.action in ("chips", "online", "export-online"):
        return _online(args, argv)
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


def _online(args, argv) -> int:
    from ..modelfiles import models_dir
    from .heatmap_data import prepare_chip_file
    from .heatmap_online import (
        OnlineConfig,
        export_online,
        prepare_tensors,
        train_online,
    )

    if args.action == "chips":
        print(prepare_chip_file(Path(args.chips)))
        return 0
    cfg = OnlineConfig(backbone=args.backbone, variant=args.variant, size=args.size, epochs=args.epochs,
                       batch=args.batch, lr=args.lr, weight_decay=args.weight_decay, distill=args.distill,
                       arc_weight=args.arc_weight, arc_scale=args.scale, arc_margin=args.margin, arc_ramp=args.arc_ramp,
                       seed=args.seed, device=args.device, minutes=args.minutes)
    run_dir = _runs_dir(args) / cfg.name
    if args.action == "online":
        data = prepare_tensors(Path(args.chips), Path(args.teacher_weights) if args.teacher_weights else None,
                               args.device, args.size, Path(args.heat_cache) if args.heat_cache else None)
        if args.epochs == 0:  # only the shared heatmap cache
            return 0
        train_online(cfg, data, run_dir, log=lambda m: print(m, flush=True))
        return 0
    cmd = args.command or ("python -m fasfinder.training.heatmap online " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])[1:]))
    print(export_online(run_dir, Path(args.models) if args.models else models_dir(), command=cmd, transfer=args.transfer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
