"""Protocol 5 (docs/BENCHMARKS.md section 5): face anti-spoofing on the NUAA test subset.

For each test image: detect faces (dlib HOG; largest face; the centre box when none is found,
counted in ``no_face``), score it with the liveness model, and compute its Grad-CAM++ Area
Importance. Returns APCER / BPCER / ACER, AUC, precision / recall / F1 (spoof = positive class)
at the model's threshold (chosen on training data; stored in its card) and the Area Importance
of the 10 regions averaged over spoof and over real test images.
"""

from __future__ import annotations

import time
from pathlib import Path
from collections.abc import Callable

import numpy as np

from ..regions import REGION_NAMES
from .nuaa import detect_face, fas_metrics, label_metrics, read_split


def evaluate_fas(
    nuaa_dir,
    *,
    progress: Callable[[int, int], None] | None = None,
    model=None,
    faces: dict | None = None,
    split: str = "test",
    area_importance: bool = True,
) -> dict:
    """Run protocol 5 and return its JSON-ready result.

    ``model`` (a LivenessModel, the name of a model card, or ``"minifasnet"`` for the reference
    MiniFASNet pair of :mod:`fasfinder.liveness.minifasnet`) defaults to
    :func:`fasfinder.liveness.default_liveness_model`; ``faces`` may pass
    precomputed ``{rel path: {"box", "landmarks", "detected"}}`` (as cached by
    :func:`fasfinder.evaluation.nuaa.face_cache`) to skip detection.
    """

    from ..errors import BadArgument
    from ..faces import Face, FaceAnalyzer
    from ..imaging import load_image
    from ..liveness import default_liveness_model, load_liveness_model

    nuaa_dir = Path(nuaa_dir)
    if not (nuaa_dir / "db").is_dir():
        raise BadArgument(f"{nuaa_dir} is not a NUAA folder (no db/ inside)")
    # a card name, or "minifasnet": the third-party reference pair, read from ../shared
    model = load_liveness_model(model) if isinstance(model, str) else (model or default_liveness_model())
    items = read_split(nuaa_dir, split)
    analyzer = FaceAnalyzer() if faces is None else None
    scores = np.zeros(len(items))
    verdicts = []
    labels = np.array([lab for _, lab in items])
    no_face = 0
    ai = {0: [], 1: []}
    t0 = time.perf_counter()
    for i, (rel, label) in enumerate(items):
        rgb = load_image(nuaa_dir / "db" / rel).pixels
        if faces is not None:
            f = faces[rel]
            face = Face(box=tuple(f["box"]), landmarks=np.asarray(f["landmarks"], np.float32), shape5=np.zeros((5, 2), np.float32))
            detected = f["detected"]
        else:
            face, detected = detect_face(analyzer, rgb)
        no_face += 0 if detected else 1
        verdict = model.predict(rgb, [face])[0]
        scores[i] = verdict.score
        verdicts.append(verdict.label)
        if area_importance:
            _, imp = model.explain(rgb, face)
            ai[label].append([imp[r] for r in REGION_NAMES])
        if progress:
            progress(i + 1, len(items))
    out = fas_metrics(scores[labels == 1], scores[labels == 0], model.threshold)
    out.update(label_metrics(verdicts, labels))
    out["no_face"] = no_face
    out["model"] = model.name
    out["split"] = split
    out["misclassified"] = [{"image": rel, "score": round(float(s), 4), "label": v}
                            for (rel, lab), s, v in zip(items, scores, verdicts) if v == ("spoof" if lab == 1 else "real")]
    out["uncertain"] = [{"image": rel, "score": round(float(s), 4)} for (rel, _), s, v in zip(items, scores, verdicts)
                        if v == "uncertain"]
    if area_importance:
        out["area_importance"] = {
            name: {r: round(float(v), 4) for r, v in zip(REGION_NAMES, np.nanmean(np.array(ai[lab], dtype=np.float64), axis=0))}
            for name, lab in (("spoof", 0), ("real", 1))
            if ai[lab]
        }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
