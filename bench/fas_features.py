"""Session-held-out feature study for the liveness model (docs/results/fas.md, "Experiments").

    python bench/fas_features.py --nuaa ../shared/data/nuaa [--features dlib:2.7:160,lbp:1.3:64] [--json OUT]

Only the TRAINING lists are used: fold A trains on session 1 and validates on session 2, fold B
the reverse (NUAA file names ID_glasses_pos_session_picNo.jpg). Each feature set is extracted
once per image and cached under the FAS cache dir (never in the repository); a logistic
regression (numpy/torch, L2, standardised features) is fitted per fold. Reported per fold: AUC,
ACER at P(real) = 0.5, the best ACER any threshold could reach on that fold (separability, an
oracle number that is NOT used for any choice), and the validation NLL; and "pooled": both folds'
held-out scores at the one threshold minimising their ACER (the shipped model's threshold rule).
The choice of the shipped model was made on the pooled ACER, then NLL.

Feature kinds (``kind:crop_scale:size``):
* ``dlib``  - per-stage channel mean and std of the frozen dlib face-recognition ResNet
              (fasfinder.engines.dlib_torch) on the wide square crop: stem, level4..level0.
* ``lbp``   - colour LBP (Boulkenafet et al. 2015): uniform LBP(8,1) histograms of each channel of
              HSV and YCbCr, 6 x 59 bins.
* ``freq``  - image-quality cues: log power in 8 radial frequency bands of the grey crop,
              Laplacian variance, colour saturation moments, specular fraction.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fasfinder.evaluation.nuaa import DEFAULT_CACHE, face_cache, fas_metrics, log, read_split, session_of  # noqa: E402
from fasfinder.training.fas_dlib import fit_logreg, logreg_predict  # noqa: E402


def load_crops(nuaa, split, scale, size, cache_dir):
    from fasfinder.imaging import load_image
    from fasfinder.liveness import face_crop

    key = hashlib.sha1(json.dumps([str(Path(nuaa).resolve()), split, scale, size]).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"rawcrops_{split}_{key}.npy"
    if path.is_file():
        return np.load(path)
    items = read_split(nuaa, split)
    faces = face_cache(nuaa, split, cache_dir)
    out = np.zeros((len(items), size, size, 3), np.uint8)
    for i, (rel, _) in enumerate(items):
        rgb = load_image(Path(nuaa) / "db" / rel).pixels
        out[i] = face_crop(rgb, faces[rel]["box"], scale, size)
    np.save(path, out)
    return out


def dlib_stage_stats(crops: np.ndarray, batch: int = 32) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    from fasfinder.engines.dlib_torch import STAGES, load_model

    net = load_model(fused=True)
    feats = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            x = net.preprocess(crops[i : i + batch])
            x = F.max_pool2d(F.relu(net.stem(x)), 3, 2)
            parts = [x.mean((2, 3)), x.std((2, 3))]
            for name, *_ in STAGES:
                x = getattr(net, name)(x)
                parts += [x.mean((2, 3)), x.std((2, 3))]
            feats.append(torch.cat(parts, 1).numpy())
    return np.concatenate(feats).astype(np.float32)


def normalise_crops(crops: np.ndarray) -> np.ndarray:
    """Per-image grey-world + contrast normalisation: each channel's mean removed, one common
    scale (the crop's overall std) so that colour ratios survive, re-centred on dlib's means."""

    x = crops.astype(np.float32)
    m = x.mean(axis=(1, 2), keepdims=True)
    sd = x.std(axis=(1, 2, 3), keepdims=True) + 1.0
    x = (x - m) / sd * 48.0 + np.array([122.782, 117.001, 104.298], np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


def dlib_norm_stats(crops: np.ndarray) -> np.ndarray:
    return dlib_stage_stats(normalise_crops(crops))


def lbp_colour(crops: np.ndarray) -> np.ndarray:
    import cv2
    from skimage.feature import local_binary_pattern

    out = []
    for c in crops:
        hsv = cv2.cvtColor(c, cv2.COLOR_RGB2HSV)
        ycc = cv2.cvtColor(c, cv2.COLOR_RGB2YCrCb)
        hs = []
        for ch in list(hsv.transpose(2, 0, 1)) + list(ycc.transpose(2, 0, 1)):
            lbp = local_binary_pattern(ch, 8, 1, method="nri_uniform")
            h, _ = np.histogram(lbp, bins=59, range=(0, 59))
            hs.append(h / max(1, h.sum()))
        out.append(np.concatenate(hs))
    return np.array(out, np.float32)


def freq_quality(crops: np.ndarray) -> np.ndarray:
    import cv2

    out = []
    for c in crops:
        g = cv2.cvtColor(c, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        n = g.shape[0]
        f = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))) ** 2
        yy, xx = np.mgrid[:n, :n] - n // 2
        r = np.sqrt(xx**2 + yy**2) / (n / 2)
        bands = [np.log(f[(r >= lo) & (r < hi)].mean() + 1e-9) for lo, hi in zip(np.linspace(0, 1, 9)[:-1], np.linspace(0, 1, 9)[1:])]
        lap = np.log(cv2.Laplacian(g, cv2.CV_32F).var() + 1e-9)
        hsv = cv2.cvtColor(c, cv2.COLOR_RGB2HSV).astype(np.float32) / 255.0
        s, v = hsv[..., 1], hsv[..., 2]
        spec = float(np.mean((v > 0.9) & (s < 0.2)))
        out.append(bands + [lap, s.mean(), s.std(), v.mean(), v.std(), spec])
    return np.array(out, np.float32)


def photometric(c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random photometric view of a uint8 RGB crop: flip, gamma, brightness/contrast, white
    balance, saturation, sometimes grey, blur and JPEG (illumination/camera changes between
    sessions)."""

    import cv2

    x = c[:, ::-1] if rng.random() < 0.5 else c
    x = x.astype(np.float32) / 255.0
    x = np.clip(x, 0, 1) ** rng.uniform(0.6, 1.6)
    x = x * rng.uniform(0.6, 1.4) * rng.uniform(0.85, 1.15, size=3)
    m = x.mean()
    x = (x - m) * rng.uniform(0.7, 1.3) + m
    g = x.mean(axis=2, keepdims=True)
    x = g + (x - g) * (0.0 if rng.random() < 0.1 else rng.uniform(0.5, 1.5))
    x = np.clip(x * 255.0, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", x[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
        x = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    return np.ascontiguousarray(x)


def features(nuaa, split, spec, cache_dir, aug: int = 0):
    """Features of the plain crops, or (``aug`` > 0) of view number ``aug`` (seeded photometric)."""

    kind, scale, size = spec.split(":")
    key = hashlib.sha1(json.dumps([str(Path(nuaa).resolve()), split, spec, 2] + ([aug] if aug else [])).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"feat_{kind}_{split}_{key}.npy"
    if path.is_file():
        return np.load(path)
    t0 = time.time()
    crops = load_crops(nuaa, split, float(scale), int(size), cache_dir)
    if aug:
        rng = np.random.default_rng(1000 + aug)
        crops = np.stack([photometric(c, rng) for c in crops])
    fn = {"dlib": dlib_stage_stats, "dlibn": dlib_norm_stats, "lbp": lbp_colour, "freq": freq_quality}[kind]
    x = fn(crops)
    np.save(path, x)
    log(f"{spec} {split}: {x.shape} in {time.time() - t0:.0f}s")
    return x


def best_acer(sr, ss):
    t = np.unique(np.concatenate([sr, ss]))
    return float(min((np.mean(ss >= v) + np.mean(sr < v)) / 2 for v in np.concatenate([t, [1.1]])))


def select_dlib(x: np.ndarray, stats: str, last_stage: str) -> np.ndarray:
    """Columns of a ``dlib`` feature matrix (per stage: C means then C stds, stem .. level0)."""

    from fasfinder.liveness import DLIB_CHANNELS, DLIB_STAGES

    cols, o = [], 0
    for st in DLIB_STAGES[: DLIB_STAGES.index(last_stage) + 1]:
        c = DLIB_CHANNELS[st]
        cols += (list(range(o, o + c)) if stats == "meanstd" else []) + list(range(o + c, o + 2 * c))
        o += 2 * c
    return x[:, cols]


#: Subject groups of the NUAA training lists for the session-and-subject held-out protocol.
SUBJECT_GROUPS = (("0001", "0002", "0003"), ("0004", "0005", "0006"), ("0007", "0008", "0009"))


def session_cv(x, y, sessions, l2, x_aug=(), subjects=None):
    """Per fold: fit on one session (plus its augmented views ``x_aug``), validate on the other;
    "pooled": both folds' held-out scores together, at the threshold that minimises their ACER
    (the rule the shipped model's threshold uses). With ``subjects``: each direction is split
    into 3 folds that also hold out one subject group (train on session a without the group,
    validate on session b's images of that group) - new session AND new people, like the test."""

    from fasfinder.evaluation.nuaa import choose_threshold

    rows = {}
    oof = np.zeros(len(y))
    for name, tr, va in (("A(1->2)", 1, 2), ("B(2->1)", 2, 1)):
        if subjects is not None:  # session AND subject held out: 3 subject groups per direction
            p_fold = np.zeros(len(y))
            for g in SUBJECT_GROUPS:
                held = np.isin(subjects, g)
                itr, iva = (sessions == tr) & ~held, (sessions == va) & held
                xt = np.concatenate([x[itr]] + [xa[itr] for xa in x_aug])
                yt = np.concatenate([y[itr]] * (1 + len(x_aug)))
                p_fold[iva] = logreg_predict(fit_logreg(xt, yt, l2), x[iva])
            iva = sessions == va
            p, oof[iva] = p_fold[iva], p_fold[iva]
            yv = y[iva]
            m = fas_metrics(p[yv == 1], p[yv == 0], 0.5)
            nll = float(-np.mean(np.log(np.clip(np.where(yv == 1, p, 1 - p), 1e-9, 1))))
            rows[name] = {"auc": round(m["auc"], 4), "acer@0.5": round(m["acer"], 4),
                          "best_acer": round(best_acer(p[yv == 1], p[yv == 0]), 4), "nll": round(nll, 4)}
            continue
        itr, iva = sessions == tr, sessions == va
        xt = np.concatenate([x[itr]] + [xa[itr] for xa in x_aug])
        yt = np.concatenate([y[itr]] * (1 + len(x_aug)))
        p = logreg_predict(fit_logreg(xt, yt, l2), x[iva])
        oof[iva] = p
        yv = y[iva]
        m = fas_metrics(p[yv == 1], p[yv == 0], 0.5)
        nll = float(-np.mean(np.log(np.clip(np.where(yv == 1, p, 1 - p), 1e-9, 1))))
        rows[name] = {"auc": round(m["auc"], 4), "acer@0.5": round(m["acer"], 4),
                      "best_acer": round(best_acer(p[yv == 1], p[yv == 0]), 4), "nll": round(nll, 4)}
    rows["mean"] = {k: round(float(np.mean([rows[f][k] for f in ("A(1->2)", "B(2->1)")])), 4) for k in rows["A(1->2)"]}
    t = choose_threshold(oof[y == 1], oof[y == 0])
    m = fas_metrics(oof[y == 1], oof[y == 0], t)
    rows["pooled"] = {"threshold": round(t, 4), "acer": round(m["acer"], 4), "apcer": round(m["apcer"], 4), "bpcer": round(m["bpcer"], 4),
                      "auc": round(m["auc"], 5), "nll": round(float(-np.mean(np.log(np.clip(np.where(y == 1, oof, 1 - oof), 1e-9, 1)))), 3)}
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nuaa", required=True)
    ap.add_argument("--features", default="dlib:2.7:160,lbp:1.3:64,freq:1.3:64")
    ap.add_argument("--combos", default="", help="'+'-joined feature specs to also test together, ';'-separated")
    ap.add_argument("--l2", default="0.01,0.1,1")
    ap.add_argument("--stats", choices=("meanstd", "std"), default="meanstd", help="dlib features: channel means and stds, or stds only")
    ap.add_argument("--last-stage", default="level0", help="dlib features: deepest stage kept")
    ap.add_argument("--protocol", choices=("session", "session-subject"), default="session-subject",
                    help="session: train one session, validate the other; session-subject: also hold out the validated subjects")
    ap.add_argument("--aug", type=int, default=0, help="also train on this many photometric views per image")
    ap.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    items = read_split(args.nuaa, "train")
    y = np.array([lab for _, lab in items])
    sessions = np.array([session_of(rel) for rel, _ in items])
    subjects = np.array([rel.split("/")[1] for rel, _ in items]) if args.protocol == "session-subject" else None
    specs = [s for s in args.features.split(",") if s]
    combos = [[s] for s in specs] + [c.split("+") for c in args.combos.split(";") if c]
    results = []
    for combo in combos:
        def feat(s, a=0):
            x = features(args.nuaa, "train", s, args.cache_dir, aug=a)
            return select_dlib(x, args.stats, args.last_stage) if s.startswith("dlib") else x

        x = np.concatenate([feat(s) for s in combo], 1)
        x_aug = [np.concatenate([feat(s, a) for s in combo], 1) for a in range(1, args.aug + 1)]
        for l2 in (float(v) for v in args.l2.split(",")):
            r = session_cv(x, y, sessions, l2, x_aug, subjects)
            rec = {"features": "+".join(combo), "protocol": args.protocol, "dim": x.shape[1], "l2": l2, "aug": args.aug, "stats": args.stats,
                   "last_stage": args.last_stage, **{k: v for k, v in r.items()}}
            results.append(rec)
            print(json.dumps(rec), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
