"""The generated protocol 4 report (``report.md``): Table 1, severity sweeps, the open set, the
ablation, and the paper's claims checked with paired comparisons."""

from __future__ import annotations

import json
import time

import numpy as np

from .. import perturb
from .ablation import ABLATION_MODES
from .chip_models import ChipModel
from .robustness_stats import delta_cell, fold_delta, verdict

#: What the paper reports (quoted, not reproduced here).
PAPER = {
    "lfw": {"shufflenet-heatmap": {"auc": 0.8372, "eer": 0.2435}, "mobilenet-heatmap": {"auc": 0.804},
            "efficientnet-heatmap": {"auc": 0.809}},
    "claims": [
        "Heatmap (RGB+H) beats Base (RGB) under occlusion and brightness changes",
        "Heatmap does not beat Base under Gaussian noise",
        "Zero / Random / Shuffle ablations of the 4th channel degrade the Heatmap model (the channel is used)",
    ],
}


def render_report(closed_rows: list[dict], closed: list[dict], open_rows: list[dict], opened: list[dict],
                  models: list[ChipModel], meta: dict, val_labels: np.ndarray | None) -> str:
    L = ["# Robustness (BENCHMARKS.md section 4): generated report", ""]
    L.append(f"Command: `{meta.get('command', '')}`  ")
    L.append(f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; total runtime of this invocation "
             f"{meta.get('runtime_s', 0):.0f} s (cached rows are not recomputed).  ")
    cs = meta.get("closed_set") or {}
    if cs:
        L.append(f"Closed set: celeba_subset validation = last 2 images by file name of {cs.get('identities')} identities, "
                 f"{cs.get('val_faces')} faces ({cs.get('val_no_face')} of {cs.get('val_listed')} without a HOG face left out); "
                 f"nearest-class-mean prototypes from {cs.get('train_faces')} training faces (first 6 per identity).  ")
    op = meta.get("open_set") or {}
    if op:
        L.append(f"Open set: LFW View 2, {op.get('pairs')} pairs ({'all' if not op.get('limit') else 'limit ' + str(op.get('limit'))}), "
                 f"{op.get('images')} images, {op.get('no_face', 0)} central-box fallbacks; the second image of each pair is perturbed.  ")
    L.append("Perturbation on dlib's aligned 150 px chip (in [0,1], re-quantised to uint8) before the model input (and the "
             "Heatmap models' Grad-CAM++ channel) is made from it; flip TTA. Occlusion = mean of 3 seeded positions.")
    L.append("")
    L.append("| engine | classifier (closed set) | validation macro F1 in the model card (training's own check) |")
    L.append("|---|---|---|")
    for m in models:
        L.append(f"| `{m.name}` | {m.classifier} | {'--' if m.card_val_f1 is None else m.card_val_f1} |")
    L.append("")

    conds = ["original", "occlusion_0.30", "brightness_1.15", "noise_0.10"]
    by = {(r["engine"], r["condition"], r["mode"]): r for r in closed}
    if closed:
        L += ["## Table 1 (closed set): macro F1 (accuracy), occlusion +- std over 3 positions", "",
              "| engine | " + " | ".join(conds) + " |", "|---|" + "---|" * len(conds)]
        for m in models:
            cells = []
            for c in conds:
                r = by.get((m.name, c, "normal"))
                if r is None:
                    cells.append("--")
                    continue
                sd = f" +- {r['macro_f1_seed_std']:.3f}" if r["seeds"] > 1 else ""
                cells.append(f"{r['macro_f1']:.3f}{sd} ({r['accuracy']:.3f})")
            L.append(f"| `{m.name}` | " + " | ".join(cells) + " |")
        L.append("")
        L += _claims_closed(closed_rows, models, val_labels)

    sweeps = [r for r in closed if r["mode"] == "normal"]
    if sweeps and len({r["condition"] for r in sweeps}) > 4:
        L += ["## Severity sweeps (closed set, macro F1; occlusion +- std over 3 positions)", ""]
        for kind, sevs in perturb.SWEEPS.items():
            L += [f"**{kind}** (curve: `curve_closed_{kind}.png`)", "", "| engine | " + " | ".join(f"{s:g}" for s in sevs) + " |",
                  "|---|" + "---|" * len(sevs)]
            for m in models:
                cells = []
                for s in sevs:
                    r = by.get((m.name, f"{kind}_{s:.2f}", "normal"))
                    cells.append("--" if r is None else f"{r['macro_f1']:.3f}" + (f" +- {r['macro_f1_seed_std']:.3f}" if r["seeds"] > 1 else ""))
                L.append(f"| `{m.name}` | " + " | ".join(cells) + " |")
            L.append("")

    if opened:
        ob = {(r["engine"], r["condition"]): r for r in opened}
        L += ["## Open set: LFW View 2, second image perturbed: AUC / EER (+- s.e. over 10 folds; occlusion also +- std over 3 positions)", "",
              "| engine | " + " | ".join(conds) + " | paper (original) |", "|---|" + "---|" * (len(conds) + 1)]
        for m in models:
            cells = []
            for c in conds:
                r = ob.get((m.name, c))
                if r is None:
                    cells.append("--")
                    continue
                sd = f", pos std {r['auc_seed_std']:.3f}" if r["seeds"] > 1 else ""
                cells.append(f"{r['auc']:.4f} +- {r.get('auc_fold_sem', 0):.3f} / {r['eer']:.4f} +- {r.get('eer_fold_sem', 0):.3f}{sd}")
            paper = PAPER["lfw"].get(m.name)
            ptxt = " / ".join(f"{k.upper()} {v}" for k, v in paper.items()) if paper else "--"
            L.append(f"| `{m.name}` | " + " | ".join(cells) + f" | {ptxt} |")
        L += ["", "10-fold accuracy (+- s.e.):", "", "| engine | " + " | ".join(conds) + " |", "|---|" + "---|" * len(conds)]
        for m in models:
            cells = [("--" if (r := ob.get((m.name, c))) is None else f"{r['accuracy']:.4f} +- {r.get('accuracy_sem', 0):.4f}")
                     for c in conds]
            L.append(f"| `{m.name}` | " + " | ".join(cells) + " |")
        L.append("")
        L += _claims_open(open_rows, models)

    L += ["## Ablation of the 4th channel (closed set, macro F1)", ""]
    abl_models = [m for m in models if m.ablatable]
    if not abl_models or not any(r["mode"] != "normal" for r in closed):
        L.append("No Heatmap model was evaluated with the ablation.")
    else:
        L += ["| engine | mode | " + " | ".join(conds) + " |", "|---|---|" + "---|" * len(conds)]
        for m in abl_models:
            for mode in ABLATION_MODES:
                cells = [("--" if (r := by.get((m.name, c, mode))) is None else f"{r['macro_f1']:.3f}") for c in conds]
                L.append(f"| `{m.name}` | {mode} | " + " | ".join(cells) + " |")
        L.append("")
        L += _claims_ablation(closed_rows, abl_models, val_labels)
    na = [m.name for m in models if not m.ablatable]
    if na:
        L.append(f"Ablation not applicable (no heatmap input channel): {', '.join(f'`{n}`' for n in na)}.")
    L.append("")
    L += ["## Runtime", "", "```", json.dumps(meta.get("timings", {}), indent=1), "```", ""]
    return "\n".join(L) + "\n"


def _pairs_by_backbone(models: list[ChipModel]) -> list[tuple[ChipModel, ChipModel]]:
    out = []
    for b in dict.fromkeys(m.backbone for m in models if m.backbone):
        base = next((m for m in models if m.backbone == b and m.variant == "base"), None)
        heat = next((m for m in models if m.backbone == b and m.variant == "heatmap"), None)
        if base and heat:
            out.append((base, heat))
    return out


def _preds(closed_rows, engine, condition, mode="normal"):
    rs = sorted([r for r in closed_rows if r["engine"] == engine and r["condition"] == condition and r["mode"] == mode],
                key=lambda r: r["seed"])
    return [np.array(r["pred"]) for r in rs]


def _claims_closed(closed_rows, models, val_labels) -> list[str]:
    pairs = _pairs_by_backbone(models)
    if not pairs or val_labels is None:
        return ["Base vs Heatmap: no backbone with both variants evaluated.", ""]
    L = ["**Paper's claim: Heatmap beats Base under occlusion and brightness, not under noise.** Heatmap - Base macro F1, "
         "+- paired bootstrap s.e. over validation images (1,000 resamples); a difference within 2 s.e. is not called:", "",
         "| backbone | original | occlusion 0.30 | brightness 1.15 | noise 0.10 |", "|---|---|---|---|---|"]
    for base, heat in pairs:
        cells = []
        for c in ("original", "occlusion_0.30", "brightness_1.15", "noise_0.10"):
            cells.append(delta_cell(val_labels, _preds(closed_rows, base.name, c), _preds(closed_rows, heat.name, c),
                                     "Heatmap better", "Base better"))
        L.append(f"| {base.backbone} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def _claims_open(open_rows, models) -> list[str]:
    pairs = _pairs_by_backbone(models)
    if not pairs:
        return []
    L = ["Heatmap - Base LFW AUC (paired over the 10 folds: mean per-fold difference +- s.e.):", "",
         "| backbone | original | occlusion 0.30 | brightness 1.15 | noise 0.10 |", "|---|---|---|---|---|"]
    for base, heat in pairs:
        cells = []
        for c in ("original", "occlusion_0.30", "brightness_1.15", "noise_0.10"):
            res = fold_delta(open_rows, base.name, heat.name, c)
            cells.append("--" if res is None else verdict(res[0], res[1], "Heatmap better", "Base better"))
        L.append(f"| {base.backbone} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def _claims_ablation(closed_rows, abl_models, val_labels) -> list[str]:
    if val_labels is None:
        return []
    L = ["**Paper's claim: Zero / Random / Shuffle degrade the Heatmap model.** Ablated - Normal macro F1 (+- paired "
         "bootstrap s.e.):", "", "| engine | condition | zero | random | shuffle |", "|---|---|---|---|---|"]
    for m in abl_models:
        for c in ("original", "occlusion_0.30", "brightness_1.15", "noise_0.10"):
            normal = _preds(closed_rows, m.name, c)
            cells = []
            for mode in ("zero", "random", "shuffle"):
                cells.append(delta_cell(val_labels, normal, _preds(closed_rows, m.name, c, mode),
                                         "better than Normal", "degraded"))
            L.append(f"| `{m.name}` | {c} | " + " | ".join(cells) + " |")
    L.append("")
    return L
