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
        [--genuine-spoof-q 0.005] [--genuine-flag-q 0.08] [--attack-q 0.005] [--min-face 40] [--min-context 0.0]
        [--train-command TEXT] [--data-label TEXT] [--data-note TEXT] [--exclude-source SOURCE ...]
    python -m fasfinder.training.fas_student_card --name NAME --add-metrics nuaa=JSON genuine=JSON probe=JSON speed=JSON
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np


TEACHER = {
    "models": "MiniFASNetV2 (2.7x crop) + MiniFASNetV1SE (4.0x crop) of Silent-Face-Anti-Spoofing",
    "source": "https://github.com/minivision-ai/Silent-Face-Anti-Spoofing (snapshot b6d5f04)",
    "licence": "Apache License 2.0 (Minivision)",
    "sha256": {"2.7_80x80_MiniFASNetV2.pth": "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
               "4_0_0_80x80_MiniFASNetV1SE.pth": "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990"},
    "use": "the teacher's softmax outputs are training targets; its weights are not in this repository or its installers",
}


def scores_of(model, crops: np.ndarray, batch: int = 512) -> np.ndarray:
    return np.concatenate([model.scores_from_crops(crops[i: i + batch]) for i in range(0, len(crops), batch)]) \
        if len(crops) else np.zeros(0)


def choose_band(genuine: np.ndarray, prints: np.ndarray, spoof_q: float, flag_q: float, attack_q: float) -> tuple[float, float]:
    hi = max(float(np.quantile(genuine, flag_q)), float(np.quantile(prints, 1.0 - attack_q)) + 1e-6)
    lo = min(float(np.quantile(genuine, spoof_q)), hi)
    return lo, hi


def measured_metrics(name: str, files: dict) -> dict:
    """The card's ``metrics``, read from the result JSON files of the commands that measured them
    (``nuaa``: ``eval fas --json``; ``genuine``: bench/liveness_genuine.py; ``probe``:
    bench/recapture_probe.py; ``speed``: bench/bench_liveness.py). Nothing typed by hand."""

    out = {}
    if "nuaa" in files:
        r = json.loads(Path(files["nuaa"]).read_text())
        out["nuaa_test"] = {k: r[k] for k in ("apcer", "bpcer", "acer", "auc", "uncertain_real", "uncertain_spoof",
                                               "n_real", "n_spoof", "errors")} | {"file": Path(files["nuaa"]).name}
    if "genuine" in files:
        r = json.loads(Path(files["genuine"]).read_text())
        out["genuine"] = {s: {k: r[s][name][k] for k in ("n", "spoof_share", "uncertain_share")} for s in ("lfw", "celeba_heldout")
                          if s in r and name in r[s]} | {"file": Path(files["genuine"]).name}
    if "probe" in files:
        r = json.loads(Path(files["probe"]).read_text())
        out["recapture_probe_apcer"] = {t: v["apcer"] for t, v in r["models"][name].items()} | {"file": Path(files["probe"]).name}
    if "speed" in files:
        r = json.loads(Path(files["speed"]).read_text())
        out["predict_ms_median_1_thread"] = r[f"liveness_predict_ms[{name}]"]["median"]
        out["explain_ms_median_1_thread"] = r[f"liveness_explain_ms[{name}]"]["median"]
    return out


def add_metrics(name: str, pairs: list[str], out_dir=None) -> dict:
    from ..modelfiles import load_card, models_dir, write_card

    files = dict(p.split("=", 1) for p in pairs)
    card = load_card(name)
    card["metrics"] = measured_metrics(name, files)
    write_card(card, Path(out_dir) if out_dir else models_dir(), newline=False)
    return card["metrics"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fasfinder.training.fas_student_card", description=__doc__.split("\n")[0])
    ap.add_argument("--run")
    ap.add_argument("--data")
    ap.add_argument("--add-metrics", nargs="+", metavar="KIND=JSON", default=None,
                    help="only add measured metrics (nuaa=, genuine=, probe=, speed= result files) to the existing card")
    ap.add_argument("--name", default="fas-student")
    ap.add_argument("--genuine-spoof-q", type=float, default=0.005)
    ap.add_argument("--genuine-flag-q", type=float, default=0.08)
    ap.add_argument("--attack-q", type=float, default=0.005)
    ap.add_argument("--min-face", type=float, default=40.0)
    ap.add_argument("--min-context", type=float, default=0.0)
    ap.add_argument("--out", default="", help="models folder (default: the repository's models/)")
    ap.add_argument("--train-command", default="",
                    help="the training commands as run (e.g. several --init cycles); default: one run of --steps")
    ap.add_argument("--data-label", default="DIR/samples.npz", help="how the card's command names --data")
    ap.add_argument("--data-note", default="", help="appended to the card's data text (e.g. the build options used)")
    ap.add_argument("--exclude-source", action="append", default=[],
                    help="leave a samples.npz source out of the calibration (as the trainer's --exclude-source)")
    a = ap.parse_args(argv)
    if a.add_metrics:
        print(json.dumps(add_metrics(a.name, a.add_metrics, a.out or None), indent=1))
        return 0
    if not (a.run and a.data):
        ap.error("--run and --data are required (unless --add-metrics)")

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
    used = ~np.isin(source, a.exclude_source)
    calib_genuine = (split == "calib") & (label == 1) & used
    calib_print = (split == "calib") & (label == 0) & used
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
                    "sources": {str(k): int(v) for k, v in zip(*np.unique(source[calib_genuine], return_counts=True))},
                    "spoof": float(np.mean(sg < lo)), "uncertain": float(np.mean((sg >= lo) & (sg < hi)))},
        "synthetic_prints": {"n": int(len(sa)), "source": "synthetic prints over CelebA calibration identities",
                             "sources": {str(k): int(v) for k, v in zip(*np.unique(source[calib_print], return_counts=True))},
                             "real": float(np.mean(sa >= hi)), "uncertain": float(np.mean((sa >= lo) & (sa < hi)))},
        "nuaa_training_prints": {"n": int(len(sn)), "real": float(np.mean(sn >= hi)),
                                 "uncertain": float(np.mean((sn >= lo) & (sn < hi)))},
    }
    card["training"] = result
    card["description"] = (
        "Two small CNNs (3x3 stride-2 stem, depthwise-separable blocks to 5x5, 1x1 conv, GAP, 3-class head; "
        f"widths {result['widths']}), one per crop of the teacher's rule (2.7x and 4.0x the face box, 80x80 BGR), "
        "trained from scratch by distilling the MiniFASNet pair's soft outputs (online, on every augmented view of the "
        "NUAA training images) with the hard labels. Score = the members' mean P(live); verdict real / uncertain / "
        "spoof by the band.")
    card["teacher"] = TEACHER
    card["data"] = (
        "Training split only: NUAA training lists (300 live + 300 print, ../shared/data/nuaa; re-cropped online around "
        "jittered boxes, the teacher labels each view), synthetic print attacks (fasfinder.training.fas_synth composites "
        "of CelebA training-identity prints over NUAA live training images and CelebA photos, each with its live "
        "original), CelebA photos of the training identities (identity % 5 in 2,3,4) as genuine captures. Never LFW, "
        "never the NUAA test lists, never the recapture probe set.")
    card["recipe"] = {k: result[k] for k in ("steps", "batch", "nuaa_share", "mix_p", "hard", "temperature", "lr", "seed")}
    card["recipe"].update({
        "optimizer": "AdamW (weight decay 5e-4), one-cycle",
        "loss": "NUAA half: KL(teacher_k(view) || student_k(view)) * T^2 + hard * CE(hard label, unmixed views); other "
                "half: CE(hard live/attack label) + hard * KL(stored teacher_k || student_k) where the teacher agrees "
                "with the hard label",
        "sampling": "half of each batch NUAA training images (online views, mixup on mix_p of them), half the stored "
                    "crops balanced per source",
        "augmentation": "box jitter (NUAA), flip, shift +-5 px, gamma, gain/channel/bias, grey 8 %, 3x3 blur 25 %, "
                        "down-and-up sampling 20 %, noise 40 %"})
    train_cmd = a.train_command or ("python -m fasfinder.training.fas_distill_data faces --out DIR; python -m "
                                    "fasfinder.training.fas_distill_data build --out DIR; python -m fasfinder.training.fas_distill "
                                    f"--data DIR/samples.npz --out RUN --steps {result['steps']} --threads 2")
    if a.data_note:
        card["data"] += " " + a.data_note
    card["command"] = (f"{train_cmd}; python -m fasfinder.training.fas_student_card "
                       f"--run RUN --data {a.data_label} --name {a.name} --genuine-spoof-q {a.genuine_spoof_q} "
                       f"--genuine-flag-q {a.genuine_flag_q} --attack-q {a.attack_q} --min-face {a.min_face} "
                       f"--min-context {a.min_context}" + "".join(f" --exclude-source {x}" for x in a.exclude_source))
    card["train_device"] = "this repository's dev machine (2 CPU cores, shared)"
    print(json.dumps({"band": card["band"], "calibration": card["calibration"]}, indent=1), file=sys.stderr)
    write_card(card, out, newline=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
