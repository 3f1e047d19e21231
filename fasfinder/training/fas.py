"""Train the liveness (FAS) model on the NUAA subset (docs/BENCHMARKS.md section 5).

    # (the default model fas-nuaa-wide is trained by fasfinder.training.fas_synth + fas_wide instead)
    # fas-nuaa-cnn: small CNN from scratch on NUAA alone (the previous default)
    python -m fasfinder.training.fas --nuaa ../shared/data/nuaa --arch fasnet --name fas-nuaa-cnn --crop-scale 2.7 --size 128 --epochs 25 --eval
    # fas-nuaa-dlib: frozen dlib trunk + channel-std statistics + logistic-regression head (not the default)
    python -m fasfinder.training.fas --nuaa ../shared/data/nuaa --arch dlib --name fas-nuaa-dlib \
        --crop-scale 2.7 --size 192 --sizes 160,176,192 --l2 0.001 --eval

For ``--arch dlib`` the decision threshold comes from CROSS-SESSION out-of-fold scores inside the
training lists (head fitted on session 1 scores session 2 and vice versa; NUAA file names encode
the session): the threshold minimising the ACER of those held-out scores. The test subset is a
third session, so this is the training-data estimate of a session change.

Face boxes/landmarks for the NUAA images are detected once and cached (default in the user cache dir, never
in the repository). Checkpoints are written every epoch to ``--ckpt-dir`` and a rerun with the
same arguments resumes. The weights (state dict) and model card go to ``models/``; the decision
threshold is chosen on the training images only.

This module is the command line; the pieces: :mod:`.fas_cnn` (``--arch fasnet``), :mod:`.fas_dlib`
(``--arch dlib``), :mod:`.fas_inputs` (crops, augmentation), :mod:`.fas_cards` (card + ``--eval``,
region ranking); the NUAA lists, face cache, metrics and threshold rule are shared with protocol 5
in :mod:`fasfinder.evaluation.nuaa`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..evaluation.nuaa import DEFAULT_CACHE, log
from ..settings import cache_dir
from .fas_cards import region_ranking
from .fas_cnn import main_cnn
from .fas_dlib import main_dlib


def add_recipe_args(ap: argparse.ArgumentParser, *, epochs: int, batch: int, lr: float) -> None:
    """The optimisation options both FAS CNN trainers (this one and ``fas_wide``) take."""

    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--label-smoothing", type=float, default=0.05)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fasfinder.training.fas", description=__doc__.splitlines()[0])
    ap.add_argument("--nuaa", required=True, help="NUAA folder (holds db/)")
    ap.add_argument("--name", default="fas-nuaa-cnn", help="model card name (models/<name>.card.json)")
    ap.add_argument("--arch", choices=("dlib", "fasnet"), default="fasnet",
                    help="fasnet: small CNN from scratch (fas-nuaa-cnn, the previous default model; this default keeps the "
                    "commands in older cards valid); dlib: frozen dlib trunk + channel-std statistics + logistic head")
    ap.add_argument("--last-stage", default="level1", help="dlib: deepest trunk stage used (stem, level4 .. level0)")
    ap.add_argument("--pool", choices=("std", "meanstd"), default="std", help="dlib: per-channel statistics pooled")
    ap.add_argument("--l2", type=float, default=0.001, help="dlib: L2 weight of the logistic regression")
    ap.add_argument("--sizes", default="", help="dlib: also run the trunk on the crop resized to these sizes, e.g. 160,176,192")
    ap.add_argument("--crop-scale", type=float, default=2.7)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--widths", default="16,32,64,96,128")
    ap.add_argument("--keep-regions", default="", help="comma-separated regions to keep (rest black)")
    add_recipe_args(ap, epochs=30, batch=32, lr=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val-subjects", default="", help="hold out these train subjects (e.g. 0007,0008,0009) and report validation only (input selection)")
    ap.add_argument("--val-session", type=int, default=0, help="fasnet: hold out this NUAA training session (1 or 2) "
                    "and report validation only (cross-session check)")
    ap.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    ap.add_argument("--ckpt-dir", default=str(cache_dir() / "fas-ckpt"),
                    help="resumable checkpoints (default: the user cache dir, never world-writable /tmp)")
    ap.add_argument("--out-dir", default="", help="where to write <name>.pt and the card (default: models/)")
    ap.add_argument("--eval", action="store_true", help="run protocol 5 on the test subset and store the metrics in the card")
    ap.add_argument("--result-json", default="", help="also write the run summary here")
    ap.add_argument("--keep-rank", default="", help="topK / bottomK: keep the K regions ranked highest / lowest by the "
                    "--rank-from model's Area Importance on the TRAINING spoof images (rest black)")
    ap.add_argument("--rank-from", default="fas-nuaa-cnn", help="model card whose training-set Area Importance ranks the regions")
    args = ap.parse_args(argv)

    t_start = time.time()
    import torch

    torch.set_num_threads(args.threads)
    if args.keep_rank:
        ranking = region_ranking(args.nuaa, args.rank_from, Path(args.cache_dir))
        k = int(args.keep_rank[3:] if args.keep_rank.startswith("top") else args.keep_rank[6:])
        keep = ranking[:k] if args.keep_rank.startswith("top") else ranking[-k:]
        args.keep_regions = ",".join(keep)
        log(f"regions ranked by {args.rank_from} (train spoof Area Importance): {ranking}; keeping {keep}")
    if args.arch == "dlib":
        return main_dlib(args, argv, t_start)
    return main_cnn(args, argv, t_start)


if __name__ == "__main__":
    raise SystemExit(main())
