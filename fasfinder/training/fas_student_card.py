"""Calibrate the distilled student on training data and write its weights and model card.

Band (three-way verdict) from training data only: the CALIBRATION split of ``samples.npz`` (CelebA
identities never trained on: their photos as genuine captures, synthetic prints made over them) and
the NUAA training prints (seen in training; their scores are optimistic):

* ``lo`` (below: ``spoof``): the ``genuine_spoof_q`` quantile of the genuine calibration scores, so
  about that share of genuine photos can be called ``spoof``;
* ``hi`` (at or above: ``real``): the ``genuine_flag_q`` quantile of the genuine scores (about that
  share of genuine photos is not called ``real``), raised to just above the ``attack_q`` upper
  quantile of the NUAA training prints if that is higher.

The synthetic CelebA prints are not separable enough from genuine CelebA photos (student AUC 0.89,
teacher 0.78) for a band that both keeps genuine photos "real" and refuses them: their acceptance at
the chosen band is reported in the card, not hidden. ``threshold`` (the two-class rule of the
score-based metrics such as AUC) = the band's middle.

    python -m fasfinder.training.fas_student_card --run RUN --data DIR/samples.npz [--name fas-student]
        [--genuine-q 0.003] [--attack-q 0.003] [--min-face 40] [--min-context 0.0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np


def scores_of(model, crops: np.ndarray, batch: int = 512) -> np.ndarray:
    return np.concatenate([model.scores_from_crops(crops[i: i + batch]) for i in range(0, len(crops), batch)]) \
        if len(crops) else np.zeros(0)


def choose_band(genuine: np.ndarray, prints: np.ndarray, spoof_q: float, flag_q: float, attack_q: float) -> tuple[float, float]:
    hi = max(float(np.quantile(genuine, flag_q)), float(np.quantile(prints, 1.0 - attack_q)) + 1e-6)
    lo = min(float(np.quantile(genuine, spoof_q)), hi)
    return lo, hi


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fasfinder.training.fas_student_card", description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--name", default="fas-student")
    ap.add_argument("--genuine-spoof-q", type=float, default=0.005)
    ap.add_argument("--genuine-flag-q", type=float, default=0.08)
    ap.add_argument("--attack-q", type=float, default=0.005)
    ap.add_argument("--min-face", type=float, default=40.0)
    ap.add_argument("--min-context", type=float, default=0.0)
    ap.add_argument("--out", default="", help="models folder (default: the repository's models/)")
    a = ap.parse_args(argv)

    import torch

    from ..liveness.student import StudentPair
    from ..modelfiles import file_entry, models_dir, write_card

    torch.set_num_threads(1)
    run = Path(a.run)
    result = json.loads((run / "result.json").read_text())
    out = Path(a.out) if a.out else models_dir()
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{a.name}.pt"
    shutil.copyfile(run / "student.pt", weights)
    card = {"name": a.name, "kind": "liveness (face anti-spoofing) classifier",
            "architecture": {"type": "StudentPair", "scales": [2.7, 4.0], "widths": result["widths"]},
            "threshold": 0.5, "files": [file_entry("weights", weights)]}
    model = StudentPair(card, weights_path=weights)
    d = np.load(a.data)
    split, source, label = d["split"], d["source"], d["label"]
    calib_genuine = (split == "calib") & (label == 1)
    calib_print = (split == "calib") & (label == 0)
    nuaa_print = (source == "nuaa") & (label == 0)
    sg, sa = scores_of(model, d["crops"][calib_genuine]), scores_of(model, d["crops"][calib_print])
    sn = scores_of(model, d["crops"][nuaa_print])
    lo, hi = choose_band(sg, sn, a.genuine_spoof_q, a.genuine_flag_q, a.attack_q)
    card["band"] = [lo, hi]
    card["threshold"] = (lo + hi) / 2.0
    card["gates"] = {"min_face": a.min_face, "min_context": a.min_context}
    card["calibration"] = {
        "rule": f"lo = {a.genuine_spoof_q} quantile of the genuine calibration scores; hi = max({a.genuine_flag_q} quantile of "
                f"them, {1 - a.attack_q} quantile of the NUAA training prints + 1e-6); training data only",
        "genuine": {"n": int(len(sg)), "source": "CelebA calibration identities (identity % 5 == 1), never trained on",
                    "spoof": float(np.mean(sg < lo)), "uncertain": float(np.mean((sg >= lo) & (sg < hi)))},
        "synthetic_prints": {"n": int(len(sa)), "source": "synthetic prints over CelebA calibration identities",
                             "real": float(np.mean(sa >= hi)), "uncertain": float(np.mean((sa >= lo) & (sa < hi)))},
        "nuaa_training_prints": {"n": int(len(sn)), "real": float(np.mean(sn >= hi)),
                                 "uncertain": float(np.mean((sn >= lo) & (sn < hi)))},
    }
    card["training"] = result
    card["description"] = (
        "Two small CNNs (3x3 stride-2 stem, depthwise-separable blocks to 5x5, 1x1 conv, GAP, 3-class head; "
        f"widths {result['widths']}), one per crop of the teacher's rule (2.7x and 4.0x the face box, 80x80 BGR), "
        "trained from scratch by distilling the MiniFASNet pair's soft outputs with the hard labels. "
        "Score = the members' mean P(live); verdict real / uncertain / spoof by the band.")
    card["teacher"] = {
        "models": "MiniFASNetV2 (2.7x crop) + MiniFASNetV1SE (4.0x crop) of Silent-Face-Anti-Spoofing",
        "source": "https://github.com/minivision-ai/Silent-Face-Anti-Spoofing (snapshot b6d5f04)",
        "licence": "Apache License 2.0 (Minivision)",
        "sha256": {"2.7_80x80_MiniFASNetV2.pth": "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
                   "4_0_0_80x80_MiniFASNetV1SE.pth": "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990"},
        "use": "the teacher's softmax outputs are training targets; its weights are not in this repository or its installers",
    }
    card["data"] = (
        "Training split only: NUAA training lists (300 live + 300 print, ../shared/data/nuaa), synthetic print attacks "
        "(fasfinder.training.fas_synth composites of CelebA training-identity prints over NUAA live training images and "
        "CelebA photos, each with its live original), CelebA photos of the training identities (identity % 5 in 2,3,4) "
        "as genuine captures. Never LFW, never the NUAA test lists, never the recapture probe set.")
    card["recipe"] = {k: result[k] for k in ("epochs", "per_epoch", "alpha", "temperature", "batch", "lr", "seed")}
    card["recipe"].update({"optimizer": "AdamW (weight decay 5e-4), one-cycle", "loss": "alpha * KL(teacher_k || student_k) "
                           "* T^2 + (1 - alpha) * CE(hard live/attack label)", "sampling": "balanced per source",
                           "augmentation": "flip, shift +-5 px, gain/channel/bias, 3x3 blur 30 %, noise 40 %"})
    card["command"] = ("python -m fasfinder.training.fas_distill_data faces --out DIR; python -m fasfinder.training.fas_distill_data "
                       f"build --out DIR; python -m fasfinder.training.fas_distill --data DIR/samples.npz --out RUN --epochs "
                       f"{result['epochs']} --per-epoch {result['per_epoch']} --threads 2; python -m fasfinder.training.fas_student_card "
                       f"--run RUN --data DIR/samples.npz --genuine-spoof-q {a.genuine_spoof_q} --genuine-flag-q {a.genuine_flag_q} "
                       f"--attack-q {a.attack_q} --min-face {a.min_face} "
                       f"--min-context {a.min_context}")
    card["train_device"] = "this repository's dev machine (2 CPU cores, shared)"
    print(json.dumps({"band": card["band"], "calibration": card["calibration"]}, indent=1), file=sys.stderr)
    write_card(card, out, newline=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
