"""Protocol 4 of BENCHMARKS.md: robustness conditions, severity sweeps and the 4th-channel ablation.

    python main.py eval robustness --celeba ../shared/data --lfw ../shared/data/lfw --out DIR [--limit N]
    python main.py eval ablation   --celeba ../shared/data --out DIR

Where the perturbation acts: on the aligned face crop every engine sees, dlib's 150 px chip (RGB in
[0, 1], :mod:`fasfinder.perturb`, re-quantised to uint8 as a real image would be), *before* the
model input is made from it. For the Heatmap models the Grad-CAM++ channel is therefore
recomputed on the perturbed chip (what happens at query time), and the crop and heatmap are then
resized to the model input exactly as :func:`fasfinder.heatmap_models.heatmap.face_inputs` does.
Face detection and landmarks come from the clean image (perturbing after alignment measures the
recognizer, not the detector). Occlusion: the same seeded position for every image of one run
(seeds 0, 1, 2 = the 3 positions; error bars = std over them); noise: one seed per image derived
from its file name, so a rerun is bit-identical.

Closed set (the paper's Table 1 and Fig. 3): ``celeba_subset``, per identity the first 6 images
by file name train and the last 2 validate (the heatmap models' split, :func:`list_images`); faces
found with the training cache's detector settings (HOG, upsample 0 then 1; images without a face
are left out and counted, as in the training cache). Classifier: the model's ArcFace head when its
card ships one (argmax cosine to the class weights); otherwise (``dlib-resnet``,
``dlib-resnet-torch``, ``cam-vector``) the nearest class mean of the clean training images'
embeddings (cosine). Embeddings use flip TTA (normalised sum of both views, protocol 2's
``--flip``). Accuracy and macro F1 over the validation images.

Open set: LFW View 2 (protocol 2) with the second image of each pair perturbed; AUC/EER over all
pairs plus per-fold means and standard errors (error bars over the 10 folds), 10-fold accuracy.
``--limit N`` = the same pair selection as ``eval lfw --limit N``.

Ablation (Heatmap models only): Normal / Zero (all 0) / Random (uniform [0, 1], seeded) / Shuffle
(the heatmap of another validation image, a fixed seeded derangement of the whole validation
batch), at Original, Occlusion 0.30, Brightness 1.15, Noise 0.10, on the closed set.

Resumable: every finished (engine, condition, mode) row is appended to ``<out>/rows.jsonl`` (with
the weights' sha256, so a retrained model is not mixed up with an old one); chips and LFW
embeddings are cached in the user cache dir. Progress goes to stderr.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import perturb
from ..errors import BadArgument, FasFinderError, ModelError

ABLATION_MODES = ("normal", "zero", "random", "shuffle")
RANDOM_SEED = 20240   # the Random ablation's generator seed
SHUFFLE_SEED = 4242   # the Shuffle ablation's derangement seed
NOISE_SEED = 0        # base seed of the per-image noise seeds
DEFAULT_SKIP = ("dlib-resnet",)  # the C++ engine: ~10x slower than its PyTorch port on this CPU

#: What the paper reports (quoted, not reproduced here).
PAPER = {
    "lfw": {"shufflenet-heatmap": {"auc": 0.8372, "eer": 0.2435}, "mobilenet-heatmap": {"auc": 0.804},
            "efficientnet-heatmap": {"auc": 0.809}},
    "claims": [
        "Heatmap (RGB+H) beats Base (RGB) under occlusion and brightness changes",
        "Heatmap does not beat Base under Gaussian noise",
        "Zero / Random / Shuffle ablations of the 4th channel degrade the Heatmap model (the channel is used)",
    ],
}


def _log(msg: str, t0: list[float] = [time.time()]) -> None:  # noqa: B006 (process start time)
    sys.stderr.write(f"[robustness {time.time() - t0[0]:7.0f}s] {msg}\n")
    sys.stderr.flush()


# ------------------------------------------------------------------------------------------
# Conditions
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One perturbed version of the data: kind, severity and (occlusion) position seed."""

    kind: str
    severity: float
    seed: int = 0

    @property
    def key(self) -> str:
        return "original" if self.kind == "none" else f"{self.kind}_{self.severity:g}_s{self.seed}"

    @property
    def condition(self) -> str:
        """The condition name without the seed (what tables aggregate over)."""

        return "original" if self.kind == "none" else f"{self.kind}_{self.severity:.2f}"


ORIGINAL = Variant("none", 0.0)


def _seeds(kind: str) -> tuple[int, ...]:
    return perturb.OCCLUSION_SEEDS if kind == "occlusion" else (0,)


def single_point_variants() -> list[Variant]:
    """Original, Occlusion 0.30 (3 positions), Brightness 1.15, Noise 0.10."""

    return [Variant(kind, sev, s) if kind != "none" else ORIGINAL
            for kind, sev in perturb.CONDITIONS.values() for s in _seeds(kind)]


def sweep_variants() -> list[Variant]:
    return [Variant(kind, sev, s) for kind, sevs in perturb.SWEEPS.items() for sev in sevs for s in _seeds(kind)]


def all_variants(sweeps: bool) -> list[Variant]:
    out = single_point_variants() + (sweep_variants() if sweeps else [])
    return list(dict.fromkeys(out))


def image_seed(key: str, seed: int = NOISE_SEED) -> int:
    """A stable per-image seed from its name (noise differs between images, not between runs)."""

    return (zlib.crc32(key.encode("utf-8")) + 1_000_003 * seed) % (2**32)


def perturb_chips(chips: np.ndarray, v: Variant, keys: list[str]) -> np.ndarray:
    """Apply ``v`` to uint8 chips (n, H, W, 3): the perturbation acts on [0, 1] floats and the result
    is re-quantised to uint8 (:func:`fasfinder.perturb.apply` does both)."""

    if v.kind == "none":
        return chips
    out = np.empty_like(chips)
    for i, chip in enumerate(chips):
        seed = v.seed if v.kind == "occlusion" else image_seed(keys[i], v.seed)
        out[i] = perturb.apply(chip, v.kind, v.severity, seed=seed)
    return out


# ------------------------------------------------------------------------------------------
# Ablation of the 4th channel
# ------------------------------------------------------------------------------------------
def derangement(n: int, seed: int = SHUFFLE_SEED) -> np.ndarray:
    """A seeded permutation without fixed points (Sattolo's algorithm: one n-cycle)."""

    if n < 2:
        raise BadArgument("the Shuffle ablation needs at least 2 images")
    rng = np.random.default_rng(seed)
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def ablate(heat: np.ndarray, mode: str, seed: int = RANDOM_SEED) -> np.ndarray:
    """The 4th channel under an ablation mode (heat: (n, h, w) float in [0, 1])."""

    if mode == "normal":
        return heat
    if mode == "zero":
        return np.zeros_like(heat, dtype=np.float32)
    if mode == "random":
        return np.random.default_rng(seed).random(heat.shape, dtype=np.float32)
    if mode == "shuffle":
        return np.ascontiguousarray(heat[derangement(len(heat))])
    raise BadArgument(f"unknown ablation mode {mode!r} (one of {', '.join(ABLATION_MODES)})")


# ------------------------------------------------------------------------------------------
# Engines on chips
# ------------------------------------------------------------------------------------------
class ChipModel:
    """An engine evaluated on (possibly perturbed) 150 px chips; embeddings with flip TTA."""

    def __init__(self, name: str, engine, *, kind: str, variant: str | None = None, backbone: str | None = None,
                 fingerprint: str = "", head: np.ndarray | None = None, head_classes: list[int] | None = None,
                 flip: bool = True):
        self.name, self.engine, self.kind = name, engine, kind
        self.variant, self.backbone = variant, backbone
        self.fingerprint, self.head, self.head_classes, self.flip = fingerprint, head, head_classes, flip
        self.card_val_f1: float | None = None

    @property
    def uses_maps(self) -> bool:
        return self.kind == "cam-vector" or (self.kind == "heatmap-net" and self.variant == "heatmap")

    @property
    def ablatable(self) -> bool:
        return self.kind == "heatmap-net" and self.variant == "heatmap"

    @property
    def classifier(self) -> str:
        return "arcface-head" if self.head is not None else "nearest-class-mean"

    def embed(self, chips: np.ndarray, maps: np.ndarray | None = None, mode: str = "normal") -> np.ndarray:
        """(n, d) L2-normalised embeddings (flip TTA when ``flip``) of uint8 chips; ``maps`` = the
        chips' Grad-CAM++ maps (n, 150, 150) for engines that use them."""

        from ..engines.base import combine_views, l2_normalise

        mirror = self.flip
        if self.kind == "heatmap-net":
            from ..heatmap_models.heatmap import chip_to_input

            size = self.engine.size
            crops = np.stack([chip_to_input(c, size) for c in chips])
            heat = None
            if self.variant == "heatmap":
                if maps is None:
                    raise BadArgument(f"{self.name} needs heatmaps")
                heat = np.stack([chip_to_input(np.asarray(m, np.float32), size) for m in maps]).astype(np.float32)
                heat = ablate(heat, mode)
            elif mode != "normal":
                raise BadArgument(f"ablation does not apply to {self.name} (no heatmap channel)")
            plain, mirrored = self.engine.embed_inputs(crops, heat, mirror=mirror)
        elif self.kind == "cam-vector":
            plain, mirrored = self.engine.embed_maps(maps, mirror=mirror)
        else:  # dlib descriptors (PyTorch port or C++)
            n = len(chips)
            views = list(chips) + ([np.ascontiguousarray(c[:, ::-1]) for c in chips] if mirror else [])
            emb = l2_normalise(self.engine.descriptors_from_chips(views))
            plain, mirrored = emb[:n], (emb[n:] if mirror else None)
        return combine_views(plain, mirrored) if mirror else plain


def _card_sha(card: dict) -> str:
    return "+".join(str(f.get("sha256", ""))[:12] for f in card.get("files", []))


def load_head(card: dict) -> tuple[np.ndarray | None, list[int] | None]:
    """The ArcFace class weights (n_classes, 128), L2-normalised, if the card ships them, and the
    CelebA identity of each row when the card lists them (``identities``)."""

    if not any(f.get("name") == "head" for f in card.get("files", [])):
        return None, None
    import torch

    from ..modelfiles import card_file

    sd = torch.load(card_file(card, "head"), weights_only=True, map_location="cpu")
    w = sd["weight"] if isinstance(sd, dict) else sd
    w = np.asarray(w.detach().cpu().numpy() if hasattr(w, "detach") else w, dtype=np.float32)
    w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    ids = card.get("identities") or (card.get("head_classes") if isinstance(card.get("head_classes"), list) else None)
    return w, ([int(i) for i in ids] if ids else None)


def resolve_models(names: list[str] | None, *, flip: bool = True) -> list[ChipModel]:
    """ChipModels for the requested engines (default: every installed one except ``dlib-resnet``)."""

    from ..engines import engine_names, get_engine
    from ..engines.heatmap_nets import HeatmapNetEngine, installed_cards

    cards = {c["name"]: c for c in installed_cards()}  # read now (the registry may predate a models dir change)
    known = list(dict.fromkeys([n for n in engine_names() if n not in cards] + list(cards)))
    if not names:
        names = [n for n in known if n not in DEFAULT_SKIP]
    out = []
    for name in names:
        if name in cards:
            card = cards[name]
            head, classes = load_head(card)
            eng = HeatmapNetEngine(name, card)
            m = ChipModel(name, eng, kind="heatmap-net", variant=card["variant"], backbone=card["backbone"],
                          fingerprint=_card_sha(card), head=head, head_classes=classes, flip=flip)
            m.card_val_f1 = (card.get("validation") or {}).get("val_macro_f1")  # training's own check, for the report
            out.append(m)
            continue
        if name not in known:
            from ..errors import UnknownEngine

            raise UnknownEngine(f"unknown engine {name!r}; installed: {', '.join(known)}")
        eng = get_engine(name)
        if name == "cam-vector":
            kind = "cam-vector"
        elif hasattr(eng, "descriptors_from_chips"):
            kind = "dlib"
        else:
            raise BadArgument(f"engine {name!r} has no chip-level path for protocol 4")
        try:
            fp = _card_sha(eng.card())
        except FasFinderError:
            fp = ""
        out.append(ChipModel(name, eng, kind=kind, fingerprint=fp, flip=flip))
    return out


def chip_maps(chips: np.ndarray) -> np.ndarray:
    """Grad-CAM++ maps (n, 150, 150) of chips, the heatmap definition of the heatmap models."""

    from ..heatmap_models.heatmap import default_cam

    maps, _ = default_cam()(chips)
    return maps


# ------------------------------------------------------------------------------------------
# Data: chips of celeba_subset (closed set) and of LFW (open set), cached
# ------------------------------------------------------------------------------------------
def _chip_cache_path(name: str) -> Path:
    from .lfw_data import cache_dir

    return cache_dir() / "eval" / "robustness" / name


class ChipStore:
    """``key -> 150 px chip`` (+ a small record) persisted as one ``.npz``; resumable."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.chips: dict[str, np.ndarray] = {}
        self.records: dict[str, dict] = {}
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    keys, chips, recs = z["keys"], z["chips"], json.loads(str(z["records"]))
                for i, k in enumerate(keys):
                    self.records[str(k)] = recs[i]
                    if recs[i].get("face", True):
                        self.chips[str(k)] = chips[i]
            except (OSError, ValueError, KeyError):
                self.chips, self.records = {}, {}  # a damaged cache is recomputed

    def save(self) -> None:
        keys = list(self.records)
        if not keys:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        blank = np.zeros((150, 150, 3), np.uint8)
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=np.array(keys), chips=np.stack([self.chips.get(k, blank) for k in keys]),
                 records=np.array(json.dumps([self.records[k] for k in keys])))
        os.replace(tmp, self.path)


@dataclass
class ClosedSet:
    train_chips: np.ndarray
    train_labels: np.ndarray  # CelebA identity numbers
    train_keys: list[str]
    val_chips: np.ndarray
    val_labels: np.ndarray
    val_keys: list[str]
    identities: list[int]     # every identity of the listing, sorted (the heatmap models' class order)
    listed: dict
    no_face: dict


def load_closed_set(data_root: Path, *, max_ids: int | None = None, store_path: Path | None = None,
                    progress=None) -> ClosedSet:
    """Chips of ``celeba_subset`` split as the heatmap models were trained (first 6 / last 2)."""

    import cv2

    from ..faces import DetectorSettings, FaceAnalyzer, face_chip
    from ..heatmap_models.data import list_images

    data_root = Path(data_root)
    if not (data_root / "celeba_subset" / "identity_CelebA_subset.txt").is_file():
        raise BadArgument(f"{data_root} holds no celeba_subset/identity_CelebA_subset.txt (--celeba: the folder "
                          "holding celeba_subset/)")
    items = [it for it in list_images(data_root) if it["source"] == "celeba_subset"]
    identities = sorted({it["identity"] for it in items})
    if max_ids:
        keep = set(identities[:max_ids])
        items = [it for it in items if it["identity"] in keep]
    store = ChipStore(store_path or _chip_cache_path("celeba_subset-chips.npz"))
    todo = [it for it in items if Path(it["path"]).name not in store.records]
    if todo:
        # the training cache's detector settings (heatmap_models.data.prepare_shard)
        a0 = FaceAnalyzer(DetectorSettings(upsample=0, fallback=False))
        a1 = FaceAnalyzer(DetectorSettings(upsample=1, fallback=False))
        for i, it in enumerate(todo):
            key = Path(it["path"]).name
            bgr = cv2.imread(it["path"])
            faces = []
            if bgr is not None:
                rgb = np.ascontiguousarray(bgr[:, :, ::-1])
                faces = a0.detect(rgb) or a1.detect(rgb)
            store.records[key] = {"face": bool(faces)}
            if faces:
                store.chips[key] = face_chip(rgb, faces[0])
            if progress:
                progress(i + 1, len(todo), f"celeba chips {key}")
            if (i + 1) % 200 == 0:
                store.save()
        store.save()
    split = {s: [it for it in items if it["split"] == s and Path(it["path"]).name in store.chips] for s in ("train", "val")}

    def arr(lst):
        if not lst:
            return np.zeros((0, 150, 150, 3), np.uint8)
        return np.stack([store.chips[Path(it["path"]).name] for it in lst])

    return ClosedSet(
        train_chips=arr(split["train"]), train_labels=np.array([it["identity"] for it in split["train"]], np.int64),
        train_keys=[Path(it["path"]).name for it in split["train"]],
        val_chips=arr(split["val"]), val_labels=np.array([it["identity"] for it in split["val"]], np.int64),
        val_keys=[Path(it["path"]).name for it in split["val"]],
        identities=identities,
        listed={s: sum(it["split"] == s for it in items) for s in ("train", "val")},
        no_face={s: sum(it["split"] == s and Path(it["path"]).name not in store.chips for it in items)
                 for s in ("train", "val")},
    )


def lfw_chips(paths: list[str], *, store_path: Path | None = None, progress=None) -> tuple[dict[str, np.ndarray], int]:
    """Chips of LFW images: protocol 2's face (shared detection cache; central-50% fallback counted)."""

    from ..faces import FaceAnalyzer, face_chip
    from ..imaging import load_image
    from .lfw_data import DetectionCache

    store = ChipStore(store_path or _chip_cache_path("lfw-chips.npz"))
    todo = [p for p in dict.fromkeys(paths) if p not in store.records]
    if todo:
        detections = DetectionCache("lfw")
        analyzer = FaceAnalyzer()
        for i, p in enumerate(todo):
            img = load_image(p).pixels
            face, fallback = detections.face(p, img, analyzer)
            store.chips[p] = face_chip(img, face)
            store.records[p] = {"face": True, "fallback": bool(fallback)}
            if progress:
                progress(i + 1, len(todo), f"lfw chips {Path(p).name}")
            if (i + 1) % 500 == 0:
                store.save()
                detections.save()
        store.save()
        detections.save()
    return {p: store.chips[p] for p in paths}, sum(store.records[p].get("fallback", False) for p in set(paths))


# ------------------------------------------------------------------------------------------
# Results cache (rows.jsonl in the output folder)
# ------------------------------------------------------------------------------------------
class Rows:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    r = json.loads(line)
                    self.rows[r["id"]] = r
                except (ValueError, KeyError):
                    continue

    @staticmethod
    def make_id(part: str, model: ChipModel, v: Variant, mode: str, scope: str) -> str:
        return "|".join([part, model.name, model.fingerprint, model.classifier, "flip" if model.flip else "plain",
                         v.key, mode, scope])

    def __contains__(self, rid: str) -> bool:
        return rid in self.rows

    def add(self, row: dict) -> None:
        self.rows[row["id"]] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def _row_base(model: ChipModel, v: Variant, mode: str) -> dict:
    return {"engine": model.name, "backbone": model.backbone, "variant": model.variant, "kind": v.kind,
            "severity": v.severity, "seed": v.seed, "condition": v.condition, "mode": mode,
            "fingerprint": model.fingerprint}


# ------------------------------------------------------------------------------------------
# Closed set
# ------------------------------------------------------------------------------------------
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


def macro_f1(y: np.ndarray, p: np.ndarray) -> float:
    from ..heatmap_models.train import macro_f1 as _f1

    return _f1(np.asarray(y), np.asarray(p))


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
            _log(f"closed set: clean training embeddings for {', '.join(m.name for m in need_ncm)} "
                 f"({len(data.train_chips)} faces)")
            embs = embed_all(data.train_chips, need_ncm, ORIGINAL, lambda m: ["normal"])
            for m in need_ncm:
                protos[m.name] = _ncm(embs[(m.name, "normal")], data.train_labels)
        for m in todo_models:
            if m.head is not None and m.name not in protos:
                protos[m.name] = _head_prototypes(m, data)
        _log(f"closed set [{vi + 1}/{len(order)}] {v.key}: {', '.join(f'{m.name}({len(todo[m.name])})' for m in todo_models)}")
        chips = perturb_chips(data.val_chips, v, data.val_keys)
        embs = embed_all(chips, todo_models, v, lambda m: todo[m.name])
        for m in todo_models:
            ids, pr = protos[m.name]
            for mode in todo[m.name]:
                pred = classify(embs[(m.name, mode)], ids, pr)
                row = _row_base(m, v, mode) | {
                    "id": Rows.make_id("closed", m, v, mode, scope), "part": "closed", "classifier": m.classifier,
                    "n": int(len(pred)), "accuracy": round(float((pred == data.val_labels).mean()), 5),
                    "macro_f1": round(macro_f1(data.val_labels, pred), 5), "pred": pred.tolist()}
                rows.add(row)
    return scope


# ------------------------------------------------------------------------------------------
# Open set (LFW)
# ------------------------------------------------------------------------------------------
class EmbStore:
    """Per-image embeddings of one (engine, variant), ``.npz`` in the cache dir; resumable."""

    def __init__(self, model: ChipModel, v: Variant):
        tag = f"{model.name}@{model.fingerprint[:12] or 'nofp'}-{'flip' if model.flip else 'plain'}-{v.key}"
        self.path = _chip_cache_path(f"lfw-emb/{tag}.npz")
        self.data: dict[str, np.ndarray] = {}
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    keys, emb = z["keys"], z["emb"]
                self.data = {str(k): emb[i] for i, k in enumerate(keys)}
            except (OSError, ValueError, KeyError):
                self.data = {}

    def save(self) -> None:
        if not self.data:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.data)
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=np.array(keys), emb=np.stack([self.data[k] for k in keys]))
        os.replace(tmp, self.path)


def fold_stats(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    from .metrics import auc, eer

    aucs = [auc(scores[folds == f], same[folds == f]) for f in np.unique(folds)]
    eers = [eer(scores[folds == f], same[folds == f]) for f in np.unique(folds)]

    def sem(x):
        return float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0

    return {"auc_fold_mean": round(float(np.mean(aucs)), 5), "auc_fold_sem": round(sem(aucs), 5),
            "eer_fold_mean": round(float(np.mean(eers)), 5), "eer_fold_sem": round(sem(eers), 5),
            "fold_auc": [round(a, 5) for a in aucs], "fold_eer": [round(e, 5) for e in eers]}


def run_open_set(models: list[ChipModel], lfw_dir: Path, variants: list[Variant], rows: Rows, *,
                 limit: int | None = None, batch: int = 128, timings: dict | None = None, progress=None) -> dict:
    from .lfw import select_pairs
    from .metrics import verification_report

    timings = timings if timings is not None else {}
    pairs = select_pairs(lfw_dir, limit)
    scope = f"lfw:{len(pairs)}:{zlib.crc32(repr([(str(a), str(b)) for a, b, _, _ in pairs]).encode()):08x}"
    first = [str(a) for a, _, _, _ in pairs]
    second = [str(b) for _, b, _, _ in pairs]
    same = np.array([s for _, _, s, _ in pairs])
    folds = np.array([f for _, _, _, f in pairs])
    todo_all = [(m, v) for v in variants for m in models
                if Rows.make_id("open", m, v, "normal", scope) not in rows]
    info = {"pairs": len(pairs), "images": len(set(first + second)), "scope": scope}
    if not todo_all:  # everything cached: the fallback count is in the rows
        info["no_face"] = next((r.get("no_face") for r in rows.rows.values()
                                if r["part"] == "open" and r.get("pairs") == len(pairs)), None)
        return info
    t = time.time()
    chips, no_face = lfw_chips(first + second, progress=progress)
    timings["lfw_chips_s"] = timings.get("lfw_chips_s", 0.0) + time.time() - t
    info["no_face"] = int(no_face)
    _log(f"open set: {len(pairs)} pairs, {info['images']} images, {no_face} central-box fallbacks")

    clean = {}
    for v in variants:
        todo = [m for m in models if Rows.make_id("open", m, v, "normal", scope) not in rows]
        if not todo:
            continue
        _log(f"open set {v.key}: {', '.join(m.name for m in todo)}")
        fresh = [m for m in todo if m.name not in clean]
        if fresh:
            clean.update(_embed_paths(fresh, ORIGINAL, list(dict.fromkeys(first + second)), chips, batch, timings))
        pert = clean if v == ORIGINAL else _embed_paths(todo, v, list(dict.fromkeys(second)), chips, batch, timings)
        for m in todo:
            e1 = np.stack([clean[m.name][p] for p in first])
            e2 = np.stack([pert[m.name][p] for p in second])
            scores = (e1 * e2).sum(1).astype(np.float64)
            rep = verification_report(scores, same, folds)
            row = _row_base(m, v, "normal") | {"id": Rows.make_id("open", m, v, "normal", scope), "part": "open",
                                                "no_face": info["no_face"]} | rep | fold_stats(scores, same, folds)
            rows.add(row)
    return info


def _embed_paths(models: list[ChipModel], v: Variant, paths: list[str], chips: dict[str, np.ndarray], batch: int,
                 timings: dict) -> dict[str, dict[str, np.ndarray]]:
    """Embeddings of the chips of ``paths`` under ``v`` for every model (cached per model and variant)."""

    stores = {m.name: EmbStore(m, v) for m in models}
    missing = [p for p in paths if any(p not in stores[m.name].data for m in models)]
    keys = [str(Path(p).relative_to(Path(p).parents[1])) if len(Path(p).parents) > 1 else p for p in missing]
    for s in range(0, len(missing), batch):
        part = missing[s : s + batch]
        pchips = perturb_chips(np.stack([chips[p] for p in part]), v, keys[s : s + batch])
        need = [m for m in models if any(p not in stores[m.name].data for p in part)]
        maps = None
        if any(m.uses_maps for m in need):
            t = time.time()
            maps = chip_maps(pchips)
            timings["heatmap_s"] = timings.get("heatmap_s", 0.0) + time.time() - t
        for m in need:
            t = time.time()
            emb = m.embed(pchips, maps)
            timings[f"{m.name}_s"] = timings.get(f"{m.name}_s", 0.0) + time.time() - t
            stores[m.name].data.update(zip(part, emb))
            stores[m.name].save()
        _log(f"  {v.key}: {min(s + batch, len(missing))}/{len(missing)} images")
    return {m.name: stores[m.name].data for m in models}


# ------------------------------------------------------------------------------------------
# Tables, curves, report
# ------------------------------------------------------------------------------------------
def _agg(vals: list[float]) -> tuple[float, float]:
    a = np.asarray(vals, float)
    return float(a.mean()), (float(a.std(ddof=1)) if len(a) > 1 else 0.0)


def aggregate(rows: list[dict], part: str, metrics: tuple[str, ...]) -> list[dict]:
    """One row per (engine, condition, mode): mean over occlusion seeds, std over them (``*_std``)."""

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["part"] == part:
            groups.setdefault((r["engine"], r["condition"], r["mode"]), []).append(r)
    out = []
    for (eng, cond, mode), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        base = {k: rs[0][k] for k in ("engine", "backbone", "variant", "kind", "severity", "condition", "mode")}
        base["seeds"] = len(rs)
        if "classifier" in rs[0]:
            base["classifier"] = rs[0]["classifier"]
        for k in metrics:
            mean, std = _agg([r[k] for r in rs])
            base[k] = round(mean, 5)
            base[f"{k}_seed_std"] = round(std, 5)
        for k in ("accuracy_sem", "auc_fold_sem", "eer_fold_sem"):
            if k in rs[0]:
                base[k] = round(float(np.mean([r[k] for r in rs])), 5)
        out.append(base)
    return out


def bootstrap_delta_f1(y: np.ndarray, preds_a: list[np.ndarray], preds_b: list[np.ndarray], n: int = 1000,
                       seed: int = 0) -> tuple[float, float]:
    """Mean over seeds of macro-F1(b) - macro-F1(a) and its paired bootstrap standard error
    (images resampled jointly for every seed)."""

    y = np.asarray(y)
    classes, yi = np.unique(y, return_inverse=True)
    c = len(classes)
    lut = {int(k): i for i, k in enumerate(classes)}

    def idx(p):
        return np.array([lut.get(int(v), c) for v in p])  # predictions outside y's classes -> extra bin

    pa, pb = [idx(p) for p in preds_a], [idx(p) for p in preds_b]

    def f1(sel, p):
        ys, ps = yi[sel], p[sel]
        tp = np.bincount(ys[ps == ys], minlength=c + 1)[:c]
        true = np.bincount(ys, minlength=c + 1)[:c]
        pred = np.bincount(ps, minlength=c + 1)[:c]
        present = true > 0
        denom = np.maximum(true + pred, 1)
        return float(np.mean((2 * tp / denom)[present]))

    full = np.arange(len(y))
    delta = float(np.mean([f1(full, b) - f1(full, a) for a, b in zip(pa, pb)]))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n):
        sel = rng.integers(0, len(y), len(y))
        boots.append(np.mean([f1(sel, b) - f1(sel, a) for a, b in zip(pa, pb)]))
    return delta, float(np.std(boots, ddof=1))


def _delta_cell(labels, a, b, up: str, down: str) -> str:
    """Macro-F1 difference b - a with its paired bootstrap verdict, or "--" when the rows are missing."""

    if not a or len(a) != len(b):
        return "--"
    d, se = bootstrap_delta_f1(labels, a, b)
    return _verdict(d, se, up, down)


def _verdict(delta: float, se: float, better: str, worse: str) -> str:
    if not np.isfinite(se) or se == 0:
        return "identical" if delta == 0 else f"{better if delta > 0 else worse} ({delta:+.3f}, s.e. 0)"
    if delta > 2 * se:
        return f"{better} ({delta:+.3f} +- {se:.3f})"
    if delta < -2 * se:
        return f"{worse} ({delta:+.3f} +- {se:.3f})"
    return f"no clear difference ({delta:+.3f} +- {se:.3f})"


def _identity_severity(kind: str) -> float:
    return 1.0 if kind == "brightness" else 0.0


def write_outputs(out: Path, rows: list[dict], models: list[ChipModel], meta: dict, val_labels: np.ndarray | None) -> dict:
    """CSV + JSON tables, PNG curves, report.md. Returns the written paths."""

    from .plot import PALETTE, Series, line_plot

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [m.name for m in models]
    rows = [r for r in rows if r["engine"] in names]
    closed_rows = [r for r in rows if r["part"] == "closed"]
    open_rows = [r for r in rows if r["part"] == "open"]
    closed = aggregate(closed_rows, "closed", ("accuracy", "macro_f1"))
    opened = aggregate(open_rows, "open", ("auc", "eer", "accuracy", "auc_fold_mean", "eer_fold_mean"))
    files = {}

    def write_table(name, table, cols):
        if not table:
            return
        with open(out / f"{name}.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            w.writerows(table)
        (out / f"{name}.json").write_text(json.dumps(table, indent=1) + "\n")
        files[name] = [str(out / f"{name}.csv"), str(out / f"{name}.json")]

    conds = list(dict.fromkeys(["original"] + [f"{k}_{s:.2f}" for k, s in perturb.CONDITIONS.values() if k != "none"]))
    order = {n: i for i, n in enumerate(names)}
    key = lambda r: (order.get(r["engine"], 99), r["kind"], r["severity"], r["mode"])  # noqa: E731
    single = sorted([r for r in closed if r["condition"] in conds and r["mode"] == "normal"], key=key)
    sweep = sorted([r for r in closed if r["mode"] == "normal"], key=key)
    abl = sorted([r for r in closed if r["condition"] in conds and any(m.ablatable and m.name == r["engine"] for m in models)],
                 key=key)
    ccols = ["engine", "backbone", "variant", "classifier", "condition", "kind", "severity", "mode", "seeds", "accuracy",
             "accuracy_seed_std", "macro_f1", "macro_f1_seed_std"]
    write_table("table1_closed", single, ccols)
    write_table("sweeps_closed", sweep, ccols)
    write_table("ablation_closed", abl, ccols)
    ocols = ["engine", "backbone", "variant", "condition", "kind", "severity", "seeds", "auc", "auc_seed_std", "auc_fold_sem",
             "eer", "eer_seed_std", "eer_fold_sem", "accuracy", "accuracy_sem", "accuracy_seed_std", "auc_fold_mean",
             "eer_fold_mean"]
    write_table("open_lfw", sorted(opened, key=key), ocols)
    raw = [{k: v for k, v in r.items() if k != "pred"} for r in rows]
    (out / "rows.json").write_text(json.dumps(raw, indent=1) + "\n")
    files["rows"] = str(out / "rows.json")

    # curves: one figure per condition kind, Base (dashed) vs Heatmap (solid), one colour per backbone
    backbones = list(dict.fromkeys(m.backbone for m in models if m.backbone))
    colour = {b: PALETTE[i % len(PALETTE)] for i, b in enumerate(backbones)}
    others = [m.name for m in models if not m.backbone]
    for i, n in enumerate(others):
        colour[n] = PALETTE[(len(backbones) + i) % len(PALETTE)]
    pngs = []
    for part, table, metric, label in (("closed", closed, "macro_f1", "macro F1 (closed set, CelebA val)"),
                                       ("open", opened, "auc", "AUC (LFW, 2nd image perturbed)")):
        for kind in perturb.SWEEPS:
            series = []
            for m in models:
                pts = {r["severity"]: r for r in table if r["engine"] == m.name and r["mode"] == "normal"
                       and r["kind"] == kind}
                orig = next((r for r in table if r["engine"] == m.name and r["mode"] == "normal" and r["kind"] == "none"), None)
                if len(pts) < 2:
                    continue
                xs = sorted(pts)
                ys = [pts[x][metric] for x in xs]
                es = [pts[x].get(f"{metric}_seed_std", 0.0) for x in xs]
                if orig is not None:
                    xs, ys, es = [_identity_severity(kind)] + xs, [orig[metric]] + ys, [0.0] + es
                    srt = np.argsort(xs)
                    xs, ys, es = [xs[j] for j in srt], [ys[j] for j in srt], [es[j] for j in srt]
                series.append(Series(m.name, xs, ys, es, colour[m.backbone or m.name], dashed=m.variant == "base"))
            if not series:
                continue
            xl = {"occlusion": "occluded fraction a (mean of 3 positions, bars = std)", "brightness": "brightness factor b",
                  "noise": "noise sigma s"}[kind]
            p = line_plot(out / f"curve_{part}_{kind}.png", series, title=f"{kind}: {label}", xlabel=xl, ylabel=metric)
            pngs.append(str(p))
    files["curves"] = pngs
    report = render_report(closed_rows, closed, open_rows, opened, models, meta, val_labels)
    (out / "report.md").write_text(report)
    files["report"] = str(out / "report.md")
    return files


def render_report(closed_rows: list[dict], closed: list[dict], open_rows: list[dict], opened: list[dict],
                  models: list[ChipModel], meta: dict, val_labels: np.ndarray | None) -> str:
    L = ["# Robustness (BENCHMARKS.md section 4): generated report", ""]
    L.append(f"Command: `{meta.get('command', '')}`  ")
    L.append(f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; total runtime of this invocation "
             f"{meta.get('runtime_s', 0):.0f} s (cached rows are not recomputed).  ")
    cs = meta.get("closed_set") or {}
    if cs:
        L.append(f"Closed set: celeba_subset validation = last 2 images by file name of {cs.get('identities')} identities, "
                 f"{cs.get('val_faces')} faces ({cs.get('val_no_face')} of {cs.get('val_listed')} without a HOG face left out); "
                 f"nearest-class-mean prototypes from {cs.get('train_faces')} training faces (first 6 per identity).  ")
    op = meta.get("open_set") or {}
    if op:
        L.append(f"Open set: LFW View 2, {op.get('pairs')} pairs ({'all' if not op.get('limit') else 'limit ' + str(op.get('limit'))}), "
                 f"{op.get('images')} images, {op.get('no_face', 0)} central-box fallbacks; the second image of each pair is perturbed.  ")
    L.append("Perturbation on dlib's aligned 150 px chip (in [0,1], re-quantised to uint8) before the model input (and the "
             "Heatmap models' Grad-CAM++ channel) is made from it; flip TTA. Occlusion = mean of 3 seeded positions.")
    L.append("")
    L.append("| engine | classifier (closed set) | validation macro F1 in the model card (training's own check) |")
    L.append("|---|---|---|")
    for m in models:
        L.append(f"| `{m.name}` | {m.classifier} | {'--' if m.card_val_f1 is None else m.card_val_f1} |")
    L.append("")

    conds = ["original", "occlusion_0.30", "brightness_1.15", "noise_0.10"]
    by = {(r["engine"], r["condition"], r["mode"]): r for r in closed}
    if closed:
        L += ["## Table 1 (closed set): macro F1 (accuracy), occlusion +- std over 3 positions", "",
              "| engine | " + " | ".join(conds) + " |", "|---|" + "---|" * len(conds)]
        for m in models:
            cells = []
            for c in conds:
                r = by.get((m.name, c, "normal"))
                if r is None:
                    cells.append("--")
                    continue
                sd = f" +- {r['macro_f1_seed_std']:.3f}" if r["seeds"] > 1 else ""
                cells.append(f"{r['macro_f1']:.3f}{sd} ({r['accuracy']:.3f})")
            L.append(f"| `{m.name}` | " + " | ".join(cells) + " |")
        L.append("")
        L += _claims_closed(closed_rows, models, val_labels)

    sweeps = [r for r in closed if r["mode"] == "normal"]
    if sweeps and len({r["condition"] for r in sweeps}) > 4:
        L += ["## Severity sweeps (closed set, macro F1; occlusion +- std over 3 positions)", ""]
        for kind, sevs in perturb.SWEEPS.items():
            L += [f"**{kind}** (curve: `curve_closed_{kind}.png`)", "", "| engine | " + " | ".join(f"{s:g}" for s in sevs) + " |",
                  "|---|" + "---|" * len(sevs)]
            for m in models:
                cells = []
                for s in sevs:
                    r = by.get((m.name, f"{kind}_{s:.2f}", "normal"))
                    cells.append("--" if r is None else f"{r['macro_f1']:.3f}" + (f" +- {r['macro_f1_seed_std']:.3f}" if r["seeds"] > 1 else ""))
                L.append(f"| `{m.name}` | " + " | ".join(cells) + " |")
            L.append("")

    if opened:
        ob = {(r["engine"], r["condition"]): r for r in opened}
        L += ["## Open set: LFW View 2, second image perturbed: AUC / EER (+- s.e. over 10 folds; occlusion also +- std over 3 positions)", "",
              "| engine | " + " | ".join(conds) + " | paper (original) |", "|---|" + "---|" * (len(conds) + 1)]
        for m in models:
            cells = []
            for c in conds:
                r = ob.get((m.name, c))
                if r is None:
                    cells.append("--")
                    continue
                sd = f", pos std {r['auc_seed_std']:.3f}" if r["seeds"] > 1 else ""
                cells.append(f"{r['auc']:.4f} +- {r.get('auc_fold_sem', 0):.3f} / {r['eer']:.4f} +- {r.get('eer_fold_sem', 0):.3f}{sd}")
            paper = PAPER["lfw"].get(m.name)
            ptxt = " / ".join(f"{k.upper()} {v}" for k, v in paper.items()) if paper else "--"
            L.append(f"| `{m.name}` | " + " | ".join(cells) + f" | {ptxt} |")
        L += ["", "10-fold accuracy (+- s.e.):", "", "| engine | " + " | ".join(conds) + " |", "|---|" + "---|" * len(conds)]
        for m in models:
            cells = [("--" if (r := ob.get((m.name, c))) is None else f"{r['accuracy']:.4f} +- {r.get('accuracy_sem', 0):.4f}")
                     for c in conds]
            L.append(f"| `{m.name}` | " + " | ".join(cells) + " |")
        L.append("")
        L += _claims_open(open_rows, models)

    L += ["## Ablation of the 4th channel (closed set, macro F1)", ""]
    abl_models = [m for m in models if m.ablatable]
    if not abl_models or not any(r["mode"] != "normal" for r in closed):
        L.append("No Heatmap model was evaluated with the ablation.")
    else:
        L += ["| engine | mode | " + " | ".join(conds) + " |", "|---|---|" + "---|" * len(conds)]
        for m in abl_models:
            for mode in ABLATION_MODES:
                cells = [("--" if (r := by.get((m.name, c, mode))) is None else f"{r['macro_f1']:.3f}") for c in conds]
                L.append(f"| `{m.name}` | {mode} | " + " | ".join(cells) + " |")
        L.append("")
        L += _claims_ablation(closed_rows, abl_models, val_labels)
    na = [m.name for m in models if not m.ablatable]
    if na:
        L.append(f"Ablation not applicable (no heatmap input channel): {', '.join(f'`{n}`' for n in na)}.")
    L.append("")
    L += ["## Runtime", "", "```", json.dumps(meta.get("timings", {}), indent=1), "```", ""]
    return "\n".join(L) + "\n"


def _pairs_by_backbone(models: list[ChipModel]) -> list[tuple[ChipModel, ChipModel]]:
    out = []
    for b in dict.fromkeys(m.backbone for m in models if m.backbone):
        base = next((m for m in models if m.backbone == b and m.variant == "base"), None)
        heat = next((m for m in models if m.backbone == b and m.variant == "heatmap"), None)
        if base and heat:
            out.append((base, heat))
    return out


def _preds(closed_rows, engine, condition, mode="normal"):
    rs = sorted([r for r in closed_rows if r["engine"] == engine and r["condition"] == condition and r["mode"] == mode],
                key=lambda r: r["seed"])
    return [np.array(r["pred"]) for r in rs]


def _claims_closed(closed_rows, models, val_labels) -> list[str]:
    pairs = _pairs_by_backbone(models)
    if not pairs or val_labels is None:
        return ["Base vs Heatmap: no backbone with both variants evaluated.", ""]
    L = ["**Paper's claim: Heatmap beats Base under occlusion and brightness, not under noise.** Heatmap - Base macro F1, "
         "+- paired bootstrap s.e. over validation images (1,000 resamples); a difference within 2 s.e. is not called:", "",
         "| backbone | original | occlusion 0.30 | brightness 1.15 | noise 0.10 |", "|---|---|---|---|---|"]
    for base, heat in pairs:
        cells = []
        for c in ("original", "occlusion_0.30", "brightness_1.15", "noise_0.10"):
            cells.append(_delta_cell(val_labels, _preds(closed_rows, base.name, c), _preds(closed_rows, heat.name, c),
                                     "Heatmap better", "Base better"))
        L.append(f"| {base.backbone} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def fold_delta(open_rows: list[dict], a: str, b: str, condition: str) -> tuple[float, float] | None:
    """Per-fold AUC of ``b`` minus ``a`` (averaged over occlusion positions): (mean, s.e. over folds)."""

    def folds(engine):
        rs = [r["fold_auc"] for r in open_rows if r["engine"] == engine and r["condition"] == condition]
        return np.mean(np.array(rs, float), axis=0) if rs else None

    fa, fb = folds(a), folds(b)
    if fa is None or fb is None or len(fa) != len(fb):
        return None
    d = fb - fa
    return float(d.mean()), (float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0)


def _claims_open(open_rows, models) -> list[str]:
    pairs = _pairs_by_backbone(models)
    if not pairs:
        return []
    L = ["Heatmap - Base LFW AUC (paired over the 10 folds: mean per-fold difference +- s.e.):", "",
         "| backbone | original | occlusion 0.30 | brightness 1.15 | noise 0.10 |", "|---|---|---|---|---|"]
    for base, heat in pairs:
        cells = []
        for c in ("original", "occlusion_0.30", "brightness_1.15", "noise_0.10"):
            res = fold_delta(open_rows, base.name, heat.name, c)
            cells.append("--" if res is None else _verdict(res[0], res[1], "Heatmap better", "Base better"))
        L.append(f"| {base.backbone} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def _claims_ablation(closed_rows, abl_models, val_labels) -> list[str]:
    if val_labels is None:
        return []
    L = ["**Paper's claim: Zero / Random / Shuffle degrade the Heatmap model.** Ablated - Normal macro F1 (+- paired "
         "bootstrap s.e.):", "", "| engine | condition | zero | random | shuffle |", "|---|---|---|---|---|"]
    for m in abl_models:
        for c in ("original", "occlusion_0.30", "brightness_1.15", "noise_0.10"):
            normal = _preds(closed_rows, m.name, c)
            cells = []
            for mode in ("zero", "random", "shuffle"):
                cells.append(_delta_cell(val_labels, normal, _preds(closed_rows, m.name, c, mode),
                                         "better than Normal", "degraded"))
            L.append(f"| `{m.name}` | {c} | " + " | ".join(cells) + " |")
    L.append("")
    return L


# ------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------
def run(*, out: Path, celeba: Path | None, lfw: Path | None, engines: list[str] | None = None, limit: int | None = None,
        sweeps: bool = True, lfw_sweeps: bool = False, ablation: bool = True, only_ablation: bool = False,
        max_ids: int | None = None, flip: bool = True, batch: int = 128, threads: int | None = 1,
        command: str = "") -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    t0 = time.time()
    out = Path(out)
    if celeba is None and (lfw is None or only_ablation):
        raise BadArgument("give --celeba (closed set) and/or --lfw (open set)")
    models = resolve_models(engines, flip=flip)
    if not models:
        raise BadArgument("no engine to evaluate")
    _log(f"engines: {', '.join(f'{m.name} [{m.classifier}]' for m in models)}")
    rows = Rows(out / "rows.jsonl")
    timings: dict = {}
    meta: dict = {"command": command, "engines": [m.name for m in models], "flip": flip}
    val_labels = None
    ablation_variants = single_point_variants() if (ablation or only_ablation) else []
    if only_ablation:
        closed_variants = [ORIGINAL]
    else:
        closed_variants = all_variants(sweeps)
    if celeba is not None:
        t = time.time()
        data = load_closed_set(Path(celeba), max_ids=max_ids, progress=_progress_every(200))
        timings["celeba_chips_s"] = round(time.time() - t, 1)
        val_labels = data.val_labels
        meta["closed_set"] = {"identities": len(np.unique(data.val_labels)), "val_faces": len(data.val_keys),
                              "val_listed": data.listed["val"], "val_no_face": data.no_face["val"],
                              "train_faces": len(data.train_keys), "train_no_face": data.no_face["train"]}
        _log(f"closed set: {len(data.train_keys)} train / {len(data.val_keys)} val faces")
        t = time.time()
        meta["closed_set"]["scope"] = run_closed_set(models, data, closed_variants, rows,
                                                     ablation_variants=ablation_variants, batch=batch, timings=timings)
        timings["closed_set_s"] = round(time.time() - t, 1)
    if lfw is not None and not only_ablation:
        t = time.time()
        lv = all_variants(True) if lfw_sweeps else single_point_variants()
        info = run_open_set(models, Path(lfw), lv, rows, limit=limit, batch=batch, timings=timings,
                            progress=_progress_every(500))
        meta["open_set"] = info | {"limit": limit}
        timings["open_set_s"] = round(time.time() - t, 1)
    meta["runtime_s"] = round(time.time() - t0, 1)
    timings["total_s"] = meta["runtime_s"]
    meta["timings"] = {k: round(v, 1) for k, v in timings.items()}
    # rows of this run's scope only (a --limit run and a full run never mix in one table)
    scope_rows = _current_rows(rows, models, meta)
    files = write_outputs(out, scope_rows, models, meta, val_labels)
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    _log(f"done in {meta['runtime_s']:.0f} s; report {files['report']}")
    return {"out": str(out), "files": files, "runtime_s": meta["runtime_s"], "timings": meta["timings"],
            "closed_set": meta.get("closed_set"), "open_set": meta.get("open_set"), "engines": meta["engines"]}


def _current_rows(rows: Rows, models: list[ChipModel], meta: dict) -> list[dict]:
    """The rows of this run's engines (same weights, classifier, flip) and data (same images / pairs)."""

    fps = {m.name: (m.fingerprint, m.classifier, "flip" if m.flip else "plain") for m in models}
    scopes = {(meta.get("closed_set") or {}).get("scope"), (meta.get("open_set") or {}).get("scope")} - {None}
    out = []
    for r in rows.rows.values():
        parts = r["id"].split("|")
        if r["engine"] in fps and tuple(parts[2:5]) == fps[r["engine"]] and parts[-1] in scopes:
            out.append(r)
    return out


def _progress_every(n: int):
    def progress(done: int, total: int, message: str) -> None:
        if done % n == 0 or done == total:
            _log(f"{message} [{done}/{total}]")

    return progress


def run_from_cli(args) -> dict:
    engines = None
    if getattr(args, "engines", None):
        engines = [e for part in args.engines for e in part.split(",") if e]
    if not args.out:
        raise BadArgument("--out DIR is required")
    cmd = "python main.py " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("main.py") else ""
    return run(out=Path(args.out), celeba=Path(args.celeba) if args.celeba else None,
               lfw=Path(args.lfw) if getattr(args, "lfw", None) and not args.no_lfw else None,
               engines=engines, limit=args.limit, sweeps=not args.no_sweeps, lfw_sweeps=args.lfw_sweeps,
               ablation=not args.no_ablation, only_ablation=args.protocol == "ablation", max_ids=args.ids,
               flip=not args.no_flip, batch=args.batch, threads=args.threads, command=cmd or " ".join(sys.argv))
