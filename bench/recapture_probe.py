"""Per-attack-type APCER on the recapture probe set (fasfinder.evaluation.recapture), several models.

    python bench/recapture_probe.py --celeba-faces DIR/celeba_faces.json [--per-type 150] [--seed 0]
        [--model fas-student --model fas-nuaa-wide --model minifasnet] [--preview PNG] [--json OUT]

Source photos: celeba_subset photos of the HELD-OUT identities (fas_distill_data.celeba_split), cut
as portraits around their dlib face; backgrounds: NUAA test-list live images, blurred. The face box
given to each model is the source box carried through the attack's geometry (no detection).
APCER per type = share of attacks labelled ``real``; the uncertain share beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def portraits(faces: dict, data_dir: Path, limit: int = 200):
    from fasfinder.imaging import load_image
    from fasfinder.training.fas_distill_data import celeba_split

    out = []
    for rel, fc in sorted(faces.items()):
        if not (fc["detected"] and celeba_split(fc["id"]) == "heldout" and rel.startswith("celeba_subset")):
            continue
        rgb = load_image(data_dir / rel).pixels
        x0, y0, x1, y1 = fc["box"]
        s = x1 - x0
        if s < 60:
            continue
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        px0, py0 = int(max(0, cx - 1.3 * s)), int(max(0, cy - 1.5 * s))
        px1, py1 = int(min(rgb.shape[1], cx + 1.3 * s)), int(min(rgb.shape[0], cy + 1.9 * s))
        out.append((rel, rgb[py0:py1, px0:px1].copy(), (x0 - px0, y0 - py0, x1 - px0, y1 - py0)))
        if len(out) >= limit:
            break
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--celeba-faces", required=True)
    ap.add_argument("--per-type", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--preview", default="")
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)

    import cv2
    import torch

    torch.set_num_threads(1)
    from fasfinder.evaluation.nuaa import read_split
    from fasfinder.evaluation.recapture import TYPES, build_probe
    from fasfinder.faces import Face
    from fasfinder.imaging import load_image
    from fasfinder.liveness import load_liveness_model

    data = Path(a.data)
    photos = portraits(json.loads(Path(a.celeba_faces).read_text()), data)
    nuaa = data / "nuaa"
    bgs = [load_image(nuaa / "db" / rel).pixels for rel, lab in read_split(nuaa, "test")[::25] if lab == 1]
    names = a.model or ["fas-student", "fas-nuaa-wide", "minifasnet"]
    models = {m: load_liveness_model(m) for m in names}
    counts = {m: {t: {"real": 0, "uncertain": 0, "spoof": 0} for t in TYPES} for m in names}
    previews = {t: [] for t in TYPES}
    t0 = time.time()
    for kind, img, box, _src in build_probe(photos, bgs, a.per_type, a.seed):
        face = Face(box=tuple(int(v) for v in box), landmarks=np.zeros((68, 2), np.float32), shape5=np.zeros((5, 2), np.float32))
        for m, model in models.items():
            counts[m][kind][model.predict(img, [face])[0].label] += 1
        if len(previews[kind]) < 4:
            previews[kind].append(cv2.resize(img, (240, 180)))
    result = {"photos": len(photos), "per_type": a.per_type, "seed": a.seed, "models": {}}
    for m in names:
        result["models"][m] = {t: {**c, "apcer": round(c["real"] / a.per_type, 4),
                                   "uncertain": round(c["uncertain"] / a.per_type, 4)} for t, c in counts[m].items()}
    result["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    if a.preview:
        rows = [np.concatenate(previews[t], axis=1) for t in TYPES]
        cv2.imwrite(a.preview, np.concatenate(rows, axis=0)[..., ::-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
