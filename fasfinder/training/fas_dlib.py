"""The frozen-dlib-trunk FAS model (``--arch dlib``, e.g. fas-nuaa-dlib): per-stage channel
statistics of dlib's face-recognition ResNet feed a logistic regression; the threshold comes from
cross-session out-of-fold scores (see :mod:`fasfinder.training.fas`). Weights (the head) + card.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..evaluation.nuaa import choose_threshold, face_cache, fas_metrics, log, read_split, session_of
from .fas_cards import write_card_and_eval
from .fas_inputs import crops_cached, size_on_disk


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
