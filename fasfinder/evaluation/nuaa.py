"""The NUAA Photograph Imposter subset (docs/BENCHMARKS.md section 5): the official protocol lists,
the face of every image (detected once and cached) and the FAS metrics and threshold rule.

Shared by protocol 5 (:mod:`fasfinder.evaluation.fas`) and the FAS trainers in
:mod:`fasfinder.training` (which import this module; nothing here imports training code).
Face boxes/landmarks are cached under ``FASFINDER_FAS_CACHE`` (default: ``fas_nuaa`` in the user
cache dir; never world-writable /tmp, never in the repository).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..settings import cache_dir

LISTS = {
    "train": [("subset_client_train_raw.txt", "ClientRaw", 1), ("subset_imposter_train_raw.txt", "ImposterRaw", 0)],
    "test": [("subset_client_test_raw.txt", "ClientRaw", 1), ("subset_imposter_test_raw.txt", "ImposterRaw", 0)],
}
#: ``FASFINDER_FAS_CACHE``, else ``fas_nuaa`` in the user cache dir (never world-writable /tmp)
DEFAULT_CACHE = Path(os.environ.get("FASFINDER_FAS_CACHE") or cache_dir() / "fas_nuaa")



def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def read_split(nuaa_dir, split: str) -> list[tuple[str, int]]:
    """[(relative path under db/, label 1 = real / 0 = spoof)] of one protocol split."""

    db = Path(nuaa_dir) / "db"
    items = []
    for list_name, folder, label in LISTS[split]:
        for line in (db / list_name).read_text().splitlines():
            line = line.strip().replace("\\", "/")
            if line:
                items.append((f"{folder}/{line}", label))
    return items


def session_of(rel: str) -> int:
    """NUAA session number from a file name ID_glasses_pos_session_picNo.jpg."""

    return int(Path(rel).stem.split("_")[3])


def detect_face(analyzer, rgb):
    """Largest detected face, or the centre-box fallback (``detected`` False)."""

    from ..liveness import center_box

    faces = analyzer.detect(rgb)
    if faces:
        return faces[0], True
    return analyzer.face_at(rgb, center_box(*rgb.shape[:2])), False


def face_cache(nuaa_dir, split: str, cache_dir: Path = DEFAULT_CACHE) -> dict:
    """{rel path: {"box", "landmarks", "detected"}} for a split, computed once and cached."""

    from ..faces import FaceAnalyzer
    from ..imaging import load_image

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(str(Path(nuaa_dir).resolve()).encode()).hexdigest()[:10]
    path = cache_dir / f"faces_{split}_{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    analyzer = FaceAnalyzer()
    out = {}
    items = read_split(nuaa_dir, split)
    t0 = time.time()
    for i, (rel, _) in enumerate(items):
        rgb = load_image(Path(nuaa_dir) / "db" / rel).pixels
        face, detected = detect_face(analyzer, rgb)
        out[rel] = {"box": list(face.box), "landmarks": face.landmarks.tolist(), "detected": detected}
        if (i + 1) % 100 == 0:
            log(f"faces {split}: {i + 1}/{len(items)} ({time.time() - t0:.0f}s)")
    path.write_text(json.dumps(out))
    return out


# --------------------------------------------------------------------------------------------
# Threshold and metrics
# --------------------------------------------------------------------------------------------
def choose_threshold(scores_real: np.ndarray, scores_spoof: np.ndarray) -> float:
    """Threshold on P(real) minimising training ACER; ties -> the middle of the widest gap (in
    logit space) so that it does not sit on a training score."""

    s = np.concatenate([scores_real, scores_spoof]).astype(np.float64)
    cand = np.unique(np.concatenate([s, [0.0, 1.0]]))
    mids = (cand[:-1] + cand[1:]) / 2.0 if len(cand) > 1 else cand

    def acer(t):
        return (np.mean(scores_spoof >= t) + np.mean(scores_real < t)) / 2.0

    vals = np.array([acer(t) for t in mids])
    best = vals.min()
    # the run of candidate intervals that reach the minimum: take the widest gap in logit space
    def logit(p):
        return np.log(np.clip(p, 1e-7, 1 - 1e-7) / (1 - np.clip(p, 1e-7, 1 - 1e-7)))

    best_t, best_w = 0.5, -1.0
    for i in np.flatnonzero(vals == best):
        w = logit(cand[i + 1]) - logit(cand[i])
        if w > best_w:
            best_w = w
            lo, hi = logit(cand[i]), logit(cand[i + 1])
            best_t = float(1.0 / (1.0 + np.exp(-(lo + hi) / 2.0)))
    return best_t


def fas_metrics(scores_real, scores_spoof, threshold: float) -> dict:
    """APCER/BPCER/ACER, AUC, precision/recall/F1 with spoof as the positive class."""

    from sklearn.metrics import roc_auc_score

    sr = np.asarray(scores_real, np.float64)
    ss = np.asarray(scores_spoof, np.float64)
    apcer = float(np.mean(ss >= threshold)) if len(ss) else float("nan")  # attacks accepted as real
    bpcer = float(np.mean(sr < threshold)) if len(sr) else float("nan")  # real rejected
    tp = int(np.sum(ss < threshold))
    fp = int(np.sum(sr < threshold))
    fn = int(np.sum(ss >= threshold))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    y = np.concatenate([np.zeros(len(sr)), np.ones(len(ss))])  # spoof positive
    auc = float(roc_auc_score(y, -np.concatenate([sr, ss]))) if len(sr) and len(ss) else float("nan")
    return {
        "apcer": apcer,
        "bpcer": bpcer,
        "acer": (apcer + bpcer) / 2.0,
        "auc": auc,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "threshold": float(threshold),
        "n_real": int(len(sr)),
        "n_spoof": int(len(ss)),
        "errors": {"spoof_accepted": fn, "real_rejected": fp},
    }


def label_metrics(predicted, truth) -> dict:
    """APCER / BPCER / ACER from three-way labels ("real" / "spoof" / "uncertain"; truth 1 = live):
    an attack counts as accepted only when labelled "real", a live face as rejected only when
    labelled "spoof"; the uncertain rate of each class beside them."""

    p = np.asarray(predicted)
    t = np.asarray(truth)
    live, attack = p[t == 1], p[t == 0]

    def share(arr, label):
        return float(np.mean(arr == label)) if len(arr) else float("nan")

    apcer, bpcer = share(attack, "real"), share(live, "spoof")
    return {"apcer": apcer, "bpcer": bpcer, "acer": (apcer + bpcer) / 2.0,
            "uncertain_real": share(live, "uncertain"), "uncertain_spoof": share(attack, "uncertain"),
            "errors": {"spoof_accepted": int(np.sum(attack == "real")), "real_rejected": int(np.sum(live == "spoof"))}}
