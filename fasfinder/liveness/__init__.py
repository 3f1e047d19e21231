"""Face anti-spoofing (liveness): the shipped default, the distilled student, the reference teacher.

* ``fas-distilled`` (the DEFAULT; :mod:`.student`): two small CNNs distilled from the MiniFASNet pair
  (:mod:`fasfinder.training.fas_distill`), reading the teacher's two crops (:mod:`.croppair`: 2.7x
  and 4.0x the face box, 80x80); three-way verdict ``real`` / ``uncertain`` / ``spoof`` by a band
  chosen on training data; faces too small or without context are never ``spoof``.
  ``fas-student`` is the same architecture from the previous round (selectable research model).
* ``minifasnet`` (:mod:`.minifasnet`): our definitions of the third-party MiniFASNet pair, weights
  read from ``../shared/models/minifasnet`` or ``FASFINDER_MINIFASNET_DIR`` (never shipped): the
  reference model and the student's teacher.
* models of the earlier rounds (:class:`LivenessModel`, :mod:`.networks`): ``fas-nuaa-wide`` (the
  default before ``fas-distilled``), ``fas-nuaa-cnn``, ``fas-nuaa-dlib`` ...: a wide zero-padded crop of :mod:`.geometry`.

Every model is selectable by name (setting ``liveness_model``, ``eval fas --model``).

Importing this package does not import torch; the network names load :mod:`.networks` when first used.

Public API::

    model = default_liveness_model()          # cached, thread-safe, sha256-checked
    model = load_liveness_model("minifasnet") # any model by name
    verdicts = model.predict(rgb, faces)      # list[Liveness]; label real | uncertain | spoof
    heatmap, importance = model.explain(rgb, face)   # HxW float32 in [0, 1], {region: value}
"""

from __future__ import annotations

from ..regions import REGION_NAMES
from .geometry import (
    DEFAULT_CROP_SCALE,
    DEFAULT_SIZE,
    center_box,
    crop_geometry,
    crop_matrix,
    face_crop,
    model_input,
    paste_window,
    to_tensor,
    transform_points,
    window_box,
    window_resample,
)
from .model import LivenessModel
from .registry import DEFAULT_MODEL, default_liveness_model, load_liveness_model, predict_many, start_predict
from .verdict import REAL, SPOOF, UNCERTAIN, Liveness

#: Names served from :mod:`.networks` on first use (it imports torch).
_NETWORK_NAMES = ("DEFAULT_WIDTHS", "DLIB_CHANNELS", "DLIB_STAGES", "DlibStatsFas", "FasNet", "FasNetEnsemble",
                  "build_dlib_fas", "build_ensemble", "build_network")


def __getattr__(name: str):
    if name in _NETWORK_NAMES:
        from . import networks

        return getattr(networks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Liveness",
    "LivenessModel",
    "default_liveness_model",
    "load_liveness_model",
    "predict_many",
    "start_predict",
    "DEFAULT_MODEL",
    "REAL",
    "SPOOF",
    "UNCERTAIN",
    "REGION_NAMES",
    "DEFAULT_CROP_SCALE",
    "DEFAULT_SIZE",
    "center_box",
    "crop_geometry",
    "crop_matrix",
    "face_crop",
    "model_input",
    "paste_window",
    "to_tensor",
    "transform_points",
    "window_box",
    "window_resample",
    # served by __getattr__ from .networks
    "DEFAULT_WIDTHS",
    "DLIB_CHANNELS",
    "DLIB_STAGES",
    "DlibStatsFas",
    "FasNet",
    "FasNetEnsemble",
    "build_dlib_fas",
    "build_ensemble",
    "build_network",
]
