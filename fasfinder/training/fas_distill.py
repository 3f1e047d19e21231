"""Distil the MiniFASNet pair into the product's own two-crop student (CPU is enough).

Two halves in every batch:

* **NUAA training images, taught online.** Each step re-crops NUAA training images (300 live +
  300 prints) around a jittered face box (centre +-6 %, size x0.9-1.12), applies photometric
  augmentation, mixes a share of the pairs (mixup, one lambda per pair), and asks the teacher for
  its softmax on exactly the student's input ("consistent teaching": the teacher labels every view
  the student sees, so 600 images give many more function values than 600 stored outputs).
  Loss: KL(teacher_k || student_k) at temperature ``T`` (x T^2), plus ``hard`` x the two-class
  cross-entropy of the hard label on the unmixed samples.
* **Everything else, by hard label.** The stored crops of ``samples.npz``
  (:mod:`fasfinder.training.fas_distill_data`: synthetic prints over NUAA and CelebA backgrounds,
  CelebA photos as genuine captures), sampled equally per source, augmented. Loss: the two-class
  cross-entropy of the hard label, plus the KL to the stored teacher output only where the
  teacher agrees with the hard label (the teacher calls about a sixth of genuine CelebA photos
  attacks and accepts about half of the synthetic prints: there it is not followed).

Only samples of split ``train`` and the NUAA training lists are used (never LFW, never the NUAA
test lists). Member k of the student learns from teacher member k on the same crop.

    python -m fasfinder.training.fas_distill --data DIR/samples.npz --out RUN [--steps 2400] [--threads 2]
        [--init RUN0/student.pt] [--photometry 0.25] [--exclude-source SOURCE ...]

``--photometry P``: a share P of the stored crops gets ordinary-photo light (:func:`photometric`);
measured in cycle 5 (docs/results/liveness.md): it stops the model reading flat or dark photos as
prints, and lets more prints through. ``--exclude-source``: leave a ``samples.npz`` source out.

Writes RUN/student.pt (state dict, members ``member0.*``, ``member1.*``), RUN/result.json and
RUN/checkpoint.pt (every ``--checkpoint`` steps; a rerun with the same RUN resumes from it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..evaluation.celeba import DATA_ROOT

SHARED_NUAA = DATA_ROOT / "nuaa"  # FASFINDER_DATA, else ../shared/data


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def _per_sample(rng: np.random.Generator, n: int, lo: float, hi: float, shape=(1, 1, 1)):
    """One uniform draw per sample (and per ``shape`` entry), as a float32 tensor (n, *shape)."""

    import torch

    return torch.from_numpy(rng.uniform(lo, hi, (n, *shape)).astype(np.float32))


def augment(x, rng: np.random.Generator):
    """Batch augmentation on float BGR 0..255 crops (N, 3, 80, 80): flip, shift, gain / colour /
    gamma, grey, blur, down-and-up sampling, noise. Label-independent (no shortcut to learn)."""

    import torch
    import torch.nn.functional as F

    n = x.shape[0]

    def coin(p):
        return torch.from_numpy(rng.random(n) < p)[:, None, None, None]

    def per(lo, hi, shape=(1, 1, 1)):
        return _per_sample(rng, n, lo, hi, shape)

    x = torch.where(coin(0.5), x.flip(3), x)
    pad = 5
    xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dx, dy = rng.integers(0, 2 * pad + 1, 2)
    x = xp[:, :, dy: dy + 80, dx: dx + 80]
    x = 255.0 * (x / 255.0).clamp(0, 1) ** per(0.75, 1.33)
    x = x * per(0.75, 1.25) * per(0.93, 1.07, (3, 1, 1)) + per(-20, 20)
    grey = x.mean(1, keepdim=True).expand_as(x)
    x = torch.where(coin(0.08), grey, x)
    k = torch.tensor([1.0, 2.0, 1.0]) / 4.0
    kern = (k[:, None] * k[None, :]).expand(3, 1, 3, 3).contiguous()
    xb = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kern, groups=3)
    x = torch.where(coin(0.25), xb, x)
    size = int(rng.integers(28, 64))
    xd = F.interpolate(F.interpolate(x, size=(size, size), mode="area"), size=(80, 80), mode="bilinear", align_corners=False)
    x = torch.where(coin(0.2), xd, x)
    x = x + coin(0.4).float() * torch.randn_like(x) * float(rng.uniform(2, 8))
    return x.clamp(0, 255)


def photometric(x, rng: np.random.Generator, p: float):
    """Ordinary-photo photometry on a share ``p`` of float BGR 0..255 crops (N, 3, 80, 80): contrast
    about the crop's mean x0.5-1.0, exposure x0.55-1.2, saturation x0.3-1.3, a colour cast of +-12 %
    per channel. Applied to the stored crops only (hard labels, genuine photos and prints alike), so
    that flat, dark, pale or tinted light is no evidence of a print there; the NUAA views keep the
    teacher's own reading."""

    import torch

    if p <= 0:  # draws nothing: runs without photometry keep their random stream
        return x
    n = x.shape[0]
    on = torch.from_numpy(rng.random(n) < p)[:, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    y = mean + (x - mean) * _per_sample(rng, n, 0.5, 1.0)
    grey = y.mean(1, keepdim=True)
    y = grey + (y - grey) * _per_sample(rng, n, 0.3, 1.3)
    y = y * _per_sample(rng, n, 0.55, 1.2) * _per_sample(rng, n, 0.88, 1.12, (3, 1, 1))
    return torch.where(on, y.clamp(0, 255), x)


class NuaaViews:
    """Online crops of the NUAA training images around jittered face boxes."""

    def __init__(self, nuaa_dir, cache_dir=None):
        from ..evaluation.nuaa import face_cache, read_split
        from ..imaging import load_image

        faces = face_cache(nuaa_dir, "train", *([cache_dir] if cache_dir is not None else []))
        items = read_split(nuaa_dir, "train")
        self.images = [load_image(Path(nuaa_dir) / "db" / rel).pixels for rel, _ in items]
        self.boxes = np.array([faces[rel]["box"] for rel, _ in items], np.float64)
        self.labels = np.array([lab for _, lab in items], np.int64)

    def __len__(self):
        return len(self.labels)

    def crops(self, idx, rng: np.random.Generator) -> np.ndarray:
        from ..liveness.croppair import pair_crops

        out = []
        for i in idx:
            x0, y0, x1, y1 = self.boxes[i]
            w, h = x1 - x0, y1 - y0
            s = rng.uniform(0.9, 1.12)
            cx = (x0 + x1) / 2 + rng.uniform(-0.06, 0.06) * w
            cy = (y0 + y1) / 2 + rng.uniform(-0.06, 0.06) * h
            out.append(pair_crops(self.images[i], (cx - s * w / 2, cy - s * h / 2, cx + s * w / 2, cy + s * h / 2)))
        return np.stack(out)


def two_class_ce(logits, y):
    import torch
    import torch.nn.functional as F

    lp = F.log_softmax(logits, 1)
    attack = torch.logsumexp(torch.stack([lp[:, 0], lp[:, 2]], 1), 1)
    return F.cross_entropy(torch.stack([attack, lp[:, 1]], 1), y, reduction="none")


def kd(logits, target, temperature: float):
    import torch.nn.functional as F

    logp = F.log_softmax(logits / temperature, 1)
    return F.kl_div(logp, target.clamp_min(1e-6), reduction="none").sum(1) * temperature ** 2


def train(data_path, out_dir, steps: int = 2400, batch: int = 128, nuaa_share: float = 0.5, mix_p: float = 0.5,
          hard: float = 0.5, temperature: float = 2.0, lr: float = 3e-3, seed: int = 0, widths=None, threads: int = 2,
          nuaa_dir=SHARED_NUAA, checkpoint: int = 200, nuaa_cache=None, init=None, photometry: float = 0.0,
          exclude_sources=()) -> dict:
    import torch

    from ..liveness.croppair import bgr_tensor
    from ..liveness.minifasnet import reference_model
    from ..liveness.student import DEFAULT_WIDTHS, build_student

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    d = np.load(data_path)
    keep = (d["split"] == "train") & ~np.isin(d["source"], ["nuaa", *exclude_sources])  # the NUAA originals come online
    crops = torch.from_numpy(d["crops"][keep])  # N, 2, 80, 80, 3 uint8
    labels = torch.from_numpy(d["label"][keep])
    stored = torch.from_numpy(d["teacher"][keep])  # N, 2, 3
    agrees = (stored.mean(1).argmax(1) == 1).long() == labels
    sources = d["source"][keep]
    w = np.ones(len(labels))
    for s in np.unique(sources):
        w[sources == s] = 1.0 / np.sum(sources == s)
    w = w / w.sum()
    views = NuaaViews(nuaa_dir, nuaa_cache)
    probe = torch.zeros(8, 3, 80, 80)
    with torch.no_grad():  # the frozen, BN-folded teacher: the same outputs (< 1e-5), about twice as fast
        teacher = [torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net.eval(), probe)))
                   for net in reference_model().nets]
    widths = tuple(widths or DEFAULT_WIDTHS)
    nets = [build_student(widths) for _ in teacher]
    if init:  # a second cycle: start from an earlier run's weights (fresh optimizer and schedule)
        start = torch.load(str(init), map_location="cpu", weights_only=True)
        for k, net in enumerate(nets):
            net.load_state_dict({n[len(f"member{k}."):]: v for n, v in start.items() if n.startswith(f"member{k}.")})
    params = [p for net in nets for p in net.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    n_nuaa = int(round(batch * nuaa_share))
    history, step, t0 = [], 0, time.time()
    ck = out_dir / "checkpoint.pt"
    if ck.is_file():
        state = torch.load(ck, map_location="cpu", weights_only=True)
        for net, sd in zip(nets, state["nets"]):
            net.load_state_dict(sd)
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step, history = state["step"], state["history"]
        rng = np.random.default_rng([seed, step])
        log(f"resumed at step {step}")
    for net in nets:
        net.train()
    running = []
    while step < steps:
        ni = rng.integers(0, len(views), n_nuaa)
        nx = torch.from_numpy(views.crops(ni, rng))
        ny = torch.from_numpy(views.labels[ni])
        lam = torch.from_numpy(np.where(rng.random(n_nuaa) < mix_p, rng.uniform(0.0, 1.0, n_nuaa), 1.0).astype(np.float32))
        perm = torch.from_numpy(rng.permutation(n_nuaa))
        oi = torch.from_numpy(rng.choice(len(labels), size=batch - n_nuaa, replace=True, p=w))
        loss = 0.0
        for k, (net, tnet) in enumerate(zip(nets, teacher)):
            xa = augment(bgr_tensor(nx[:, k].numpy()), rng)
            lk = lam[:, None, None, None]
            xa = lk * xa + (1 - lk) * xa[perm]
            with torch.no_grad():
                target = torch.softmax(tnet(xa) / temperature, 1)
            xo = augment(photometric(crops[oi, k].permute(0, 3, 1, 2).float(), rng, photometry), rng)
            logits = net(torch.cat([xa, xo]))
            la, lo = logits[:n_nuaa], logits[n_nuaa:]
            unmixed = (lam == 1.0).float()
            l_nuaa = kd(la, target, temperature) + hard * unmixed * two_class_ce(la, ny)
            st = torch.softmax(torch.log(stored[oi, k].clamp_min(1e-6)) / temperature, 1)
            l_other = two_class_ce(lo, labels[oi]) + hard * agrees[oi].float() * kd(lo, st, temperature)
            loss = loss + torch.cat([l_nuaa, l_other]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        running.append(float(loss.detach()))
        if step % 50 == 0 or step == steps:
            history.append([step, round(float(np.mean(running)), 4)])
            running = []
            log(f"step {step}/{steps} loss {history[-1][1]} ({time.time() - t0:.0f}s)")
        if step % checkpoint == 0 or step == steps:
            torch.save({"nets": [net.state_dict() for net in nets], "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step, "history": history}, ck)
    state = {f"member{k}.{name}": v.detach().clone() for k, net in enumerate(nets) for name, v in net.state_dict().items()}
    torch.save(state, out_dir / "student.pt")
    result = {"steps": steps, "batch": batch, "nuaa_share": nuaa_share, "mix_p": mix_p, "hard": hard,
              "temperature": temperature, "lr": lr, "seed": seed, "widths": list(widths), "n_train": int(len(labels)),
              "init": str(init) if init else None, "photometry": photometry, "exclude_sources": list(exclude_sources),
              "n_nuaa": len(views), "loss": history, "seconds": round(time.time() - t0, 1),
              "sources": {str(s): int(np.sum(sources == s)) for s in np.unique(sources)} | {"nuaa (online)": len(views)}}
    (out_dir / "result.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fasfinder.training.fas_distill", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--nuaa-share", type=float, default=0.5)
    ap.add_argument("--mix", type=float, default=0.5, help="share of NUAA samples mixed with another (mixup)")
    ap.add_argument("--hard", type=float, default=0.5, help="weight of the secondary loss term")
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--widths", default="")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nuaa", default=str(SHARED_NUAA))
    ap.add_argument("--checkpoint", type=int, default=200)
    ap.add_argument("--init", default="", help="start from the student.pt of an earlier run (a second cycle)")
    ap.add_argument("--photometry", type=float, default=0.0,
                    help="share of the stored crops given ordinary-photo photometry (contrast, exposure, saturation, cast)")
    ap.add_argument("--exclude-source", action="append", default=[], help="leave a samples.npz source out (repeatable)")
    a = ap.parse_args(argv)
    widths = tuple(int(v) for v in a.widths.split(",")) if a.widths else None
    print(json.dumps(train(a.data, a.out, a.steps, a.batch, a.nuaa_share, a.mix, a.hard, a.temperature, a.lr, a.seed,
                           widths, a.threads, a.nuaa, a.checkpoint, None, a.init or None, a.photometry,
                           tuple(a.exclude_source))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
