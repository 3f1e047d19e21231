"""Training with the teacher run on every augmented batch (made for a GPU box; runs on CPU too).

Differences from :mod:`.heatmap_train` (the CPU loop over a cache of fixed teacher embeddings):

* The input is :func:`.heatmap_data.prepare_chip_file`'s file (dlib's aligned 150 px chips, JPEG). The
  heatmaps are computed here with the very definition used at query time (:class:`fasfinder.engines.heatmap_input.FastCam`,
  on the device) and the teacher is the same dlib port, loaded from its converted state dict.
* Augmentation is applied to the 150 px chip and its heatmap together; the teacher embeds the
  augmented chip, so the distillation target matches exactly what the student sees (a cached
  target of the un-augmented image would ask the student to undo crops, rotations and erasing).
  The student's input is the augmented chip area-resized to ``size``.
* Loss = ``distill`` x (1 - cos(student, centred teacher)) + ``arc_weight`` x ArcFace, with the
  ArcFace weight and margin ramped up linearly over the first ``arc_ramp`` of training (ArcFace at
  full margin from a random start blocked all learning in the CPU runs, see docs/results).
  ``distill = 0`` trains from scratch with ArcFace alone (the paper's recipe).
* ``minutes``: after two epochs the epoch count is cut to what fits the time budget, and the
  cosine schedule is set for that horizon (the card records the epochs actually run).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class OnlineConfig:
    backbone: str = "shufflenet"
    variant: str = "heatmap"
    size: int = 112
    epochs: int = 200
    batch: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    distill: float = 10.0
    arc_weight: float = 0.1
    arc_scale: float = 32.0
    arc_margin: float = 0.3
    arc_ramp: float = 0.2
    seed: int = 0
    device: str = "cuda"
    minutes: float = 0.0
    amp: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.backbone}-{self.variant}" + ("" if self.distill > 0 else "-scratch")


def prepare_tensors(chip_file: Path, teacher_weights: Path | None, device: str, size: int, cache: Path | None = None) -> dict:
    """Chips, 150 px heatmaps, teacher mean, labels, split and the validation inputs at ``size``.

    Heatmaps are saved to ``cache`` (an ``.npz``) so that several training processes share them.
    """

    import torch

    from ..engines.heatmap_input import FastCam, chip_to_input
    from .heatmap_data import load_chip_file

    chips, meta = load_chip_file(chip_file)
    teacher = _teacher(teacher_weights, device)
    if cache is not None and Path(cache).is_file():
        with np.load(cache) as z:
            heat, desc, desc_m = z["heat"], z["desc"], z["desc_m"]
    else:
        cam = FastCam(model=teacher, device=device)
        heat, desc = cam(chips, batch=128)
        with torch.inference_mode():
            mirror = np.ascontiguousarray(chips[:, :, ::-1])
            desc_m = np.concatenate([teacher(teacher.preprocess(torch.from_numpy(mirror[s : s + 256]).to(device))).cpu().numpy()
                                     for s in range(0, len(mirror), 256)])
        heat = heat.astype(np.float16)
        if cache is not None:
            tmp = Path(str(cache) + ".tmp.npz")
            np.savez(tmp, heat=heat, desc=desc, desc_m=desc_m)
            tmp.replace(cache)
    items = meta["items"]
    ids = sorted({it["identity"] for it in items})
    index = {ident: k for k, ident in enumerate(ids)}
    labels = np.array([index[it["identity"]] for it in items], dtype=np.int64)
    split = np.array([it["split"] for it in items])
    tr = np.flatnonzero(split == "train")
    va = np.flatnonzero(split == "val")

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    mu = np.concatenate([unit(desc[tr]), unit(desc_m[tr])]).mean(0).astype(np.float32)
    # validation inputs exactly as the engine builds them at query time (cv2 INTER_AREA)
    va_crops = np.stack([chip_to_input(chips[i], size) for i in va])
    va_heat = np.stack([chip_to_input(heat[i].astype(np.float32), size) for i in va])
    return {"chips": chips, "heat": heat, "teacher": teacher, "mu": mu, "labels": labels, "tr": tr, "va": va,
            "va_crops": va_crops, "va_heat": va_heat, "va_teacher": unit(unit(desc[va]) - mu).astype(np.float32),
            "identities": ids, "meta": meta}


def _teacher(weights: Path | None, device: str):
    """The fused dlib port on ``device``: from a converted state dict, or the installed ``.dat``."""

    import torch

    from ..engines.dlib_torch import DlibResNet, load_model

    if weights is None:
        model = load_model(fused=True)
    else:
        model = DlibResNet()
        model.load_state_dict(torch.load(weights, weights_only=True, map_location="cpu"))
        model.eval().fuse()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device).eval()


def _auc(scores: np.ndarray, same: np.ndarray) -> float:
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    n_pos, n_neg = same.sum(), (~same).sum()
    return float((ranks[same].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def validate(net, head, data: dict, variant: str, device) -> dict:
    """Closed-set accuracy / macro F1 (ArcFace head, flip TTA), cosine to the centred teacher
    embedding (the distillation target; plain view) and the AUC of
    same/different-identity validation pairs (a verification proxy that is not LFW)."""

    import torch
    import torch.nn.functional as F

    from ..evaluation.metrics import macro_f1

    net.eval()
    x = torch.from_numpy(data["va_crops"]).permute(0, 3, 1, 2).float().div(255.0)
    if variant == "heatmap":
        x = torch.cat([x, torch.from_numpy(data["va_heat"]).float().unsqueeze(1)], 1)
    with torch.inference_mode():
        embs = []
        for s in range(0, len(x), 256):
            xb = x[s : s + 256].to(device)
            embs.append((F.normalize(net(xb).float()), F.normalize(net(torch.flip(xb, dims=[3])).float())))
        plain = torch.cat([e[0] for e in embs])
        both = F.normalize(plain + torch.cat([e[1] for e in embs]))
        pred = head.cosine(both).argmax(1).cpu().numpy()
    net.train()
    y = data["labels"][data["va"]]
    e = both.cpu().numpy()
    sim = e @ e.T
    iu = np.triu_indices(len(y), 1)
    same = (y[:, None] == y[None, :])[iu]
    return {"val_acc": round(float((pred == y).mean()), 4), "val_macro_f1": round(macro_f1(y, pred), 4),
            "val_teacher_cos": round(float((plain.cpu().numpy() * data["va_teacher"]).sum(1).mean()), 4),
            "val_pair_auc": round(_auc(sim[iu], same), 4)}


def train_online(cfg: OnlineConfig, data: dict, run_dir: Path, log=print) -> dict:
    import torch
    import torch.nn.functional as F

    from ..engines.backbones import build_net
    from .arcface import ArcFace
    from .heatmap_data import augment

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dev = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    chips = torch.from_numpy(data["chips"]).to(dev)  # (n, 150, 150, 3) uint8
    heat = torch.from_numpy(data["heat"]).to(dev)  # (n, 150, 150) float16
    labels = torch.from_numpy(data["labels"]).to(dev)
    mu = torch.from_numpy(data["mu"]).to(dev)
    teacher = data["teacher"]
    tr = data["tr"]
    net = build_net(cfg.backbone, cfg.variant, trunk_from="torchvision").to(dev).to(memory_format=torch.channels_last)
    head = ArcFace(128, len(data["identities"]), cfg.arc_scale, cfg.arc_margin).to(dev)
    opt = torch.optim.AdamW(list(net.parameters()) + list(head.parameters()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(tr) // cfg.batch
    epochs = cfg.epochs
    warm = int(cfg.warmup_epochs * steps_per_epoch)
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=cfg.amp and dev.type == "cuda")

    def lr_at(step, total):
        if step < warm:
            return cfg.lr * (step + 1) / warm
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    history, t_start, step = [], time.time(), 0
    ep = 0
    while ep < epochs:
        t0 = time.time()
        order = tr[torch.randperm(len(tr), generator=g).numpy()]
        sums = np.zeros(4)
        for k in range(steps_per_epoch):
            total = epochs * steps_per_epoch
            ramp = min(1.0, step / max(1.0, cfg.arc_ramp * total))
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total)
            head.set_margin(cfg.arc_margin * ramp)
            idx = torch.from_numpy(np.sort(order[k * cfg.batch : (k + 1) * cfg.batch])).to(dev)
            x = chips[idx].permute(0, 3, 1, 2).float().div_(255.0)
            if cfg.variant == "heatmap":
                x = torch.cat([x, heat[idx].float().unsqueeze(1)], 1)
            x, _ = augment(x, g)
            xs = F.interpolate(x, size=(cfg.size, cfg.size), mode="area").contiguous(memory_format=torch.channels_last)
            with amp:
                emb = net(xs).float()
            arc, cos = head(emb, labels[idx])
            loss = cfg.arc_weight * (ramp if cfg.distill > 0 else 1.0) * arc
            dist = torch.zeros((), device=dev)
            if cfg.distill > 0:
                with torch.no_grad(), amp:
                    t = teacher(teacher.preprocess((x[:, :3] * 255.0).permute(0, 2, 3, 1))).float()
                t = F.normalize(F.normalize(t) - mu)
                dist = (1 - F.cosine_similarity(emb, t, dim=1)).mean()
                loss = loss + cfg.distill * dist
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            sums += [arc.item(), dist.item(), (cos.argmax(1) == labels[idx]).float().mean().item(), 1]
        ep += 1
        epoch_s = time.time() - t0
        if cfg.minutes and ep == 2:  # fit the schedule to the time budget, measured on epoch 2
            fit = int((cfg.minutes * 60 - (time.time() - t_start)) / max(epoch_s, 1e-3)) + ep
            if fit < epochs:
                log(f"time budget {cfg.minutes} min: {epochs} -> {max(fit, ep)} epochs ({epoch_s:.1f} s/epoch)")
                epochs = max(fit, ep)
        rec = {"epoch": ep, "arcface": round(sums[0] / sums[3], 4), "distill": round(sums[1] / sums[3], 4),
               "train_acc": round(sums[2] / sums[3], 4), "lr": round(lr_at(step - 1, epochs * steps_per_epoch), 6),
               "margin": round(head.m, 3), "epoch_s": round(epoch_s, 2)}
        if ep % 10 == 0 or ep == epochs or ep <= 2:
            rec.update(validate(net, head, data, cfg.variant, dev))
            log(json.dumps({"model": cfg.name} | rec))
        history.append(rec)
    state = {"epoch": ep, "epochs_planned": cfg.epochs, "wall_s": round(time.time() - t_start, 1), "history": history,
             "steps": step, "config": asdict(cfg), "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
             "listed": data["meta"]["listed"], "kept": len(data["meta"]["items"])}
    torch.save({"net": {k: v.detach().half().cpu() if v.is_floating_point() else v.cpu() for k, v in net.state_dict().items()},
                "head": {k: v.detach().half().cpu() for k, v in head.state_dict().items()}}, run_dir / "final.pt")
    (run_dir / "state.json").write_text(json.dumps(state, indent=1))
    return state


def export_online(run_dir: Path, models_dir: Path, *, command: str, metrics: dict | None = None, notes: str = "",
                  transfer: str = "") -> Path:
    """``models/<name>.pt`` (embedding net, float16 state dict), ``<name>.head.pt`` (ArcFace class
    weights, for closed-set evaluation) and ``<name>.card.json`` from a finished online run."""

    import torch

    from ..engines.heatmap_input import HEATMAP_DEFINITION
    from ..modelfiles import file_entry, write_card

    run_dir, models_dir = Path(run_dir), Path(models_dir)
    state = json.loads((run_dir / "state.json").read_text())
    cfg = state["config"]
    name = OnlineConfig(**{k: v for k, v in cfg.items() if k != "extra"}).name
    final = torch.load(run_dir / "final.pt", weights_only=True, map_location="cpu")
    weights, head = models_dir / f"{name}.pt", models_dir / f"{name}.head.pt"
    torch.save(final["net"], weights)
    torch.save(final["head"], head)
    last = next((h for h in reversed(state["history"]) if "val_acc" in h), {})
    card_path = models_dir / f"{name}.card.json"
    old = json.loads(card_path.read_text()) if card_path.is_file() else {}
    distilled = cfg["distill"] > 0
    card = {
        "name": name,
        "kind": "heatmap-net",
        "backbone": cfg["backbone"],
        "variant": cfg["variant"],
        "input_size": cfg["size"],
        "embedding_dim": 128,
        "pretrained": "none (trained from random initialisation; no ImageNet weights)",
        "teacher": "dlib-resnet-torch, run on every augmented batch (cosine to the centred teacher embedding)" if distilled else None,
        "heatmap": HEATMAP_DEFINITION if cfg["variant"] == "heatmap" else None,
        "data": {
            "train": "celeba_subset (first 6 images by file name per identity) + celeba_extra (all crops); 244 identities",
            "validation": "celeba_subset (last 2 images by file name per identity)",
            "lfw": "never used for training or tuning",
            "faces": {"listed": state.get("listed"), "kept": state.get("kept")},
            "transfer": transfer or "dlib's aligned 150 px chips as JPEG (fasfinder.training.heatmap_data.prepare_chip_file)",
        },
        "split": "BENCHMARKS.md section 4",
        "recipe": {k: cfg[k] for k in ("size", "batch", "lr", "weight_decay", "warmup_epochs", "distill", "arc_weight",
                                        "arc_scale", "arc_margin", "arc_ramp", "seed", "amp")} | {
            "optimizer": "AdamW, linear warm-up then cosine decay",
            "loss": (f"{cfg['distill']} x (1 - cos(emb, normalize(normalize(teacher(aug x)) - mean))) + " if distilled else "")
                    + f"{cfg['arc_weight']} x ArcFace(s={cfg['arc_scale']}, m={cfg['arc_margin']})"
                    + f", ArcFace weight{' and' if distilled else ''} margin ramped up over the first {cfg['arc_ramp']:.0%} of steps",
            "augmentation": "on the 150 px chip + heatmap: random resized crop (area 0.7-1) + rotation (+-12 deg) + flip in one warp, "
                            "colour jitter 0.3, blur p=0.2, random erasing p=0.4 (RGB only); then area-resized to the input size",
            "precision": "bf16 autocast on the GPU; weights shipped as float16",
        },
        "command": command,
        "epochs_done": state["epoch"],
        "steps": state["steps"],
        "wall_time_s": state["wall_s"],
        "machine": state.get("device", ""),
        "validation": {k: last.get(k) for k in ("val_acc", "val_macro_f1", "val_teacher_cos", "val_pair_auc")},
        "history": state["history"][-1:] + [h for h in state["history"] if "val_acc" in h][-5:],
        "metrics": (old.get("metrics") or {}) | (metrics or {}),
        "notes": notes,
        "files": [file_entry("weights", weights), file_entry("head", head)],
    }
    return write_card(card, models_dir)
