"""A liveness verdict: label and score (no torch, no model)."""

from __future__ import annotations

from dataclasses import dataclass

REAL, SPOOF, UNCERTAIN = "real", "spoof", "uncertain"


@dataclass(frozen=True)
class Liveness:
    label: str  # "real" | "spoof" | "uncertain" (three-way models only)
    score: float  # probability of a live face
    model: str  # model card name

    def to_dict(self) -> dict:
        # 6 decimals: the installer's smoke test compares these scores with the development build's to 1e-4
        return {"label": self.label, "score": round(float(self.score), 6)}
