"""Distil the MiniFASNet pair into the product's own two-crop student (CPU is enough).

Reads ``samples.npz`` of :mod:`fasfinder.training.fas_distill_data` (crops at the teacher's two
scales, hard labels, the teacher's two softmax vectors). Member k of the student learns from
teacher member k on the same crop: loss = ``alpha`` x KL(teacher_k || student_k) at temperature
``T`` (x T^2) + (1 - ``alpha``) x the two-class cross-entropy of the hard label (live vs either
attack class). CelebA photos are genuine captures (the teacher calls about a fifth of them attacks:
the hard label corrects it). Only samples of split ``train`` are used.

    python -m fasfinder.training.fas_distill --data DIR/samples.npz --out RUN [--epochs 30] [--alpha 0.5]

Writes RUN/student.pt (state dict, members ``member0.*``, ``member1.*``) and RUN/result.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def augment(x, rng: np.random.Generator):
    """Batch augmentation on float BGR 0..255 crops (N, 3, 80, 80): flip, shift, colour, blur, noise."""

    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    flip = torch.from_numpy(rng.random(n) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = 5
    xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dx, dy = rng.integers(0, 2 * pad + 1, 2)
    x = xp[:, :, dy: dy + 80, dx: dx + 80]
    gain = torch.from_numpy(rng.uniform(0.75, 1.25, (n, 1, 1, 1)).astype(np.float32))
    chan = torch.from_numpy(rng.uniform(0.93, 1.07, (n, 3, 1, 1)).astype(np.float32))
    bias = torch.from_numpy(rng.uniform(-20, 20, (n, 1, 1, 1)).astype(np.float32))
    x = x * gain * chan + bias
    blur = torch.from_numpy(rng.random(n) < 0.3)
    if bool(blur.any()):
        k = torch.tensor([1.0, 2.0, 1.0]) / 4.0
        kern = (k[:, None] * k[None, :]).expand(3, 1, 3, 3).contiguous()
        xb = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kern, groups=3)
        x = torch.where(blur[:, None, None, None], xb, x)
    noisy = torch.from_numpy((rng.random(n) < 0.4).astype(np.float32))[:, None, None, None]
    x = x + noisy * torch.randn_like(x) * float(rng.uniform(2, 8))
    return x.clamp(0, 255)


def train(data_path, out_dir, epochs: int = 30, alpha: float = 0.5, temperature: float = 2.0, batch: int = 128,
          lr: float = 3e-3, seed: int = 0, widths=None, threads: int = 1, per_epoch: int = 0) -> dict:
    import torch
    import torch.nn.functional as F

    from ..liveness.student import DEFAULT_WIDTHS, build_student

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    d = np.load(data_path)
    keep = d["split"] == "train"
    crops = torch.from_numpy(d["crops"][keep])  # N, 2, 80, 80, 3 uint8
    labels = torch.from_numpy(d["label"][keep])
    teacher = torch.from_numpy(d["teacher"][keep])  # N, 2, 3
    sources = d["source"][keep]
    n = len(labels)
    per_epoch = per_epoch or n  # samples drawn (balanced, with replacement) per epoch
    widths = tuple(widths or DEFAULT_WIDTHS)
    nets = [build_student(widths) for _ in range(crops.shape[1])]
    params = [p for net in nets for p in net.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=5e-4)
    steps = epochs * ((per_epoch + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    # balance: NUAA originals count as much as the (many) CelebA photos and synthetic prints
    w = np.ones(n)
    for s in np.unique(sources):
        w[sources == s] = 1.0 / np.sum(sources == s)
    w = w / w.sum()
    t0 = time.time()
    history = []
    for epoch in range(epochs):
        for net in nets:
            net.train()
        order = rng.choice(n, size=per_epoch, replace=True, p=w)
        total = 0.0
        for start in range(0, per_epoch, batch):
            idx = torch.from_numpy(order[start: start + batch])
            y = labels[idx]
            loss = 0.0
            for k, net in enumerate(nets):
                x = augment(crops[idx, k].permute(0, 3, 1, 2).float(), rng)
                logits = net(x)
                logp = F.log_softmax(logits / temperature, 1)
                kd = F.kl_div(logp, teacher[idx, k].clamp_min(1e-6), reduction="batchmean") * temperature ** 2
                lp = F.log_softmax(logits, 1)
                live = lp[:, 1]
                attack = torch.logsumexp(torch.stack([lp[:, 0], lp[:, 2]], 1), 1)
                hard = F.cross_entropy(torch.stack([attack, live], 1), y)
                loss = loss + alpha * kd + (1 - alpha) * hard
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        history.append(round(total / per_epoch, 4))
        log(f"epoch {epoch + 1}/{epochs} loss {history[-1]} ({time.time() - t0:.0f}s)")
    state = {f"member{k}.{name}": v.detach().clone() for k, net in enumerate(nets) for name, v in net.state_dict().items()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(state, out_dir / "student.pt")
    result = {"epochs": epochs, "alpha": alpha, "temperature": temperature, "batch": batch, "lr": lr, "seed": seed,
              "widths": list(widths), "n_train": int(n), "per_epoch": int(per_epoch), "loss": history, "seconds": round(time.time() - t0, 1),
              "sources": {str(s): int(np.sum(sources == s)) for s in np.unique(sources)}}
    (out_dir / "result.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fasfinder.training.fas_distill", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--widths", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--per-epoch", type=int, default=0, help="samples per epoch (default: the training set size)")
    a = ap.parse_args(argv)
    widths = tuple(int(v) for v in a.widths.split(",")) if a.widths else None
    print(json.dumps(train(a.data, a.out, a.epochs, a.alpha, a.temperature, a.batch, a.lr, a.seed, widths, a.threads, a.per_epoch)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
