"""Training loop (seeded, resumable, one checkpoint per epoch) and export to ``models/``.

Loss = ArcFace(scale, margin) on the 128-d embedding + ``distill`` x (1 - cos(embedding,
teacher embedding)), the teacher being dlib's ResNet (PyTorch port), cached per image and per
mirror view. ``distill = 0`` trains from scratch with ArcFace only.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..evaluation.metrics import macro_f1
from .checkpoints import load_checkpoint, plain


@dataclass
class TrainConfig:
    backbone: str = "shufflenet"
    variant: str = "heatmap"
    size: int = 112
    epochs: int = 30
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    arc_weight: float = 1.0  # 0 = distillation only (ArcFace from scratch swamped the distillation, see docs)
    arc_scale: float = 32.0
    arc_margin: float = 0.3
    distill: float = 10.0
    # distil towards the *centred* teacher embedding normalize(t - mean_train(t)): dlib's raw
    # embeddings share one direction (mean cosine 0.91 to their mean), so a plain cosine target is
    # mostly met by a constant output and teaches little about identity
    distill_center: bool = True
    seed: int = 0
    threads: int = 1
    device: str = "cpu"  # "cuda" on a GPU box (augmentation runs on the CPU, the network on the device)
    max_minutes: float = 0.0  # stop (after a finished epoch) once this invocation ran this long; 0 = no limit
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.backbone}-{self.variant}" + ("" if self.distill > 0 else "-scratch")


def _to_input(crops, heat, idx, variant):
    import torch

    x = torch.from_numpy(crops[idx]).permute(0, 3, 1, 2).float().div_(255.0)
    if variant == "heatmap":
        h = torch.from_numpy(heat[idx].astype(np.float32)).unsqueeze(1)
        x = torch.cat([x, h], 1)
    return x


def evaluate_closed_set(net, head, crops, heat, labels, variant, batch=128, device="cpu"):
    """(accuracy, macro F1) of the ArcFace head's argmax on the given images (eval mode)."""

    import torch

    net.eval()
    preds = []
    with torch.inference_mode():
        for s in range(0, len(labels), batch):
            idx = np.arange(s, min(len(labels), s + batch))
            x = _to_input(crops, heat, idx, variant).to(device)
            e = net(x) + net(torch.flip(x, dims=[3]))
            preds.append(head.cosine(e).argmax(1).cpu().numpy())
    pred = np.concatenate(preds)
    return float((pred == labels).mean()), macro_f1(labels, pred)


def train(cfg: TrainConfig, cache_path: Path, run_dir: Path, log=print) -> dict:
    import torch
    import torch.nn.functional as F

    from ..engines.backbones import build_net
    from .arcface import ArcFace
    from .heatmap_data import augment, load_cache

    torch.set_num_threads(cfg.threads)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = load_cache(cache_path)
    tr = np.flatnonzero(data["split"] == "train")
    va = np.flatnonzero(data["split"] == "val")
    crops, heat, teacher, teacher_m, labels = data["crops"], data["heat"], data["teacher"], data["teacher_mirror"], data["labels"]
    n_classes = int(labels.max()) + 1
    if cfg.distill_center:
        mu = np.concatenate([teacher[tr], teacher_m[tr]]).mean(0)

        def centred(t):
            t = t - mu
            return (t / np.linalg.norm(t, axis=1, keepdims=True)).astype(np.float32)

        teacher, teacher_m = centred(teacher), centred(teacher_m)

    torch.manual_seed(cfg.seed)
    net = build_net(cfg.backbone, cfg.variant, trunk_from="torchvision")
    head = ArcFace(128, n_classes, cfg.arc_scale, cfg.arc_margin)
    dev = torch.device(cfg.device)
    net.to(dev)
    head.to(dev)
    params = list(net.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(tr) / cfg.batch)
    total = cfg.epochs * steps_per_epoch
    warm = int(cfg.warmup_epochs * steps_per_epoch)

    def lr_at(step):
        if step < warm:
            return cfg.lr * (step + 1) / warm
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    ckpt = run_dir / "last.pt"
    state = {"epoch": 0, "history": [], "wall_s": 0.0}
    if ckpt.is_file():
        c = load_checkpoint(ckpt, map_location=dev)
        net.load_state_dict(c["net"])
        head.load_state_dict(c["head"])
        opt.load_state_dict(c["opt"])
        state = c["state"]
        if "rng" in c:
            torch.set_rng_state(c["rng"].cpu())
        log(f"resumed from {ckpt} at epoch {state['epoch']}")
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    start = time.time()
    spent0 = state["wall_s"]
    while state["epoch"] < cfg.epochs:
        ep = state["epoch"]
        t0 = time.time()
        g = torch.Generator().manual_seed(cfg.seed * 1000 + ep)
        order = tr[torch.randperm(len(tr), generator=g).numpy()]
        net.train()
        head.train()
        sums = np.zeros(3)
        for k in range(steps_per_epoch):
            idx = np.sort(order[k * cfg.batch : (k + 1) * cfg.batch])
            if len(idx) < 2:
                continue
            for group in opt.param_groups:
                group["lr"] = lr_at(ep * steps_per_epoch + k)
            x = _to_input(crops, heat, idx, cfg.variant)
            x, flipped = augment(x, g)
            x = x.to(dev, non_blocking=True)
            y = torch.from_numpy(labels[idx]).to(dev)
            emb = net(x)
            arc, cos = head(emb, y)
            loss = cfg.arc_weight * arc
            dist = torch.zeros(())
            if cfg.distill > 0:
                t = torch.from_numpy(np.where(flipped.numpy()[:, None], teacher_m[idx], teacher[idx])).to(dev)
                dist = (1 - F.cosine_similarity(emb, t, dim=1)).mean()
                loss = loss + cfg.distill * dist
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums += [arc.item(), dist.item(), (cos.argmax(1) == y).float().mean().item()]
        sums /= steps_per_epoch
        va_acc, va_f1 = evaluate_closed_set(net, head, crops[va], heat[va] if heat is not None else None, labels[va], cfg.variant, device=dev)
        # teacher agreement on validation images (plain view)
        with torch.inference_mode():
            e = F.normalize(net(_to_input(crops, heat, va, cfg.variant).to(dev)), dim=1).cpu().numpy()
        t_cos = float((e * teacher[va]).sum(1).mean())
        state["epoch"] = ep + 1
        state["wall_s"] = spent0 + (time.time() - start)
        rec = {"epoch": ep + 1, "arcface": round(sums[0], 4), "distill": round(sums[1], 4), "train_acc": round(sums[2], 4),
               "val_acc": round(va_acc, 4), "val_macro_f1": round(va_f1, 4), "val_teacher_cos": round(t_cos, 4),
               "epoch_s": round(time.time() - t0, 1), "distill_target": "centred" if cfg.distill_center else "raw", "lr_end": lr_at((ep + 1) * steps_per_epoch - 1)}
        state["history"].append(plain(rec))
        log(json.dumps(rec))
        tmp = run_dir / "last.tmp"
        torch.save({"net": net.state_dict(), "head": head.state_dict(), "opt": opt.state_dict(), "state": state,
                    "rng": torch.get_rng_state(), "config": asdict(cfg)}, tmp)
        tmp.replace(ckpt)
        if cfg.max_minutes and time.time() - start > cfg.max_minutes * 60:
            log(f"stopping after epoch {ep + 1}: time budget of {cfg.max_minutes} min spent")
            break
    return state


def export(run_dir: Path, models_dir: Path, name: str | None = None, command: str = "", notes: str = "",
           metrics: dict | None = None, cache_meta: dict | None = None) -> Path:
    """Write ``models/<name>.pt`` (embedding net state dict) and ``models/<name>.card.json``."""

    import torch

    from ..engines.heatmap_input import HEATMAP_DEFINITION
    from ..modelfiles import file_entry, write_card

    run_dir, models_dir = Path(run_dir), Path(models_dir)
    c = load_checkpoint(run_dir / "last.pt")
    cfg = c["config"]
    name = name or (f"{cfg['backbone']}-{cfg['variant']}" + ("" if cfg["distill"] > 0 else "-scratch"))
    weights = models_dir / f"{name}.pt"
    torch.save(c["net"], weights)
    st = c["state"]
    card_path = models_dir / f"{name}.card.json"
    old = json.loads(card_path.read_text()) if card_path.is_file() else {}
    card = {
        "name": name,
        "kind": "heatmap-net",
        "backbone": cfg["backbone"],
        "variant": cfg["variant"],
        "input_size": cfg["size"],
        "embedding_dim": 128,
        "pretrained": "none (trained from random initialisation; no ImageNet weights)",
        "teacher": "dlib-resnet-torch (cosine distillation)" if cfg["distill"] > 0 else None,
        "heatmap": HEATMAP_DEFINITION if cfg["variant"] == "heatmap" else None,
        "data": {
            "train": "celeba_subset (first 6 images by file name per identity) + celeba_extra (all crops); 244 identities",
            "validation": "celeba_subset (last 2 images by file name per identity)",
            "lfw": "never used for training or tuning",
            "faces": cache_meta and {"listed": cache_meta.get("listed"), "kept": cache_meta.get("kept")},
        },
        "split": "BENCHMARKS.md section 4",
        "recipe": {k: cfg[k] for k in ("size", "epochs", "batch", "lr", "weight_decay", "warmup_epochs", "arc_scale",
                                        "arc_margin", "distill", "seed")} | {"arc_weight": cfg.get("arc_weight", 1.0)} | {"distill_center": cfg.get("distill_center", False)} | {
            "optimizer": "AdamW, linear warm-up then cosine decay",
            "loss": f"ArcFace(s={cfg['arc_scale']}, m={cfg['arc_margin']})" + (f" + {cfg['distill']} x (1 - cos(emb, teacher))" if cfg["distill"] > 0 else ""),
            "augmentation": "random resized crop (area 0.7-1) + rotation (+-12 deg) + horizontal flip in one warp (heatmap warped alike), colour jitter 0.3, blur p=0.2, random erasing p=0.4 (RGB only)",
        },
        "command": command,
        "epochs_done": st["epoch"],
        "epochs_planned": cfg["epochs"],
        "wall_time_s": round(st["wall_s"], 1),
        "machine": f"{platform.machine()} CPU, torch threads {cfg['threads']}, shared (load ~6-10)",
        "history": st["history"],
        "metrics": (old.get("metrics") or {}) | (metrics or {}),
        "notes": notes,
        "files": [file_entry("weights", weights)],
    }
    return write_card(card, models_dir)
