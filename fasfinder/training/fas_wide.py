"""Train the wide-crop liveness CNN on NUAA + synthetic print attacks (torch only; GPU or CPU).

Reads the npz of :mod:`fasfinder.training.fas_synth` (JPEG crops at 4.0x the face box, labels,
sources, groups, landmarks). The network (:func:`fasfinder.liveness.build_network`) looks at the
centred ``window`` of each crop (0.675 = 2.7x the face box, 1.0 = 4.0x) resized to ``net_size``,
through the same :func:`fasfinder.liveness.window_resample` as at inference.

Validation (``--fold k`` of ``--folds``): the NUAA training subjects are split into groups
(0001-0003, 0004-0006, 0007-0009 for 3 folds); fold k trains on everything except the k-th
group's images (NUAA originals and the synthetic pairs made on their backgrounds) and a matching
third of the CelebA identities, and scores the held-out NUAA originals (new people: the test
session has six people never seen in training). Out-of-fold scores of all folds give the
decision threshold; the test subset is never read here.

    python -m fasfinder.training.fas_wide --data synth.npz --out RUN [--fold 0 --folds 3]
        [--window 0.675] [--net-size 96] [--widths 32,64,128,192,256] [--epochs 40]
        [--no-synth] [--keep-regions nose,left_eye,...] [--device cuda]

Writes RUN/final.pt (state dict), RUN/result.json (settings, seconds per epoch, held-out scores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .fas import add_recipe_args


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def fold_of_group(group: str, folds: int) -> int:
    """NUAA subjects 0001-0009 -> folds by consecutive thirds; CelebA identities by number."""

    kind, key = group.split("-", 1)
    if kind == "nuaa":
        return min(folds - 1, (int(key) - 1) * folds // 9)
    return int(key) % folds


def frame_cut(x, rng: np.random.Generator, face_frac: float, p: float = 0.5, fixed: float | None = None):
    """Zoom-in augmentation: black out everything outside a random frame rectangle around the face,
    as if the camera frame ended there (the crop's zero padding beyond the image looks the same).

    In the NUAA training lists live faces are larger than printed ones (median dlib box 187 vs 156 px
    in 640 x 480 frames), so a wide crop of a live face holds more black padding: a shortcut that
    says nothing about liveness. Cutting the frame at random, for both classes alike, takes it away.
    ``face_frac``: the face box side as a fraction of the crop (0.25 for a 4.0x crop). ``fixed``:
    cut every sample to a frame of ``fixed`` face boxes (half-size), centred (validation check).
    """

    import torch

    n, size = x.shape[0], x.shape[-1]
    box = face_frac * size
    keep = torch.ones((n, 1, size, size), device=x.device, dtype=x.dtype)
    for i in range(n):
        if fixed is None and rng.random() >= p:
            continue
        hx, hy = (fixed, fixed) if fixed is not None else rng.uniform(0.7, 2.0, size=2)
        cx = size / 2 + (0 if fixed is not None else rng.uniform(-0.5, 0.5) * max(0.0, hx - 0.6) * box)
        cy = size / 2 + (0 if fixed is not None else rng.uniform(-0.5, 0.5) * max(0.0, hy - 0.6) * box)
        x0, x1 = int(round(cx - hx * box)), int(round(cx + hx * box))
        y0, y1 = int(round(cy - hy * box)), int(round(cy + hy * box))
        m = torch.zeros((size, size), device=x.device, dtype=x.dtype)
        m[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = 1
        keep[i, 0] = m
    return x * keep


def augment_batch(x, rng: np.random.Generator, window: float, net_size: int, jitter: bool = True, face_frac: float = 0.25,
                  cut_p: float = 0.0, sharpness: bool = False):
    """x: N x 3 x S x S float in [0, 1] on the device -> N x 3 x net x net normalised like to_tensor."""

    import torch

    from ..liveness import window_box, window_resample

    n, size = x.shape[0], x.shape[-1]
    if jitter and cut_p > 0:
        x = frame_cut(x, rng, face_frac, cut_p)
    if jitter:
        boxes = [window_box(size, window, (rng.uniform(-0.12, 0.12), rng.uniform(-0.06, 0.06), rng.uniform(-0.06, 0.06)))
                 for _ in range(n)]
    else:
        boxes = [window_box(size, window)] * n
    x = window_resample(x, boxes, net_size)
    if not jitter:
        return (x - 0.5) / 0.25
    dev = x.device
    flip = torch.from_numpy(rng.random(n) < 0.5).to(dev)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    bright = torch.from_numpy(rng.uniform(0.75, 1.25, n)).float().to(dev)[:, None, None, None]
    contrast = torch.from_numpy(rng.uniform(0.75, 1.25, n)).float().to(dev)[:, None, None, None]
    sat = torch.from_numpy(rng.uniform(0.7, 1.3, n)).float().to(dev)[:, None, None, None]
    gain = torch.from_numpy(rng.uniform(0.93, 1.07, (n, 3))).float().to(dev)[:, :, None, None]
    grey = x.mean(1, keepdim=True)
    x = grey + (x - grey) * sat
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    x = x * bright * gain
    to_grey = torch.from_numpy(rng.random(n) < 0.05).to(dev)
    x = torch.where(to_grey[:, None, None, None], x.mean(1, keepdim=True).expand_as(x), x)
    if sharpness:
        # blur OR sharpen (unsharp mask) by a random amount, both classes alike: in the NUAA training
        # lists live images are twice as sharp as print attacks (mean Laplacian variance 271 vs 138),
        # a camera/session property more than a liveness one
        k = torch.exp(-0.5 * (torch.arange(5, device=dev, dtype=x.dtype) - 2) ** 2)
        k2 = (k[:, None] * k[None, :]) / (k.sum() ** 2)
        xb = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate"),
                                        k2.expand(3, 1, 5, 5).contiguous(), groups=3)
        u = rng.random(n)
        amount = np.where(u < 0.3, -rng.uniform(0.4, 1.0, n), np.where(u < 0.6, rng.uniform(0.3, 1.5, n), 0.0))
        a = torch.from_numpy(amount).float().to(dev)[:, None, None, None]
        x = x + a * (x - xb)  # a < 0: towards the blurred image, a > 0: unsharp mask
    else:
        blur = torch.from_numpy(rng.random(n) < 0.25).to(dev)
        if bool(blur.any()):
            k = torch.tensor([1.0, 2.0, 1.0], device=dev)
            k2 = (k[:, None] * k[None, :]) / 16.0
            xb = torch.nn.functional.conv2d(x, k2.expand(3, 1, 3, 3).contiguous(), padding=1, groups=3)
            x = torch.where(blur[:, None, None, None], xb, x)
    noise = torch.from_numpy(rng.uniform(0, 0.03, n) * (rng.random(n) < 0.5)).float().to(dev)[:, None, None, None]
    x = x + torch.randn_like(x) * noise
    return (x.clamp(0, 1) - 0.5) / 0.25


def load_data(path, keep_regions: str = ""):
    from .fas_synth import load

    d = load(path)
    if keep_regions:
        from ..regions import keep_regions as keep

        names = [r for r in keep_regions.split(",") if r]
        d["images"] = np.stack([keep(img, lm, names) for img, lm in zip(d["images"], d["landmarks"])])
    return d


def run(args) -> dict:
    import torch
    import torch.nn.functional as F

    from ..liveness import build_network

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dev = torch.device(args.device)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    d = load_data(args.data, args.keep_regions)
    labels = d["label"]
    source = d["source"]
    folds = np.array([fold_of_group(g, args.folds) for g in d["group"]])
    use = np.ones(len(labels), bool)
    if args.no_synth:
        use &= source == "nuaa"
    if args.fold >= 0:
        train_mask = use & (folds != args.fold)
        val_mask = (folds == args.fold) & (source == "nuaa")
        synth_val = (folds == args.fold) & (source != "nuaa")
    else:
        train_mask, val_mask, synth_val = use, np.zeros_like(use), np.zeros_like(use)
    train_idx = np.flatnonzero(train_mask)
    # NUAA originals are few beside the synthetic pairs: repeat them so that they weigh as much
    nuaa_idx = train_idx[source[train_idx] == "nuaa"]
    reps = max(1, int(round(args.nuaa_weight * (len(train_idx) - len(nuaa_idx)) / max(1, len(nuaa_idx))))) if not args.no_synth else 1
    epoch_idx = np.concatenate([train_idx] + [nuaa_idx] * (reps - 1))
    face_frac = 1.0 / float(d["meta"].get("scale", 4.0))  # the face box's share of the stored crop side
    images = torch.from_numpy(d["images"]).permute(0, 3, 1, 2).contiguous().to(dev)  # uint8 on the device
    y = torch.from_numpy(labels).to(dev)
    widths = tuple(int(v) for v in args.widths.split(","))
    net = build_network(widths, dropout=args.dropout).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * int(np.ceil(len(epoch_idx) / args.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    log(f"train {len(train_idx)} (+{len(epoch_idx) - len(train_idx)} NUAA repeats), val {int(val_mask.sum())}, "
        f"synthetic val {int(synth_val.sum())}, widths {widths}, window {args.window}, net {args.net_size}")
    epoch_s = []
    for epoch in range(args.epochs):
        t0 = time.time()
        net.train()
        perm = rng.permutation(epoch_idx)
        total = 0.0
        for b in range(0, len(perm), args.batch):
            idx = torch.from_numpy(perm[b : b + args.batch]).to(dev)
            x = augment_batch(images[idx].float() / 255.0, rng, args.window, args.net_size, jitter=True, face_frac=face_frac,
                              cut_p=args.frame_cut, sharpness=args.sharpness_aug)
            loss = F.cross_entropy(net(x), y[idx], label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        epoch_s.append(time.time() - t0)
        if (epoch + 1) % 5 == 0 or epoch == 0:
            log(f"epoch {epoch + 1}/{args.epochs} loss {total / len(perm):.4f} ({epoch_s[-1]:.1f}s)")

    def scores(mask, cut: float | None = None):
        idx = np.flatnonzero(mask)
        net.eval()
        out = []
        with torch.no_grad():
            for b in range(0, len(idx), 256):
                x = images[torch.from_numpy(idx[b : b + 256]).to(dev)].float() / 255.0
                if cut is not None:
                    x = frame_cut(x, rng, face_frac, fixed=cut)
                x = augment_batch(x, rng, args.window, args.net_size, jitter=False)
                out.append(torch.softmax(net(x), 1)[:, 1].double().cpu().numpy())
        return (np.concatenate(out) if out else np.zeros(0)), idx

    result = {"settings": vars(args), "n_train": int(len(train_idx)), "nuaa_repeats": int(reps),
              "seconds_per_epoch": float(np.median(epoch_s)), "seconds": float(np.sum(epoch_s))}
    # "val_cut": the held-out NUAA images zoomed in (frame cut at 1.1 face boxes around the face,
    # i.e. a face filling ~45% of the frame): the face-size shortcut check
    for name, mask, cut in (("val", val_mask, None), ("val_cut", val_mask, 1.1), ("synth_val", synth_val, None)):
        if mask.any():
            s, idx = scores(mask, cut)
            result[name] = {"scores": s.tolist(), "labels": labels[idx].tolist(), "groups": d["group"][idx].tolist(),
                            "sessions": d["session"][idx].tolist()}
            real, spoof = s[labels[idx] == 1], s[labels[idx] == 0]
            auc = float((real[:, None] > spoof[None, :]).mean() + 0.5 * (real[:, None] == spoof[None, :]).mean())
            result[name]["auc"] = auc
            log(f"{name}: AUC {auc:.4f}  real<0.5 {np.mean(real < 0.5):.3f}  spoof>=0.5 {np.mean(spoof >= 0.5):.3f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, out / "final.pt")
    (out / "result.json").write_text(json.dumps(result))
    return result


def oof_scores(prefix, folds: int, keys=("val", "val_cut")) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold held-out NUAA scores and labels of one configuration (its ``<prefix>-f<k>`` runs),
    the ``keys`` views (plain / zoomed-in) concatenated in a fixed order."""

    s, lab = [], []
    for k in range(folds):
        r = json.loads((Path(f"{prefix}-f{k}") / "result.json").read_text())
        for key in keys:
            s += r[key]["scores"]
            lab += r[key]["labels"]
    return np.array(s), np.array(lab)


def export_ensemble(members: list[str], oof_prefixes: list[str], name: str, folds: int = 3, out_dir=None, command: str = "",
                    extra: dict | None = None) -> dict:
    """One card + one float16 weights file for an ensemble of trained runs (``members``: run folders
    holding final.pt + result.json). Threshold: minimum ACER of the out-of-fold scores (held-out
    ``val`` and ``val_cut``) averaged over the configurations ``oof_prefixes`` (``<prefix>-f<k>``
    run folders) - training data only."""

    import torch

    from ..evaluation.nuaa import choose_threshold, fas_metrics
    from ..modelfiles import file_entry, models_dir, write_card

    state, windows, results = {}, [], []
    for i, m in enumerate(members):
        res = json.loads((Path(m) / "result.json").read_text())
        results.append(res)
        windows.append(float(res["settings"]["window"]))
        for k, v in torch.load(str(Path(m) / "final.pt"), map_location="cpu", weights_only=True).items():
            state[f"members.{i}.{k}"] = v.half() if v.is_floating_point() else v
    st = results[0]["settings"]
    oof = [oof_scores(prefix, folds) for prefix in oof_prefixes]
    lab = oof[0][1]
    if any(not np.array_equal(lab, other) for _, other in oof[1:]):
        raise ValueError("the configurations' held-out folds differ (different data or folds)")
    s = np.mean([scores for scores, _ in oof], axis=0)
    thr = choose_threshold(s[lab == 1], s[lab == 0])
    oof = fas_metrics(s[lab == 1], s[lab == 0], thr)
    out_dir = Path(out_dir) if out_dir else models_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{name}.pt"
    torch.save(state, weights)
    meta = json.loads(str(np.load(st["data"], allow_pickle=False)["meta"])) if Path(st["data"]).is_file() else {"scale": 4.0, "size": 144}
    keep = st.get("keep_regions") or ""
    card = {
        "name": name,
        "kind": "liveness (face anti-spoofing) classifier",
        "description": (f"Ensemble of {len(members)} small CNNs (5 conv3x3-BN-ReLU blocks, GAP, linear; mean of their class "
                        "probabilities), each trained from scratch on the NUAA training subset plus synthetic print attacks "
                        f"(fasfinder.training.fas_synth). Input: the square crop of {meta['scale']} x the dlib face box at "
                        f"{meta['size']} px; each member sees its centred window of it ({sorted(set(windows))} of the side = "
                        f"{sorted(set(round(meta['scale'] * w, 2) for w in windows))} x the face box) resized to {st['net_size']} px"
                        + (f"; everything outside the regions {keep} is black" if keep else "") + ". Output softmax index 1 = P(real)."),
        "files": [file_entry("weights", weights)],
        "architecture": {"type": "FasNetEnsemble", "widths": [int(v) for v in st["widths"].split(",")], "windows": windows,
                         "members": [{"window": w, "seed": r["settings"]["seed"]} for w, r in zip(windows, results)],
                         "storage": "float16 (run in float32)"},
        "input": {"crop_scale": meta["scale"], "size": meta["size"], "net_size": st["net_size"],
                  **({"keep_regions": [r for r in keep.split(",") if r]} if keep else {})},
        "threshold": float(thr),
        "threshold_rule": (f"minimum ACER of out-of-fold scores on the NUAA training images: {folds} runs per configuration "
                           "with one subject group held out (0001-0003 / 0004-0006 / 0007-0009, with their synthetic pairs and "
                           "a third of the CelebA identities), scored as they are and zoomed in (frame cut at 1.1 face boxes); "
                           f"per held-out image, the mean of the scores of the configurations {[Path(p).name for p in oof_prefixes]} "
                           "(each scored by its own fold model). Training data only."),
        "validation": {"protocol": f"{folds}-fold NUAA-subject hold-out (both sessions), plain + zoomed-in",
                       "n_real": int((lab == 1).sum()), "n_spoof": int((lab == 0).sum()),
                       **{k: v for k, v in oof.items() if k != "threshold"}},
        "data": ("NUAA Photograph Imposter Database subset (../shared/data/nuaa): the 300 real + 300 print-attack training images; "
                 "synthetic print attacks made from them and from CelebA in-the-wild images (../shared/data/celeba_subset), each "
                 "paired with its untouched live original. Never the NUAA test lists, never LFW."),
        "recipe": {"optimizer": "AdamW", "lr": st["lr"], "schedule": "one-cycle (15% warm-up)", "weight_decay": st["weight_decay"],
                   "batch": st["batch"], "epochs": st["epochs"], "dropout": st["dropout"], "label_smoothing": st["label_smoothing"],
                   "seeds": sorted({r["settings"]["seed"] for r in results}), "nuaa_weight": st["nuaa_weight"],
                   "synthetic": not st["no_synth"], "frame_cut": st.get("frame_cut"), "sharpness_aug": st.get("sharpness_aug"),
                   "augmentation": "window scale x exp(+-0.12), shift +-6%, frame cut (zoom-in) 50%, flip, brightness/contrast "
                                   "x[0.75,1.25], saturation x[0.7,1.3], channel gain +-7%, grey 5%, blur or unsharp mask 60%, "
                                   "Gaussian noise sd<=0.03 50%",
                   "faces": "dlib HOG (FaceAnalyzer), largest face; centre box when none is found"},
        "train_device": "one NVIDIA H100 (lent GPU box); all members trained at once, one process each",
        "seconds_per_epoch": round(float(np.median([r["seconds_per_epoch"] for r in results])), 2),
        "train_seconds_per_member": round(float(np.median([r["seconds"] for r in results])), 1),
        "n_train": results[0]["n_train"],
        "command": command,
    }
    if extra:
        card.update(extra)
    write_card(card, out_dir)
    return card


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "export":
        ap = argparse.ArgumentParser(description="write a model card + weights from trained runs")
        ap.add_argument("export")
        ap.add_argument("--runs", required=True, help="folder holding <config>-all/ and <config>-f<k>/")
        ap.add_argument("--config", required=True, help="configuration(s) whose held-out folds give the threshold (comma-separated)")
        ap.add_argument("--members", default="", help="comma-separated run folders under --runs (default: <config>-all of each "
                        "--config); several make an ensemble")
        ap.add_argument("--name", required=True)
        ap.add_argument("--folds", type=int, default=3)
        ap.add_argument("--out-dir", default="")
        ap.add_argument("--command", default="")
        a = ap.parse_args(argv)
        runs, configs = Path(a.runs), a.config.split(",")
        members = a.members.split(",") if a.members else [f"{c}-all" for c in configs]
        card = export_ensemble([str(runs / m) for m in members], [str(runs / c) for c in configs], a.name, a.folds,
                               a.out_dir or None, a.command)
        print(json.dumps({"name": card["name"], "threshold": card["threshold"], "validation": card["validation"]}))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--fold", type=int, default=-1, help="held-out subject group (-1: train on everything)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--window", type=float, default=0.675, help="fraction of the stored 4.0x crop the net sees (0.675 = 2.7x)")
    ap.add_argument("--net-size", type=int, default=96)
    ap.add_argument("--widths", default="32,64,128,192,256")
    add_recipe_args(ap, epochs=40, batch=128, lr=2e-3)
    ap.add_argument("--nuaa-weight", type=float, default=0.5, help="NUAA originals' share of an epoch relative to the synthetic samples")
    ap.add_argument("--no-synth", action="store_true", help="NUAA training images only (the control)")
    ap.add_argument("--sharpness-aug", action="store_true", help="random blur / unsharp mask (both classes) instead of the light 3x3 blur")
    ap.add_argument("--frame-cut", type=float, default=0.5, help="probability of the zoom-in (frame cut) augmentation")
    ap.add_argument("--keep-regions", default="", help="black out everything but these regions (efficient-FAS experiment)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
