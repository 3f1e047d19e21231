"""The interface every embedding engine implements."""

from __future__ import annotations

import math
from abc import ABC

import numpy as np

from ..faces import Face


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def combine_views(plain: np.ndarray, mirrored: np.ndarray | None) -> np.ndarray:
    """Flip test-time augmentation: normalised sum of the two views' embeddings."""

    return plain if mirrored is None else l2_normalise(plain + mirrored)


class Engine(ABC):  # noqa: B024 - an interface whose subclasses implement embed_views or embed_faces
    """Embeds faces. Subclasses set ``name`` and ``dim`` and implement :meth:`embed_views`."""

    name: str = "engine"
    dim: int = 0
    #: Name of this engine's model card in ``models/`` (``<card_name>.card.json``).
    card_name: str = ""

    def embed_views(self, rgb: np.ndarray, faces: list[Face], *, mirror: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """L2-normalised embeddings of each face and (if ``mirror``) of its mirror image.

        Returns ``(plain, mirrored)``, each (len(faces), dim) float32; ``mirrored`` is None when
        ``mirror`` is False. Engines batch all views through their network at once.
        """

        raise NotImplementedError(f"engine {self.name} implements neither embed_views nor embed_faces")

    def embed_faces(self, rgb: np.ndarray, faces: list[Face], *, flip: bool = False) -> np.ndarray:
        """(len(faces), dim) float32, each row L2-normalised.

        ``flip``: embedding = L2-normalised sum of the face's and its mirror image's embeddings
        (docs/BENCHMARKS.md section 2).
        """

        plain, mirrored = self.embed_views(rgb, faces, mirror=flip)
        return combine_views(plain, mirrored) if flip else plain

    def embed_faces_many(self, items: list[tuple[np.ndarray, list[Face]]], *, flip: bool = False) -> list[np.ndarray]:
        """:meth:`embed_faces` of several (rgb, faces) images; engines that batch override it."""

        return [self.embed_faces(rgb, faces, flip=flip) for rgb, faces in items]

    def card(self) -> dict:
        from ..modelfiles import load_card

        return load_card(self.card_name) if self.card_name else {"name": self.name}

    def calibration(self) -> dict | None:
        """Platt parameters ``{"a", "b"}``: P(same person) = sigmoid(a * cosine + b)."""

        try:
            return self.card().get("calibration")
        except Exception:
            return None

    def confidence(self, similarity: float | np.ndarray) -> np.ndarray | float:
        cal = self.calibration()
        if not cal:
            return np.full_like(np.asarray(similarity, dtype=np.float64), np.nan) if np.ndim(similarity) else math.nan
        z = cal["a"] * np.asarray(similarity, dtype=np.float64) + cal["b"]
        p = 1.0 / (1.0 + np.exp(-z))
        return float(p) if np.ndim(p) == 0 else p

    def verify(self) -> None:
        """Check this engine's weight files against their sha256 (the card's ``files``); raises
        :class:`~fasfinder.errors.ModelError` / ``ModelIntegrityError``. Engines with other weights override it."""

        from ..modelfiles import card_file

        if not self.card_name:
            return
        card = self.card()
        for entry in card.get("files", []):
            card_file(card, entry["name"])

    def info(self) -> dict:
        try:
            card = self.card()
        except Exception as exc:  # a card problem must not hide the engine from `engines`
            card = {"error": str(exc)}
        return {"name": self.name, "dim": self.dim, "card": card}
