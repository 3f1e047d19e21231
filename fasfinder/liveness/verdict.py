"""A liveness verdict: label and score (no torch, no model)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FasFinderError

REAL, SPOOF, UNCERTAIN = "real", "spoof", "uncertain"


@dataclass(frozen=True)
class Liveness:
    label: str  # "real" | "spoof" | "uncertain" (three-way models only)
    score: float  # probability of a live face
    model: str  # model card name

    def to_dict(self) -> dict:
        # 6 decimals: the installer's smoke test compares these scores with the development build's to 1e-4
        return {"label": self.label, "score": round(float(self.score), 6)}


def judge_liveness(where, verdicts, refuse_spoof: bool) -> tuple[list[dict], dict | None, str | None]:
    """The enrollment policy on one photo's liveness verdicts: (verdicts as dicts, the ``spoof_rejected`` error
    when spoofs are refused and a face is one, a review note when a face is uncertain)."""

    live = [v.to_dict() for v in verdicts]
    if refuse_spoof and any(v.label == "spoof" for v in verdicts):
        return live, FasFinderError(f"{where}: the face looks like a photo of a photo or screen (liveness "
                                    f"{verdicts[0].score:.2f}); enrollment of spoofed photos is switched off",
                                    code="spoof_rejected").to_dict(), None
    unsure = [i for i, v in enumerate(verdicts) if v.label == "uncertain"]
    if not unsure:
        return live, None, None
    return live, None, (f"liveness uncertain for face {', '.join(str(i + 1) for i in unsure)} "
                        f"(score {verdicts[unsure[0]].score:.2f}): check that it is not a photo of a photo or screen")
