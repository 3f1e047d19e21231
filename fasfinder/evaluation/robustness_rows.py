"""Protocol 4 results: resumable rows (``<out>/rows.jsonl``), their aggregation over occlusion
positions, and the CSV / JSON tables written from them.

Every finished (engine, condition, mode) row is appended with the weights' sha256, so a retrained
model is not mixed up with an old one; a table only holds the rows of the current run's scope.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .. import perturb
from .chip_models import ChipModel
from .robustness_conditions import Variant


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


def row_base(model: ChipModel, v: Variant, mode: str) -> dict:
    return {"engine": model.name, "backbone": model.backbone, "variant": model.variant, "kind": v.kind,
            "severity": v.severity, "seed": v.seed, "condition": v.condition, "mode": mode,
            "fingerprint": model.fingerprint}


def current_rows(rows: Rows, models: list[ChipModel], meta: dict) -> list[dict]:
    """The rows of this run's engines (same weights, classifier, flip) and data (same images / pairs)."""

    fps = {m.name: (m.fingerprint, m.classifier, "flip" if m.flip else "plain") for m in models}
    scopes = {(meta.get("closed_set") or {}).get("scope"), (meta.get("open_set") or {}).get("scope")} - {None}
    out = []
    for r in rows.rows.values():
        parts = r["id"].split("|")
        if r["engine"] in fps and tuple(parts[2:5]) == fps[r["engine"]] and parts[-1] in scopes:
            out.append(r)
    return out


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
    for rs in groups.values():
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


def write_tables(out: Path, rows: list[dict], closed: list[dict], opened: list[dict], models: list[ChipModel]) -> dict:
    """Table 1, the sweeps, the ablation (closed set) and the open set as ``<name>.csv`` + ``<name>.json``, and the
    raw rows (without predictions) as ``rows.json``. ``closed`` / ``opened``: :func:`aggregate`'s rows. Returns the
    written paths by table name."""

    out = Path(out)
    names = [m.name for m in models]
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
    return files
