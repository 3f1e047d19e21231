"""Train the liveness (FAS) model on the NUAA subset (BENCHMARKS.md section 5).

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

Face boxes/landmarks for the NUAA images are detected once and cached (default under /tmp, never
in the repository). Checkpoints are written every epoch to ``--ckpt-dir`` and a rerun with the
same arguments resumes. The weights (state dict) and model card go to ``models/``; the decision
threshold is chosen on the training images only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

LISTS = {
    "train": [("subset_client_train_raw.txt", "ClientRaw", 1), ("subset_imposter_train_raw.txt", "ImposterRaw", 0)],
    "test": [("subset_client_test_raw.txt", "ClientRaw", 1), ("subset_imposter_test_raw.txt", "ImposterRaw", 0)],
}
DEFAULT_CACHE = Path(os.environ.get("FASFINDER_FAS_CACHE", "/tmp/fasfinder_fas_cache"))


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
# Inputs
# --------------------------------------------------------------------------------------------
def make_inputs(nuaa_dir, items, faces: dict, input_cfg: dict, pad: int = 0) -> np.ndarray:
    """uint8 N x (S + 2 pad)^2 x 3 crops: the model input plus ``pad`` pixels of context on each
    side (for random-shift augmentation); region masking (``keep_regions``) applied if set."""

    from ..faces import Face
    from ..imaging import load_image
    from ..liveness import model_input

    size = int(input_cfg["size"])
    big = dict(input_cfg)
    big["size"] = size + 2 * pad
    big["crop_scale"] = float(input_cfg["crop_scale"]) * (size + 2 * pad) / size
    out = np.zeros((len(items), size + 2 * pad, size + 2 * pad, 3), dtype=np.uint8)
    for i, (rel, _) in enumerate(items):
        rgb = load_image(Path(nuaa_dir) / "db" / rel).pixels
        f = faces[rel]
        face = Face(box=tuple(f["box"]), landmarks=np.asarray(f["landmarks"], np.float32), shape5=np.zeros((5, 2), np.float32))
        out[i] = model_input(rgb, face, big)
    return out


def crops_cached(nuaa_dir, split, items, faces, input_cfg, pad, cache_dir: Path = DEFAULT_CACHE) -> np.ndarray:
    key = json.dumps({"split": split, "n": len(items), "input": input_cfg, "pad": pad, "nuaa": str(Path(nuaa_dir).resolve())}, sort_keys=True)
    path = Path(cache_dir) / f"crops_{hashlib.sha1(key.encode()).hexdigest()[:12]}.npy"
    if path.is_file():
        return np.load(path)
    arr = make_inputs(nuaa_dir, items, faces, input_cfg, pad)
    np.save(path, arr)
    return arr


def augment(batch: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random shift (crop of ``size`` from the padded crop), horizontal flip, brightness/contrast."""

    n, big = batch.shape[0], batch.shape[1]
    out = np.empty((n, size, size, 3), dtype=np.float32)
    for i in range(n):
        dy, dx = rng.integers(0, big - size + 1, size=2)
        img = batch[i, dy : dy + size, dx : dx + size].astype(np.float32)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = img * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20)
        out[i] = np.clip(img, 0, 255)
    return out


def center(batch: np.ndarray, size: int) -> np.ndarray:
    p = (batch.shape[1] - size) // 2
    return batch[:, p : p + size, p : p + size]


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
    logit = lambda p: np.log(np.clip(p, 1e-7, 1 - 1e-7) / (1 - np.clip(p, 1e-7, 1 - 1e-7)))
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


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def predict_arrays(net, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    import torch

    from ..liveness import to_tensor

    net.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            out.append(torch.softmax(net(to_tensor(crops[i : i + batch])), dim=1)[:, 1].double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def train(args) -> dict:
    import torch
    import torch.nn.functional as F

    from ..liveness import build_network

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    input_cfg = {"crop_scale": args.crop_scale, "size": args.size}
    if args.keep_regions:
        input_cfg["keep_regions"] = [r.strip() for r in args.keep_regions.split(",") if r.strip()]
    widths = tuple(int(w) for w in args.widths.split(","))
    pad = max(2, args.size // 16)

    items = read_split(args.nuaa, "train")
    faces = face_cache(args.nuaa, "train", Path(args.cache_dir))
    t_prep = time.time()
    crops = crops_cached(args.nuaa, "train", items, faces, input_cfg, pad, Path(args.cache_dir))
    labels = np.array([lab for _, lab in items], dtype=np.int64)
    prep_s = time.time() - t_prep
    val_idx = np.zeros(0, dtype=np.int64)
    if args.val_subjects or args.val_session:
        held = set(args.val_subjects.split(",")) if args.val_subjects else set()
        if args.val_session:
            is_val = np.array([session_of(rel) == args.val_session for rel, _ in items])
        else:
            is_val = np.array([rel.split("/")[1] in held for rel, _ in items])
        val_idx = np.flatnonzero(is_val)
        tr_idx = np.flatnonzero(~is_val)
    else:
        tr_idx = np.arange(len(items))
    log(f"train {len(tr_idx)} (real {labels[tr_idx].sum()}), val {len(val_idx)}; input {input_cfg}; crops prepared in {prep_s:.1f}s")

    net = build_network(widths, dropout=args.dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = int(np.ceil(len(tr_idx) / args.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.2)

    ckpt_dir = Path(args.ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    run_key = hashlib.sha1(json.dumps({k: v for k, v in vars(args).items() if k not in ("eval", "out_dir")}, sort_keys=True).encode()).hexdigest()[:10]
    ckpt = ckpt_dir / f"{args.name}_{run_key}.ckpt"
    start, history, train_time = 0, [], 0.0
    if ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        start, history, train_time = state["epoch"], state["history"], state["train_time"]
        log(f"resumed from {ckpt} at epoch {start}")

    for epoch in range(start, args.epochs):
        t0 = time.time()
        net.train()
        perm = rng.permutation(tr_idx)
        total, correct, loss_sum = 0, 0, 0.0
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch : (b + 1) * args.batch]
            x = torch.from_numpy(augment(crops[idx], args.size, rng)).permute(0, 3, 1, 2)
            x = (x / 255.0 - 0.5) / 0.25
            y = torch.from_numpy(labels[idx])
            logits = net(x)
            loss = F.cross_entropy(logits, y, label_smoothing=args.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            total += len(idx)
        dt = time.time() - t0
        train_time += dt
        rec = {"epoch": epoch + 1, "loss": loss_sum / total, "train_acc": correct / total, "seconds": round(dt, 2)}
        if len(val_idx):
            p = predict_arrays(net, center(crops[val_idx], args.size))
            yv = labels[val_idx]
            m = fas_metrics(p[yv == 1], p[yv == 0], 0.5)
            nll = float(-np.mean(np.log(np.clip(np.where(yv == 1, p, 1 - p), 1e-7, 1))))
            rec.update({"val_acer@0.5": m["acer"], "val_auc": m["auc"], "val_nll": nll})
        history.append(rec)
        log(json.dumps(rec))
        torch.save(
            {"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "rng": rng.bit_generator.state,
             "torch_rng": torch.get_rng_state(), "epoch": epoch + 1, "history": history, "train_time": train_time},
            ckpt,
        )

    result = {"input": input_cfg, "widths": list(widths), "history": history, "train_seconds": round(train_time, 1),
              "seconds_per_epoch": round(train_time / max(1, len(history)), 2), "crop_prep_seconds": round(prep_s, 1)}
    if len(val_idx):
        result["val"] = history[-1]
        pv = predict_arrays(net, center(crops[val_idx], args.size))
        result["val_scores"] = {"real": pv[labels[val_idx] == 1].tolist(), "spoof": pv[labels[val_idx] == 0].tolist()}
        return result

    # threshold on the (un-augmented) training images only
    p = predict_arrays(net, center(crops, args.size))
    thr = choose_threshold(p[labels == 1], p[labels == 0])
    result["threshold"] = thr
    result["train_metrics"] = fas_metrics(p[labels == 1], p[labels == 0], thr)
    result["net"] = net
    return result


def fit_logreg(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 200) -> dict:
    """L2-regularised logistic regression (torch L-BFGS from zero, deterministic) on features
    standardised with the training mean/std. Returns {"mu", "sd", "weight" (1 x D), "bias" (1)}
    as float32 tensors (the DlibStatsFas head state)."""

    import torch

    mu, sd = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mu) / sd).double()
    yt = torch.from_numpy(np.asarray(y, np.float64))
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt) + l2 * (w * w).sum() / 2
        loss.backward()
        return loss

    opt.step(closure)
    return {"mu": torch.from_numpy(mu.astype(np.float32)), "sd": torch.from_numpy(sd.astype(np.float32)),
            "weight": w.detach().float().view(1, -1), "bias": b.detach().float().view(1)}


def logreg_predict(head: dict, x: np.ndarray) -> np.ndarray:
    z = ((x - head["mu"].numpy()) / head["sd"].numpy()) @ head["weight"].numpy()[0].astype(np.float64) + float(head["bias"][0])
    return 1.0 / (1.0 + np.exp(-z))


def dlib_features(net, crops: np.ndarray, batch: int = 32) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            out.append(net.features(net.preprocess(crops[i : i + batch])).double().numpy())
    return np.concatenate(out)


def train_dlib(args) -> dict:
    """Frozen dlib trunk + per-stage channel statistics + logistic regression (see module doc)."""

    import torch

    from ..liveness import DLIB_STAGES, build_dlib_fas

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    input_cfg = {"crop_scale": args.crop_scale, "size": args.size}
    if args.keep_regions:
        input_cfg["keep_regions"] = [r.strip() for r in args.keep_regions.split(",") if r.strip()]
    stages = DLIB_STAGES[: DLIB_STAGES.index(args.last_stage) + 1]
    items = read_split(args.nuaa, "train")
    faces = face_cache(args.nuaa, "train", Path(args.cache_dir))
    t_prep = time.time()
    crops = crops_cached(args.nuaa, "train", items, faces, input_cfg, 0, Path(args.cache_dir))
    prep_s = time.time() - t_prep
    labels = np.array([lab for _, lab in items], dtype=np.int64)
    sessions = np.array([session_of(rel) for rel, _ in items])
    sizes = tuple(int(v) for v in args.sizes.split(",") if v.strip())
    net = build_dlib_fas(stages, args.pool, sizes)
    t0 = time.time()
    feats = dlib_features(net, crops)
    feat_s = time.time() - t0
    log(f"train {len(items)} (real {labels.sum()}); input {input_cfg}; features {feats.shape} in {feat_s:.1f}s")

    # cross-session out-of-fold scores -> threshold and validation metrics
    oof = np.zeros(len(items))
    folds = {}
    for tr in sorted(set(sessions)):
        itr, iva = sessions == tr, sessions != tr
        oof[iva] = logreg_predict(fit_logreg(feats[itr], labels[itr], args.l2), feats[iva])
        yv = labels[iva]
        folds[f"train session {tr} -> validate on the rest"] = fas_metrics(oof[iva][yv == 1], oof[iva][yv == 0], 0.5)
    thr = choose_threshold(oof[labels == 1], oof[labels == 0])
    val = fas_metrics(oof[labels == 1], oof[labels == 0], thr)
    val["nll"] = float(-np.mean(np.log(np.clip(np.where(labels == 1, oof, 1 - oof), 1e-9, 1))))
    log(f"cross-session out-of-fold: threshold {thr:.4f} ACER {val['acer']:.4f} AUC {val['auc']:.5f} NLL {val['nll']:.3f}")

    t1 = time.time()
    head = fit_logreg(feats, labels, args.l2)
    fit_s = time.time() - t1
    net.load_head(head)
    p = logreg_predict(head, feats)
    return {
        "input": input_cfg, "stages": list(stages), "pool": args.pool, "sizes": list(sizes), "dim": int(feats.shape[1]),
        "threshold": thr, "train_metrics": fas_metrics(p[labels == 1], p[labels == 0], thr),
        "validation": {"rule": "cross-session out-of-fold (head fitted on one training session, scored on the other); "
                       "threshold = minimum ACER of these held-out scores", "pooled": val, "folds": folds},
        "net": net, "head": head, "crops": crops,
        "train_seconds": round(feat_s + fit_s, 2), "feature_pass_seconds": round(feat_s, 2), "fit_seconds": round(fit_s, 2),
        "crop_prep_seconds": round(prep_s, 1),
    }


def size_on_disk(crops: np.ndarray, size: int) -> dict:
    """Mean PNG and JPEG (q=90) bytes of the model inputs (centre crops)."""

    import cv2

    c = center(crops, size)
    png = [len(cv2.imencode(".png", im[:, :, ::-1])[1]) for im in c]
    jpg = [len(cv2.imencode(".jpg", im[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]) for im in c]
    return {"mean_png_bytes": int(np.mean(png)), "mean_jpeg90_bytes": int(np.mean(jpg))}


def region_ranking(nuaa_dir, card_name: str, cache_dir: Path = DEFAULT_CACHE) -> list[str]:
    """The 10 regions sorted by the model's mean Area Importance over the TRAINING spoof images
    (computed once and stored in that model's card as ``area_importance_train``)."""

    from ..evaluation.fas import evaluate_fas
    from ..liveness import LivenessModel
    from ..modelfiles import load_card, models_dir

    card = load_card(card_name)
    if "area_importance_train" not in card:
        model = LivenessModel(card)
        m = evaluate_fas(nuaa_dir, model=model, faces=face_cache(nuaa_dir, "train", cache_dir), split="train",
                         progress=lambda i, n: log(f"ranking ({card_name} Area Importance, train) {i}/{n}") if i % 100 == 0 else None)
        card["area_importance_train"] = m["area_importance"]
        (models_dir() / f"{card_name}.card.json").write_text(json.dumps(card, indent=1))
    ai = card["area_importance_train"]["spoof"]
    return sorted(ai, key=lambda r: -ai[r])


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
    ap.add_argument("--ckpt-dir", default="/tmp/fasfinder_fas_ckpt")
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
    res = train(args)
    if args.val_subjects or args.val_session:
        summary = {k: v for k, v in res.items() if k != "net"}
        print(json.dumps(summary))
        if args.result_json:
            Path(args.result_json).write_text(json.dumps(summary, indent=1))
        return 0

    import torch

    from ..modelfiles import models_dir, sha256_file

    out_dir = Path(args.out_dir) if args.out_dir else models_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{args.name}.pt"
    torch.save({k: v.detach().clone() for k, v in res["net"].state_dict().items()}, weights)
    pad = max(2, args.size // 16)
    crops = crops_cached(args.nuaa, "train", read_split(args.nuaa, "train"), face_cache(args.nuaa, "train", Path(args.cache_dir)), res["input"], pad, Path(args.cache_dir))
    cmd = "python -m fasfinder.training.fas " + " ".join(argv if argv is not None else sys.argv[1:])
    card = {
        "name": args.name,
        "kind": "liveness (face anti-spoofing) classifier",
        "description": "Small CNN (5 conv3x3-BN-ReLU blocks, GAP, linear) trained from scratch on the NUAA subset; "
        "input: square crop of crop_scale x the dlib face box, zero-padded, resized to size x size"
        + (f", only regions {res['input']['keep_regions']} kept (rest black)" if res["input"].get("keep_regions") else "")
        + ". Output softmax index 1 = P(real).",
        "files": [{"name": "weights", "path": weights.name, "sha256": sha256_file(weights)}],
        "architecture": {"type": "FasNet", "widths": res["widths"], "params": int(sum(p.numel() for p in res["net"].parameters()))},
        "input": res["input"],
        "threshold": res["threshold"],
        "threshold_rule": "minimum training ACER (un-augmented training crops); ties -> middle of the widest gap in logit space. Training data only.",
        "data": "NUAA Photograph Imposter Database subset (../shared/data/nuaa, see its SOURCE.md): 300 real + 300 print-attack train images",
        "split": "train: db/subset_client_train_raw.txt + db/subset_imposter_train_raw.txt; test: db/subset_*_test_raw.txt (BENCHMARKS.md section 5)",
        "recipe": {"optimizer": "AdamW", "lr": args.lr, "schedule": "one-cycle (20% warm-up)", "weight_decay": args.weight_decay,
                   "batch": args.batch, "dropout": args.dropout, "label_smoothing": args.label_smoothing, "seed": args.seed,
                   "augmentation": "random shift +-%d px, horizontal flip, brightness x[0.8,1.2] +-20" % pad,
                   "faces": "dlib HOG (FaceAnalyzer), largest face; centre box (0.5 x short side) when none is found",
                   "threads": args.threads},
        "command": cmd,
        "epochs": args.epochs,
        "train_wall_seconds": res["train_seconds"],
        "seconds_per_epoch": res["seconds_per_epoch"],
        "train_metrics": res["train_metrics"],
        "input_size_on_disk": size_on_disk(crops, args.size),
        "region_selection": ({"rule": args.keep_rank, "ranked_by": args.rank_from + " area_importance_train.spoof"} if args.keep_rank else None),
        "history": res["history"],
        "license": "trained here from scratch; NUAA's own licence terms (none stated) apply to the data",
    }
    write_card_and_eval(args, card, out_dir, weights)
    log(f"total {time.time() - t_start:.0f}s")
    return 0


def write_card_and_eval(args, card: dict, out_dir: Path, weights: Path, area_importance: bool = True) -> None:
    """Write ``<name>.card.json``; with ``--eval`` run protocol 5 on the test subset (cached faces of
    the same ``detect_face`` as evaluate_fas) and store the metrics in the card. Region-masked
    models (efficient FAS) skip the Area Importance (``area_importance=False``)."""

    card_path = out_dir / f"{args.name}.card.json"
    card_path.write_text(json.dumps(card, indent=1))
    log(f"wrote {weights} and {card_path}")
    if not args.eval:
        return
    from ..evaluation.fas import evaluate_fas
    from ..liveness import LivenessModel

    model = LivenessModel(card, weights_path=weights)
    test_faces = face_cache(args.nuaa, "test", Path(args.cache_dir))
    m = evaluate_fas(args.nuaa, model=model, faces=test_faces, area_importance=area_importance,
                     progress=lambda i, n: log(f"eval {i}/{n}") if i % 100 == 0 else None)
    card["metrics"] = {"nuaa_subset_test": m, "measured_by": "fasfinder.evaluation.fas.evaluate_fas"}
    card_path.write_text(json.dumps(card, indent=1))
    print(json.dumps({k: v for k, v in m.items() if k != "misclassified"}))


def main_dlib(args, argv, t_start) -> int:
    import torch

    from ..modelfiles import models_dir, sha256_file

    res = train_dlib(args)
    out_dir = Path(args.out_dir) if args.out_dir else models_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{args.name}.pt"
    torch.save(res["head"], weights)
    cmd = "python -m fasfinder.training.fas " + " ".join(argv if argv is not None else sys.argv[1:])
    keep = res["input"].get("keep_regions")
    card = {
        "name": args.name,
        "kind": "liveness (face anti-spoofing) classifier",
        "description": "Frozen convolutional trunk of dlib's face-recognition ResNet (stem .. " + res["stages"][-1]
        + ", weights from dlib_face_recognition_resnet_model_v1.dat, loaded and sha256-checked via dlib-models.card.json; "
        "PyTorch port fasfinder/engines/dlib_torch.py) on a square crop of crop_scale x the dlib face box, zero-padded, "
        "resized to size x size" + (f", only regions {keep} kept (rest black)" if keep else "")
        + (f"; the trunk runs on the crop resized to each of {res['sizes']} px" if res["sizes"] else "")
        + "; the spatial " + ("mean and " if res["pool"] == "meanstd" else "") + "standard deviation of every channel of each "
        "stage, standardised, feeds a logistic regression (trained here). Output softmax index 1 = P(real) = sigmoid(logit).",
        "files": [{"name": "weights", "path": weights.name, "sha256": sha256_file(weights)}],
        "requires": ["dlib-models (resnet: dlib_face_recognition_resnet_model_v1.dat)", "dlib-resnet-torch (the port)"],
        "architecture": {"type": "DlibStatsFas", "stages": res["stages"], "pool": res["pool"], "sizes": res["sizes"], "dim": res["dim"],
                         "trainable_params": int(res["dim"] + 1), "frozen_trunk_params": int(sum(p.numel() for n, p in res["net"].named_parameters() if not n.startswith("head")))},
        "input": res["input"],
        "threshold": res["threshold"],
        "threshold_rule": "training data only: minimum ACER of cross-session out-of-fold scores (head fitted on NUAA training "
        "session 1 scores session 2 and vice versa); ties -> middle of the widest gap in logit space. The test subset is session 3.",
        "validation": res["validation"],
        "data": "NUAA Photograph Imposter Database subset (../shared/data/nuaa, see its SOURCE.md): 300 real + 300 print-attack train images",
        "split": "train: db/subset_client_train_raw.txt + db/subset_imposter_train_raw.txt (sessions 1-2); test: db/subset_*_test_raw.txt "
        "(session 3; BENCHMARKS.md section 5)",
        "recipe": {"head": "logistic regression, L-BFGS from zero (deterministic), features standardised with the training mean/std",
                   "l2": args.l2, "seed": args.seed, "augmentation": "none (photometric augmentation did not help cross-session validation)",
                   "faces": "dlib HOG (FaceAnalyzer), largest face; centre box (0.5 x short side) when none is found",
                   "threads": args.threads},
        "command": cmd,
        "epochs": 1,
        "train_wall_seconds": res["train_seconds"],
        "seconds_per_epoch": res["train_seconds"],
        "seconds_note": "one pass of the frozen trunk over the 600 training crops (" + str(res["feature_pass_seconds"])
        + " s) + the head fit (" + str(res["fit_seconds"]) + " s); shared 2-core CPU, 1 torch thread",
        "train_metrics": res["train_metrics"],
        "input_size_on_disk": size_on_disk(res["crops"], args.size),
        "region_selection": ({"rule": args.keep_rank, "ranked_by": args.rank_from + " area_importance_train.spoof"} if args.keep_rank else None),
        "explanation": {"method": "Grad-CAM++ of the last stage used (" + res["stages"][-1] + ": output of the last residual block, "
                        "i.e. of the trunk's last convolution used by the head), gradient of the predicted class's logit",
                        "note": "the frozen trunk is fully convolutional; the map is coarse (about 1/40 of the crop side: 4x4 at 160 px, 5x5 at 192 px)"},
        "license": "head trained here; dlib weights CC0 (Davis King); NUAA's own licence terms (none stated) apply to the data",
    }
    write_card_and_eval(args, card, out_dir, weights, area_importance=not keep)
    log(f"total {time.time() - t_start:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
