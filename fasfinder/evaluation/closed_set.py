"""Protocol 4 closed set (the paper's Table 1 and Fig. 3, severity sweeps, the ablation rows).

``celeba_subset`` validation images (last 2 per identity) classified by the model's ArcFace head
when its card ships one (argmax cosine to the class weights), otherwise (``dlib-resnet``,
``dlib-resnet-torch``, ``cam-vector``) by the nearest class mean of the clean training images'
embeddings (cosine). Embeddings use flip TTA. Accuracy and macro F1 over the validation images.
"""

from __future__ import annotations

import time
import zlib

import numpy as np

from ..errors import BadArgument, ModelError
from .ablation import ABLATION_MODES
from .chip_models import ChipModel, chip_maps
from .metrics import macro_f1
from .robustness_conditions import ORIGINAL, Variant, perturb_chips
from .robustness_data import ClosedSet, log
from .robustness_rows import Rows, row_base


def _head_prototypes(model: ChipModel, data: ClosedSet) -> tuple[np.ndarray, np.ndarray]:
    """(class ids, unit rows) of the ArcFace head; row k = the k-th identity of the training cache's
    sorted list (or of the card's ``identities``)."""

    ids = np.array(model.head_classes if model.head_classes else data.identities, np.int64)
    if len(ids) != len(model.head):
        raise ModelError(f"{model.name}: head has {len(model.head)} classes but {len(ids)} identities are listed; "
                         "put the class order in the card's \"identities\"")
    return ids, model.head


def _ncm(train_emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.unique(labels)
    protos = np.stack([train_emb[labels == c].mean(0) for c in ids])
    return ids, protos / np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)


def classify(emb: np.ndarray, ids: np.ndarray, protos: np.ndarray) -> np.ndarray:
    return ids[np.argmax(emb @ protos.T, axis=1)]


def run_closed_set(models: list[ChipModel], data: ClosedSet, variants: list[Variant], rows: Rows, *,
                   ablation_variants: list[Variant], modes: tuple[str, ...] = ABLATION_MODES, batch: int = 128,
                   timings: dict | None = None) -> str:
    """Adds one row per (engine, variant, mode) missing from ``rows``; returns the data's scope tag."""

    if len(data.val_chips) < 2:
        raise BadArgument("closed set: fewer than 2 validation faces")
    scope = f"closed:{len(data.val_keys)}:{zlib.crc32(''.join(data.val_keys).encode()):08x}"
    timings = timings if timings is not None else {}

    def wanted(m: ChipModel, v: Variant) -> list[str]:
        ms = ["normal"] if v in variants else []
        if m.ablatable and v in ablation_variants:
            ms += [x for x in modes if x != "normal" or "normal" not in ms]
        return list(dict.fromkeys(ms))

    protos: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def embed_all(chips, todo_models, v, modes_for):
        maps = None
        if any(m.uses_maps for m in todo_models):
            t = time.time()
            maps = np.concatenate([chip_maps(chips[s : s + batch]) for s in range(0, len(chips), batch)])
            timings["heatmap_s"] = timings.get("heatmap_s", 0.0) + time.time() - t
        out = {}
        for m in todo_models:
            for mode in modes_for(m):
                t = time.time()
                out[(m.name, mode)] = np.concatenate(
                    [m.embed(chips[s : s + batch], None if maps is None else maps[s : s + batch], mode=mode)
                     for s in range(0, len(chips), batch)])
                timings[f"{m.name}_s"] = timings.get(f"{m.name}_s", 0.0) + time.time() - t
        return out

    order = list(dict.fromkeys(variants + ablation_variants))
    for vi, v in enumerate(order):
        todo = {m.name: [mode for mode in wanted(m, v) if Rows.make_id("closed", m, v, mode, scope) not in rows]
                for m in models}
        todo_models = [m for m in models if todo[m.name]]
        if not todo_models:
            continue
        need_ncm = [m for m in todo_models if m.head is None and m.name not in protos]
        if need_ncm:
            log(f"closed set: clean training embeddings for {', '.join(m.name for m in need_ncm)} "
                 f"({len(data.train_chips)} faces)")
            embs = embed_all(data.train_chips, need_ncm, ORIGINAL, lambda m: ["normal"])
            for m in need_ncm:
                protos[m.name] = _ncm(embs[(m.name, "normal")], data.train_labels)
        for m in todo_models:
            if m.head is not None and m.name not in protos:
                protos[m.name] = _head_prototypes(m, data)
        log(f"closed set [{vi + 1}/{len(order)}] {v.key}: {', '.join(f'{m.name}({len(todo[m.name])})' for m in todo_models)}")
        chips = perturb_chips(data.val_chips, v, data.val_keys)
        embs = embed_all(chips, todo_models, v, lambda m, todo=todo: todo[m.name])
        for m in todo_models:
            ids, pr = protos[m.name]
            for mode in todo[m.name]:
                pred = classify(embs[(m.name, mode)], ids, pr)
                row = row_base(m, v, mode) | {
                    "id": Rows.make_id("closed", m, v, mode, scope), "part": "closed", "classifier": m.classifier,
                    "n": int(len(pred)), "accuracy": round(float((pred == data.val_labels).mean()), 5),
                    "macro_f1": round(macro_f1(data.val_labels, pred), 5), "pred": pred.tolist()}
                rows.add(row)
    return scope
