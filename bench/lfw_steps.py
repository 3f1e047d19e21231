"""What each step of the pipeline gives on LFW View 2 (protocol 2), from the evaluation caches.

    python main.py eval lfw --lfw ../shared/data/lfw --engine ENGINE --flip --json   # fills the caches
    python bench/lfw_steps.py --lfw ../shared/data/lfw --engine ENGINE [--out FILE]

Steps: (1) HOG at the size-dependent upsampling only, central 50% box when it finds nothing;
(2) + the product's detection fallbacks (one more upsampling level, then dlib's CNN detector);
(3) + flip test-time augmentation. Only the images whose face needed a fallback are re-embedded
(with the central box) for step 1; everything else comes from the caches.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from fasfinder.engines import get_engine
    from fasfinder.engines.base import combine_views
    from fasfinder.evaluation.lfw_data import DetectionCache, EmbeddingCache, central_box, read_pairs
    from fasfinder.evaluation.metrics import verification_report
    from fasfinder.faces import FaceAnalyzer
    from fasfinder.imaging import load_image

    ap = argparse.ArgumentParser()
    ap.add_argument("--lfw", required=True)
    ap.add_argument("--engine", default="dlib-resnet-torch")
    ap.add_argument("--out")
    args = ap.parse_args()

    eng = get_engine(args.engine)
    pairs = read_pairs(args.lfw)
    emb = EmbeddingCache(eng.name)
    det = DetectionCache("lfw")
    paths = sorted({str(p) for a, b, _, _ in pairs for p in (a, b)})
    missing = [p for p in paths if p not in emb.data or p not in det.data]
    if missing:
        raise SystemExit(f"{len(missing)} images not in the caches: run `eval lfw --engine {eng.name}` first")
    how = Counter(det.data[p][0].detector if not det.data[p][1] else "central box" for p in paths)
    analyzer = FaceAnalyzer()
    step1 = {}
    for p in paths:
        face, fallback = det.data[p]
        if fallback or face.detector != "hog":
            img = load_image(p).pixels
            f = analyzer.face_at(img, central_box(*img.shape[:2]))
            plain, _ = eng.embed_views(img, [f], mirror=False)
            step1[p] = plain[0]

    same = np.array([s for _, _, s, _ in pairs])
    folds = np.array([f for _, _, _, f in pairs])

    def run(getter):
        return verification_report(np.array([float(getter(str(a)) @ getter(str(b))) for a, b, _, _ in pairs]), same, folds)

    out = {"engine": eng.name, "images": len(paths), "faces_found_by": dict(how), "steps": {}}
    out["steps"]["1_hog_only_central_box_fallback"] = run(lambda p: step1.get(p, emb.data[p][0]))
    out["steps"]["1_hog_only_central_box_fallback"]["central_box_images"] = len(step1)
    out["steps"]["2_with_detection_fallbacks"] = run(lambda p: emb.data[p][0])
    out["steps"]["2_with_detection_fallbacks"]["central_box_images"] = how.get("central box", 0)
    out["steps"]["3_with_flip_tta"] = run(lambda p: combine_views(emb.data[p][0][None], emb.data[p][1][None])[0])
    for v in out["steps"].values():
        v.pop("fold_accuracy", None)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
