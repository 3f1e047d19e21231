"""Genuine photos of the product's domain through the liveness models: how many get `spoof` / `uncertain`.

    python bench/liveness_genuine.py [--lfw ../shared/data/lfw] [--celeba-faces DIR/celeba_faces.json]
        [--model fas-student] [--teacher] [--limit N] [--padding-ab] [--json OUT]

Sets: every LFW image of the shared set (evaluation only: nothing here is tuned on it) and the
held-out CelebA identities (``fasfinder.training.fas_distill_data.celeba_split`` == "heldout"; faces
from the training data's cache). Faces: the product's dlib detector, largest face; images without a
face are counted and left out. LFW faces are cached under the user cache dir (``liveness_genuine``).
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


def lfw_faces(lfw_dir: Path, limit: int | None) -> dict:
    from fasfinder.faces import FaceAnalyzer
    from fasfinder.imaging import load_image
    from fasfinder.settings import cache_dir

    files = sorted((lfw_dir / "images_deepfunneled").glob("*/*.jpg"))[: limit or None]
    path = cache_dir() / "liveness_genuine" / f"lfw_faces_{len(files)}.json"
    if path.is_file():
        return json.loads(path.read_text())
    analyzer, out, t0 = FaceAnalyzer(), {}, time.time()
    for i, f in enumerate(files):
        faces = analyzer.detect(load_image(f).pixels)
        out[str(f.relative_to(lfw_dir))] = ({"box": [int(v) for v in faces[0].box], "landmarks": faces[0].landmarks.tolist()}
                                            if faces else None)
        if (i + 1) % 500 == 0:
            print(f"lfw faces {i + 1}/{len(files)} ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def judge(models: dict, items, root: Path, padding_ab: bool = False) -> dict:
    """{model: {"n", "real", "uncertain", "spoof", shares}} over (rel, face dict) items; with
    ``padding_ab`` each two-crop model also as "<name> (over padding)" (the crops placed over any
    synthetic fill, the original rule) and the count of images whose crops the product rule moved."""

    from fasfinder.faces import Face
    from fasfinder.imaging import load_image
    from fasfinder.liveness.padding import captured_areas

    runs = [(name, model, True) for name, model in models.items()]
    if padding_ab:
        runs += [(f"{name} (over padding)", model, False) for name, model in models.items() if hasattr(model, "strip_padding")]
    counts = {name: {"real": 0, "uncertain": 0, "spoof": 0} for name, _, _ in runs}
    moved = 0
    for rel, fc in items:
        rgb = load_image(root / rel).pixels
        face = Face(box=tuple(fc["box"]), landmarks=np.asarray(fc["landmarks"], np.float32), shape5=np.zeros((5, 2), np.float32))
        if padding_ab:
            moved += captured_areas(rgb, [face.box])[0] != (0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1)
        for name, model, strip in runs:
            if hasattr(model, "strip_padding"):
                model.strip_padding = strip
            counts[name][model.predict(rgb, [face])[0].label] += 1
    for _, model, _ in runs:
        if hasattr(model, "strip_padding"):
            model.strip_padding = True
    out = {"crops_moved_off_padding": moved} if padding_ab else {}
    for name, c in counts.items():
        n = sum(c.values())
        out[name] = {"n": n, **c, "spoof_share": round(c["spoof"] / n, 4) if n else None,
                     "uncertain_share": round(c["uncertain"] / n, 4) if n else None}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", default=str(ROOT.parent / "shared" / "data" / "lfw"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--celeba-faces", default="", help="celeba_faces.json of fas_distill_data (held-out identities)")
    ap.add_argument("--model", action="append", default=[], help="liveness card name or minifasnet (repeatable)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--faces-only", action="store_true", help="only detect and cache the LFW faces")
    ap.add_argument("--padding-ab", action="store_true",
                    help="also judge each two-crop model with its crops over synthetic padding (the original rule)")
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)

    import torch
    from bench_output import emit

    torch.set_num_threads(1)
    from fasfinder.liveness import load_liveness_model
    from fasfinder.training.fas_distill_data import celeba_split

    lfw = lfw_faces(Path(a.lfw), a.limit)
    if a.faces_only:
        return 0
    models = {m: load_liveness_model(m) for m in (a.model or ["fas-student", "minifasnet"])}
    t0 = time.time()
    result = {"lfw": {"images": len(lfw), "no_face": sum(v is None for v in lfw.values()),
                      **judge(models, [(k, v) for k, v in sorted(lfw.items()) if v], Path(a.lfw), a.padding_ab)}}
    if a.celeba_faces:
        faces = json.loads(Path(a.celeba_faces).read_text())
        held = [(k, v) for k, v in sorted(faces.items()) if celeba_split(v["id"]) == "heldout"]
        result["celeba_heldout"] = {"images": len(held), "no_face": sum(not v["detected"] for _, v in held),
                                    **judge(models, [(k, v) for k, v in held if v["detected"]], Path(a.data), a.padding_ab)}
    return emit(result, t0, a.json)


if __name__ == "__main__":
    raise SystemExit(main())
