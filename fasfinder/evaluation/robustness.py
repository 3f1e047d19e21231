"""Protocol 4 of docs/BENCHMARKS.md: robustness conditions, severity sweeps and the 4th-channel ablation.

    python main.py eval robustness --celeba ../shared/data --lfw ../shared/data/lfw --out DIR [--limit N]
    python main.py eval ablation   --celeba ../shared/data --out DIR

Where the perturbation acts: on the aligned face crop every engine sees, dlib's 150 px chip (RGB in
[0, 1], :mod:`fasfinder.perturb`, re-quantised to uint8 as a real image would be), *before* the
model input is made from it. For the Heatmap models the Grad-CAM++ channel is therefore
recomputed on the perturbed chip (what happens at query time), and the crop and heatmap are then
resized to the model input exactly as :func:`fasfinder.engines.heatmap_input.face_inputs` does.
Face detection and landmarks come from the clean image (perturbing after alignment measures the
recognizer, not the detector). Occlusion: the same seeded position for every image of one run
(seeds 0, 1, 2 = the 3 positions; error bars = std over them); noise: one seed per image derived
from its file name, so a rerun is bit-identical.

Closed set (the paper's Table 1 and Fig. 3): ``celeba_subset``, per identity the first 6 images
by file name train and the last 2 validate (the heatmap models' split, :func:`list_images`); faces
found with the training cache's detector settings (HOG, upsample 0 then 1; images without a face
are left out and counted, as in the training cache). Classifier: the model's ArcFace head when its
card ships one (argmax cosine to the class weights); otherwise (``dlib-resnet``,
``dlib-resnet-torch``, ``cam-vector``) the nearest class mean of the clean training images'
embeddings (cosine). Embeddings use flip TTA (normalised sum of both views, protocol 2's
``--flip``). Accuracy and macro F1 over the validation images.

Open set: LFW View 2 (protocol 2) with the second image of each pair perturbed; AUC/EER over all
pairs plus per-fold means and standard errors (error bars over the 10 folds), 10-fold accuracy.
``--limit N`` = the same pair selection as ``eval lfw --limit N``.

Ablation (Heatmap models only): Normal / Zero (all 0) / Random (uniform [0, 1], seeded) / Shuffle
(the heatmap of another validation image, a fixed seeded derangement of the whole validation
batch), at Original, Occlusion 0.30, Brightness 1.15, Noise 0.10, on the closed set.

Resumable: every finished (engine, condition, mode) row is appended to ``<out>/rows.jsonl`` (with
the weights' sha256, so a retrained model is not mixed up with an old one); chips and LFW
embeddings are cached in the user cache dir. Progress goes to stderr.

This module runs the protocol (:func:`run`, :func:`run_from_cli`) and writes its outputs; the parts:
:mod:`.robustness_conditions` (the perturbed variants), :mod:`.robustness_data` (cached chips),
:mod:`.chip_models` (engines on chips), :mod:`.ablation` (the 4th-channel modes),
:mod:`.closed_set`, :mod:`.open_set`, :mod:`.robustness_rows` (resumable rows, CSV/JSON tables),
:mod:`.robustness_curves` (PNG curves), :mod:`.robustness_stats` and :mod:`.robustness_report`
(the generated report.md).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import BadArgument
from .chip_models import ChipModel, resolve_models
from .closed_set import run_closed_set
from .open_set import run_open_set
from .robustness_conditions import ORIGINAL, all_variants, single_point_variants
from .robustness_curves import write_curves
from .robustness_data import load_closed_set, log, progress_every
from .robustness_report import render_report
from .robustness_rows import Rows, aggregate, current_rows, write_tables


def run(*, out: Path, celeba: Path | None, lfw: Path | None, engines: list[str] | None = None, limit: int | None = None,
        sweeps: bool = True, lfw_sweeps: bool = False, ablation: bool = True, only_ablation: bool = False,
        max_ids: int | None = None, flip: bool = True, batch: int = 128, threads: int | None = 1,
        command: str = "") -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    t0 = time.time()
    out = Path(out)
    if celeba is None and (lfw is None or only_ablation):
        raise BadArgument("give --celeba (closed set) and/or --lfw (open set)")
    models = resolve_models(engines, flip=flip)
    if not models:
        raise BadArgument("no engine to evaluate")
    log(f"engines: {', '.join(f'{m.name} [{m.classifier}]' for m in models)}")
    rows = Rows(out / "rows.jsonl")
    timings: dict = {}
    meta: dict = {"command": command, "engines": [m.name for m in models], "flip": flip}
    val_labels = None
    ablation_variants = single_point_variants() if (ablation or only_ablation) else []
    if only_ablation:
        closed_variants = [ORIGINAL]
    else:
        closed_variants = all_variants(sweeps)
    if celeba is not None:
        t = time.time()
        data = load_closed_set(Path(celeba), max_ids=max_ids, progress=progress_every(200))
        timings["celeba_chips_s"] = round(time.time() - t, 1)
        val_labels = data.val_labels
        meta["closed_set"] = {"identities": len(np.unique(data.val_labels)), "val_faces": len(data.val_keys),
                              "val_listed": data.listed["val"], "val_no_face": data.no_face["val"],
                              "train_faces": len(data.train_keys), "train_no_face": data.no_face["train"]}
        log(f"closed set: {len(data.train_keys)} train / {len(data.val_keys)} val faces")
        t = time.time()
        meta["closed_set"]["scope"] = run_closed_set(models, data, closed_variants, rows,
                                                     ablation_variants=ablation_variants, batch=batch, timings=timings)
        timings["closed_set_s"] = round(time.time() - t, 1)
    if lfw is not None and not only_ablation:
        t = time.time()
        lv = all_variants(True) if lfw_sweeps else single_point_variants()
        info = run_open_set(models, Path(lfw), lv, rows, limit=limit, batch=batch, timings=timings,
                            progress=progress_every(500))
        meta["open_set"] = info | {"limit": limit}
        timings["open_set_s"] = round(time.time() - t, 1)
    meta["runtime_s"] = round(time.time() - t0, 1)
    timings["total_s"] = meta["runtime_s"]
    meta["timings"] = {k: round(v, 1) for k, v in timings.items()}
    # rows of this run's scope only (a --limit run and a full run never mix in one table)
    scope_rows = current_rows(rows, models, meta)
    files = write_outputs(out, scope_rows, models, meta, val_labels)
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    log(f"done in {meta['runtime_s']:.0f} s; report {files['report']}")
    return {"out": str(out), "files": files, "runtime_s": meta["runtime_s"], "timings": meta["timings"],
            "closed_set": meta.get("closed_set"), "open_set": meta.get("open_set"), "engines": meta["engines"]}


def write_outputs(out: Path, rows: list[dict], models: list[ChipModel], meta: dict, val_labels: np.ndarray | None) -> dict:
    """CSV + JSON tables, PNG curves, report.md. Returns the written paths."""

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [m.name for m in models]
    rows = [r for r in rows if r["engine"] in names]
    closed_rows = [r for r in rows if r["part"] == "closed"]
    open_rows = [r for r in rows if r["part"] == "open"]
    closed = aggregate(closed_rows, "closed", ("accuracy", "macro_f1"))
    opened = aggregate(open_rows, "open", ("auc", "eer", "accuracy", "auc_fold_mean", "eer_fold_mean"))
    files = write_tables(out, rows, closed, opened, models)
    files["curves"] = write_curves(out, closed, opened, models)
    report = render_report(closed_rows, closed, open_rows, opened, models, meta, val_labels)
    (out / "report.md").write_text(report)
    files["report"] = str(out / "report.md")
    return files


def run_from_cli(args) -> dict:
    engines = None
    if getattr(args, "engines", None):
        engines = [e for part in args.engines for e in part.split(",") if e]
    if not args.out:
        raise BadArgument("--out DIR is required")
    cmd = "python main.py " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("main.py") else ""
    return run(out=Path(args.out), celeba=Path(args.celeba) if args.celeba else None,
               lfw=Path(args.lfw) if getattr(args, "lfw", None) and not args.no_lfw else None,
               engines=engines, limit=args.limit, sweeps=not args.no_sweeps, lfw_sweeps=args.lfw_sweeps,
               ablation=not args.no_ablation, only_ablation=args.protocol == "ablation", max_ids=args.ids,
               flip=not args.no_flip, batch=args.batch, threads=args.threads, command=cmd or " ".join(sys.argv))
