"""The ``eval`` command's protocols: one argparse namespace in, one JSON-ready result out."""

from __future__ import annotations

from pathlib import Path


def run_protocol(args, progress) -> dict:
    """Run ``args.protocol`` (lfw, ident, identify-fit, fas, calibrate, robustness, ablation)."""

    if args.protocol == "lfw":
        from .lfw import evaluate_lfw

        out = evaluate_lfw(args.lfw, engine=args.engine, flip=args.flip, progress=progress, limit=args.limit)
    elif args.protocol == "identify-fit" or getattr(args, "open_set", False):
        from .ident_cli import run_from_cli

        out = run_from_cli(args, progress)
    elif args.protocol == "ident":
        from .ident import evaluate_ident

        out = evaluate_ident(args.lfw, engine=args.engine, progress=progress)
    elif args.protocol == "fas":
        from .fas import evaluate_fas
        from .nuaa import face_cache

        # faces detected once (the same detect_face as evaluate_fas) and cached in the user cache dir
        faces = face_cache(args.nuaa, "test") if (Path(args.nuaa) / "db").is_dir() else None
        out = evaluate_fas(args.nuaa, progress=progress, model=args.model or None, faces=faces)
    elif args.protocol == "calibrate":
        from .calibrate import calibrate_engine

        out = calibrate_engine(args.celeba, engine=args.engine, write=args.write, progress=progress,
                               cards=tuple(args.cards.split(",")) if args.cards else None)
    else:  # robustness / ablation
        from . import robustness

        out = robustness.run_from_cli(args)
    return out
