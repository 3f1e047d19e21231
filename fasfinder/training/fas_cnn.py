"""The small FAS CNN (``--arch fasnet``, e.g. fas-nuaa-cnn) trained from scratch on the NUAA
training lists: training with checkpoints/resume, threshold on the training images, weights + card.
Run through :mod:`fasfinder.training.fas`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..evaluation.nuaa import choose_threshold, face_cache, fas_metrics, log, read_split, session_of
from .checkpoints import load_checkpoint, plain
from .fas_cards import write_card_and_eval
from .fas_inputs import augment, center, crops_cached, size_on_disk


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
        state = load_checkpoint(ckpt)  # weights_only=True: tensors, dicts, lists, numbers
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
        history.append(plain(rec))
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


def main_cnn(args, argv, t_start) -> int:
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
                   "augmentation": f"random shift +-{pad:d} px, horizontal flip, brightness x[0.8,1.2] +-20",
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
