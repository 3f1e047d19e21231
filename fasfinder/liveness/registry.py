"""Liveness models by name: the shipped default, the reference teacher, the research cards."""

from __future__ import annotations

from ..modelfiles import cached_model, load_card
from .model import LivenessModel

#: Name of the shipped default card: the round-3 student distilled from the MiniFASNet pair (three-way
#: verdict; docs/results/liveness.md). The earlier models (fas-distilled-frame, fas-student, fas-nuaa-wide, ...) stay selectable.
DEFAULT_MODEL = "fas-distilled"


def load_liveness_model(name: str = DEFAULT_MODEL):
    """A liveness model by name (loaded once per process; thread-safe): ``minifasnet`` (the
    third-party reference pair, read from outside the repository), a card whose architecture is
    ``StudentPair`` (:class:`.student.StudentPair`), or any other card (:class:`LivenessModel`)."""

    if name == "minifasnet":
        from .minifasnet import reference_model

        return reference_model()

    def load():
        card = load_card(name)
        if card.get("architecture", {}).get("type") == "StudentPair":
            from .student import StudentPair

            return StudentPair(card)
        return LivenessModel(card)

    return cached_model(("liveness", name), load)


def default_liveness_model():
    """The shipped liveness model (loaded once per process; thread-safe).

    Raises :class:`~fasfinder.errors.ModelError` (``ModelIntegrityError`` for a tampered file)
    when the card or weights are missing or do not match; a failed load is tried again next time.
    """

    return load_liveness_model(DEFAULT_MODEL)


def predict_many(model, items: list) -> list[list]:
    """Verdicts of several (rgb, faces) images: batched when the model can (``predict_many``), else image by image."""

    batched = getattr(model, "predict_many", None)
    if batched is not None:
        return batched(items)
    return [model.predict(rgb, faces) for rgb, faces in items]


def start_predict(model, rgb, faces):
    """Start ``model.predict(rgb, faces)`` on the compute threads (:mod:`fasfinder.compute`) and return at
    once; ``.result()`` -> the verdicts, ``.span_ms`` -> the liveness check's own wall time. Models that
    split their work (:meth:`LivenessModel.start_predict`) do so; any other runs whole on one thread."""

    start = getattr(model, "start_predict", None)
    if start is not None:
        return start(rgb, faces)
    from ..compute import compute_pool

    return compute_pool().start(lambda _part: model.predict(rgb, faces), [None]).then(lambda v: v[0])
