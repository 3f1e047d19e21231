"""Face anti-spoofing (liveness) on a wide face crop, with Grad-CAM++.

The model sees a *wide* square crop around the detected face box (``crop_scale`` times the box,
zero-padded where it leaves the image), resized to ``size`` x ``size``. The wide crop takes in
the edge of a printed photo and the hand holding it, which is what separates NUAA's print
attacks best (measured; see docs/results/fas.md). Everything the input pipeline needs
(architecture, crop, window, threshold, optional region mask) is read from the model card, so the
training scripts, the evaluation and the app share one definition.

Architectures (the card's ``architecture.type``, classes of :mod:`.networks`):

* ``FasNetEnsemble`` (card ``fas-nuaa-wide``, the default): small CNNs trained from scratch on NUAA
  plus synthetic print attacks (:mod:`fasfinder.training.fas_synth`, :mod:`fasfinder.training.fas_wide`),
  all reading one stored crop of 4.0x the face box at 144 px; each member looks at its centred
  ``window`` of it (0.675 = 2.7x the box, or 1.0 = 4.0x) resized to ``net_size`` through
  :func:`window_resample` (the same resampling as in training). Score = the members' mean P(real);
  Grad-CAM++ = the mean of the members' maps, each placed in its window.
* ``FasNet``: one such CNN (cards ``fas-nuaa-cnn``, the previous default, trained on NUAA alone).
* ``DlibStatsFas`` (card ``fas-nuaa-dlib``; best on session-held-out validation in its round, but
  worse on the NUAA test subset, so NOT the default): the FROZEN convolutional trunk of dlib's
  face-recognition ResNet (:mod:`fasfinder.engines.dlib_torch`, weights read from dlib's own
  sha256-checked .dat), run on the wide crop; the spatial standard deviation of every channel of
  each stage is pooled, standardised, and a logistic-regression head gives the liveness logit.

Modules: :mod:`.geometry` (crop and window geometry, numpy/OpenCV), :mod:`.networks` (the three
networks, torch), :mod:`.model` (:class:`LivenessModel`: card -> network, predict, Grad-CAM++ and
Area Importance). Importing this package does not import torch; the network names load
:mod:`.networks` when first used.

Public API::

    model = default_liveness_model()          # cached, thread-safe, sha256-checked
    verdicts = model.predict(rgb, faces)      # list[Liveness]
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
from .model import (
    DEFAULT_MODEL,
    REAL,
    SPOOF,
    Liveness,
    LivenessModel,
    default_liveness_model,
)

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
    "DEFAULT_MODEL",
    "REAL",
    "SPOOF",
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
