"""Model cards of the NUAA-only FAS trainers: writing a card (and, with ``--eval``, protocol 5 on
the test subset stored in it) and the region ranking read from (or first computed into) a card.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..evaluation.fas import evaluate_fas
from ..evaluation.nuaa import DEFAULT_CACHE, face_cache, log
from ..modelfiles import write_card


def write_card_and_eval(args, card: dict, out_dir: Path, weights: Path, area_importance: bool = True) -> None:
    """Write ``<name>.card.json``; with ``--eval`` run protocol 5 on the test subset (cached faces of
    the same ``detect_face`` as evaluate_fas) and store the metrics in the card. Region-masked
    models (efficient FAS) skip the Area Importance (``area_importance=False``)."""

    card_path = write_card(card, out_dir, newline=False)  # card["name"] == args.name
    log(f"wrote {weights} and {card_path}")
    if not args.eval:
        return
    from ..liveness import LivenessModel

    model = LivenessModel(card, weights_path=weights)
    test_faces = face_cache(args.nuaa, "test", Path(args.cache_dir))
    m = evaluate_fas(args.nuaa, model=model, faces=test_faces, area_importance=area_importance,
                     progress=lambda i, n: log(f"eval {i}/{n}") if i % 100 == 0 else None)
    card["metrics"] = {"nuaa_subset_test": m, "measured_by": "fasfinder.evaluation.fas.evaluate_fas"}
    write_card(card, out_dir, newline=False)
    print(json.dumps({k: v for k, v in m.items() if k != "misclassified"}))


def region_ranking(nuaa_dir, card_name: str, cache_dir: Path = DEFAULT_CACHE) -> list[str]:
    """The 10 regions sorted by the model's mean Area Importance over the TRAINING spoof images
    (computed once and stored in that model's card as ``area_importance_train``)."""

    from ..liveness import LivenessModel
    from ..modelfiles import load_card

    card = load_card(card_name)
    if "area_importance_train" not in card:
        model = LivenessModel(card)
        m = evaluate_fas(nuaa_dir, model=model, faces=face_cache(nuaa_dir, "train", cache_dir), split="train",
                         progress=lambda i, n: log(f"ranking ({card_name} Area Importance, train) {i}/{n}") if i % 100 == 0 else None)
        card["area_importance_train"] = m["area_importance"]
        write_card(card, newline=False)  # back into models/<card_name>.card.json
    ai = card["area_importance_train"]["spoof"]
    return sorted(ai, key=lambda r: -ai[r])
