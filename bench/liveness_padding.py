"""Training-side check of the synthetic-padding rule (fasfinder/liveness/padding.py; never reads LFW).

1. Where the padding detector fires: every NUAA image of the official train and test lists (live
   and print captures of a webcam: it must never fire), and the CelebA calibration photos as they are
   (``celeba_extra``'s own aligned crops carry black fill; in-the-wild photos do not).
2. Verdicts with the crops placed over the padding (the original rule, ``strip_padding = False``)
   and inside the captured area (the product rule), side by side on the same images: CelebA
   calibration photos as they are, and re-published in the LFW-like 250 px frame of
   ``bench/liveness_calib_frames.py`` with a black, replicated or mirrored border, turned or not.

    python bench/liveness_padding.py --celeba-faces DIR/celeba_faces.json --model fas-distilled [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

#: (name, turn in degrees (None: the photo as it is), border, JPEG quality): liveness_calib_frames' rows with a fill
CONDITIONS = [("as is", None, None, None), ("250px q85 black", 0, "black", 85), ("250px q85 replicate", 0, "replicate", 85),
              ("250px q85 turned 8 black", 8, "black", 85), ("250px q85 turned 8 replicate", 8, "replicate", 85),
              ("250px q70 turned 12 black", 12, "black", 70)]


def nuaa_firing(root: Path) -> dict:
    from fasfinder.evaluation.nuaa import read_split
    from fasfinder.imaging import load_image
    from fasfinder.liveness.padding import padding_mask

    out = {}
    for split in ("train", "test"):
        items = read_split(root, split)
        fired = [rel for rel, _ in items if padding_mask(load_image(root / "db" / rel).pixels) is not None]
        out[split] = {"images": len(items), "fired": len(fired), "examples": fired[:5]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--celeba-faces", required=True, help="celeba_faces.json of fas_distill_data")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)

    import torch
    from liveness_calib_frames import calibration_photos, photo_and_face
    from bench_output import emit

    from fasfinder.faces import FaceAnalyzer
    from fasfinder.liveness import load_liveness_model
    from fasfinder.liveness.padding import padding_mask

    torch.set_num_threads(1)
    t0 = time.time()
    out = {"nuaa": nuaa_firing(Path(a.data) / "nuaa")}
    print("nuaa", out["nuaa"], file=sys.stderr, flush=True)
    faces, files = calibration_photos(a.celeba_faces)
    models = [load_liveness_model(n) for n in (a.model or ["fas-distilled"])]
    analyzer, rng = FaceAnalyzer(), np.random.default_rng(0)
    out.update(photos=len(files), conditions={})
    for cond, turn, border, quality in CONDITIONS:
        row = {"fired": 0, "no_face": 0, "models": {m.name: {s: {"real": 0, "uncertain": 0, "spoof": 0}
                                                             for s in ("over padding", "captured area")} for m in models}}
        for rel in files:
            rgb, found = photo_and_face(Path(a.data), rel, faces[rel], analyzer, rng, turn, border, quality)
            if not found:
                row["no_face"] += 1
                continue
            row["fired"] += padding_mask(rgb) is not None
            for m in models:
                for setting, strip in (("over padding", False), ("captured area", True)):
                    m.strip_padding = strip
                    row["models"][m.name][setting][m.predict(rgb, found)[0].label] += 1
                m.strip_padding = True
        out["conditions"][cond] = row
        print(cond, row, file=sys.stderr, flush=True)
    return emit(out, t0, a.json)


if __name__ == "__main__":
    raise SystemExit(main())
