"""dlib's face-recognition ResNet, read from dlib's own ``.dat`` file into PyTorch.

The engine ``dlib-resnet-torch`` computes the same 128-d descriptors as ``dlib-resnet`` (dlib's
C++), but in PyTorch: it batches on the CPU, and it has gradients, so the product's own matcher
can be explained with Grad-CAM++ (:mod:`fasfinder.explain`).

The ``.dat`` file (dlib's ``serialize`` of ``anet_type`` in ``examples/dnn_face_recognition_ex.cpp``)
is read when the engine is first used; nothing has to be converted by the user. Layout facts
used here (checked against the file and against dlib's output, see ``docs/results/explain.md``):

* every layer writes its version, then its inner network, then its own details, so the file opens
  with the versions outermost first and the layer details follow in *forward* order (input layer,
  first convolution, ..., ``fc``, loss);
* tag/skip layers store only a version, so the residual wiring is hard-coded below from the
  network definition;
* integers and scalar floats use dlib's portable variable-length encoding (a header byte holding
  the byte count, bit 7 = negative, then little-endian bytes; a float is an int64 mantissa and an
  int16 exponent); tensors are ``version, num_samples, k, nr, nc`` followed by raw float32 data;
* ``con_4``: params = filters (out, in, kh, kw) then one bias per filter; ``affine_``: gamma then
  beta per channel; ``fc_2`` (no bias): weights stored as (in, out);
* convolutions and pools pad by k//2 at stride 1 and by 0 at stride 2; the down-sampling skip path
  is a 2x2 stride-2 average pool; adding tensors of different sizes keeps the larger size and
  zero-pads the smaller one at the end (channels, bottom, right);
* the input is ``(pixel - channel mean) / 256`` in RGB order, the means stored in the file.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..faces import Face, face_chip
from ..modelfiles import cached_model, dlib_file
from .base import Engine, l2_normalise
from .weights_cache import cached_state_dict, state_dict_digest

ENGINE_NAME = "dlib-resnet-torch"

#: Residual stages in forward order: (name, channels, number of blocks, first block down-samples).
STAGES: tuple[tuple[str, int, int, bool], ...] = (
    ("level4", 32, 3, False),
    ("level3", 64, 4, True),
    ("level2", 128, 3, True),
    ("level1", 256, 3, True),
    ("level0", 256, 1, True),
)

#: Default Grad-CAM target layer (see fasfinder/explain.py for why).
DEFAULT_TARGET_LAYER = "level2"


# --------------------------------------------------------------------------------------------
# The .dat reader
# --------------------------------------------------------------------------------------------
@dataclass
class ConvSpec:
    weight: np.ndarray  # (out, in, kh, kw) float32
    bias: np.ndarray  # (out,)
    stride: int
    padding: int


@dataclass
class DlibResNetWeights:
    means: tuple[float, float, float]  # RGB channel means of input_rgb_image_sized
    input_size: int
    convs: list[ConvSpec]
    affines: list[tuple[np.ndarray, np.ndarray]]  # (gamma, beta) per channel
    fc: np.ndarray  # (out=128, in=256) float32, ready for F.linear


class _Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.b = data
        self.pos = pos

    def int(self) -> int:
        head = self.b[self.pos]
        n = head & 0x0F
        if n == 0 or n > 8 or head & 0x70:
            raise ModelError(f"dlib .dat: bad integer header {head:#x} at byte {self.pos}")
        value = int.from_bytes(self.b[self.pos + 1 : self.pos + 1 + n], "little")
        self.pos += 1 + n
        return -value if head & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        if exponent >= 32000:  # dlib's markers for inf / -inf / nan
            raise ModelError("dlib .dat: non-finite scalar")
        return float(np.ldexp(float(mantissa), exponent))

    def string(self) -> str:
        n = self.int()
        s = self.b[self.pos : self.pos + n].decode("ascii")
        self.pos += n
        return s

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise ModelError(f"dlib .dat: unsupported tensor version {version}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        arr = np.frombuffer(self.b, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos += 4 * count
        return arr.reshape(shape)


def _find_all(data: bytes, token: bytes) -> list[int]:
    out, start = [], 0
    while True:
        i = data.find(token, start)
        if i < 0:
            return out
        out.append(i)
        start = i + 1


def read_dlib_resnet(path: str | Path) -> DlibResNetWeights:
    """Parse dlib's ``dlib_face_recognition_resnet_model_v1.dat`` into numpy arrays."""

    data = Path(path).read_bytes()
    if b"loss_metric" not in data[:64]:
        raise ModelError(f"{path} is not a dlib metric-learning network (no loss_metric header)")

    # Serialized strings are "<int length><bytes>"; find each layer's details by its name.
    def token(name: str) -> bytes:
        return bytes([0x01, len(name)]) + name.encode("ascii")

    events: list[tuple[int, str]] = []
    for name in ("input_rgb_image_sized", "con_4", "affine_", "fc_2"):
        events += [(i, name) for i in _find_all(data, token(name))]
    events.sort()

    means = None
    size = 0
    convs: list[ConvSpec] = []
    affines: list[tuple[np.ndarray, np.ndarray]] = []
    fc = None
    for pos, name in events:
        r = _Reader(data, pos)
        r.string()
        if name == "input_rgb_image_sized":
            means = (r.float(), r.float(), r.float())
            rows, cols = r.int(), r.int()
            if rows != cols:
                raise ModelError("dlib .dat: non-square input")
            size = rows
        elif name == "con_4":
            params = r.tensor().ravel()
            n_filters, kh, kw, sy, sx, py, px = (r.int() for _ in range(7))
            n_w = params.size - n_filters
            if n_w % (n_filters * kh * kw) or kh != kw or sy != sx or py != px:
                raise ModelError("dlib .dat: unexpected con_4 layout")
            c_in = n_w // (n_filters * kh * kw)
            convs.append(
                ConvSpec(
                    weight=params[:n_w].reshape(n_filters, c_in, kh, kw).copy(),
                    bias=params[n_w:].copy(),
                    stride=sy,
                    padding=py,
                )
            )
        elif name == "affine_":
            params = r.tensor().ravel()
            c = params.size // 2
            affines.append((params[:c].copy(), params[c:].copy()))
        elif name == "fc_2":
            n_out, n_in = r.int(), r.int()
            params = r.tensor()
            w = params.reshape(-1, n_out)
            if w.shape[0] != n_in:  # a bias row would make this n_in + 1
                raise ModelError("dlib .dat: fc_2 with bias is not supported")
            fc = np.ascontiguousarray(w.T)
    n_blocks = sum(s[2] for s in STAGES)
    if means is None or fc is None or len(convs) != 1 + 2 * n_blocks or len(affines) != len(convs):
        raise ModelError(
            f"dlib .dat: unexpected structure ({len(convs)} convolutions, {len(affines)} affine layers)"
        )
    return DlibResNetWeights(means=means, input_size=size, convs=convs, affines=affines, fc=fc)


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------
def _torch():
    import torch

    return torch


def _build_module_classes():
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    class Affine(nn.Module):
        """dlib's ``affine`` layer (batch norm frozen for inference): y = gamma * x + beta."""

        def __init__(self, channels: int):
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(channels))
            self.beta = nn.Parameter(torch.zeros(channels))

        def forward(self, x):
            return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)

    class ConvAffine(nn.Module):
        """con -> affine, or one convolution with the affine folded in (``fuse``)."""

        def __init__(self, c_in: int, c_out: int, k: int, stride: int):
            super().__init__()
            pad = k // 2 if stride == 1 else 0
            self.conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, bias=True)
            self.affine = Affine(c_out)
            self.fused = False

        def forward(self, x):
            x = self.conv(x)
            return x if self.fused else self.affine(x)

        @torch.no_grad()
        def fuse(self):
            g, b = self.affine.gamma, self.affine.beta
            self.conv.weight.mul_(g.view(-1, 1, 1, 1))
            self.conv.bias.mul_(g).add_(b)
            self.fused = True

    def add_zero_padded(a, b):
        """dlib's add_prev: the result has the larger size; the smaller input is zero-padded."""

        if a.shape == b.shape:
            return a + b
        c = max(a.shape[1], b.shape[1])
        h = max(a.shape[2], b.shape[2])
        w = max(a.shape[3], b.shape[3])

        def pad(t):
            return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

        return pad(a) + pad(b)

    class ResBlock(nn.Module):
        """relu(block(x) + skip(x)); block = con,affine,relu,con,affine; skip = x or avg_pool 2x2/2."""

        def __init__(self, c_in: int, c_out: int, down: bool):
            super().__init__()
            self.down = down
            self.ca1 = ConvAffine(c_in, c_out, 3, 2 if down else 1)
            self.ca2 = ConvAffine(c_out, c_out, 3, 1)

        def forward(self, x):
            y = self.ca2(F.relu(self.ca1(x)))
            skip = F.avg_pool2d(x, 2, 2) if self.down else x
            return F.relu(add_zero_padded(y, skip))

    class DlibResNet(nn.Module):
        """dlib's ResNet-29 metric network (``anet_type``): 150x150 RGB chip -> 128-d descriptor."""

        def __init__(self, means=(122.782, 117.001, 104.298)):
            super().__init__()
            self.register_buffer("means", torch.tensor(means, dtype=torch.float32).view(1, 3, 1, 1))
            self.stem = ConvAffine(3, 32, 7, 2)
            c = 32
            for name, ch, n, down in STAGES:
                blocks = [ResBlock(c, ch, down)] + [ResBlock(ch, ch, False) for _ in range(n - 1)]
                setattr(self, name, nn.Sequential(*blocks))
                c = ch
            self.fc = nn.Linear(256, 128, bias=False)

        def preprocess(self, chips):
            """uint8 chips (N, 150, 150, 3) RGB (numpy or tensor) -> normalised NCHW float32."""

            t = torch.as_tensor(np.ascontiguousarray(chips)) if isinstance(chips, np.ndarray) else chips
            if t.ndim == 3:
                t = t.unsqueeze(0)
            t = t.permute(0, 3, 1, 2).to(torch.float32)
            return (t - self.means) / 256.0

        def features(self, x):
            x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
            for name, *_ in STAGES:
                x = getattr(self, name)(x)
            return x

        def forward(self, x):
            return self.fc(self.features(x).mean(dim=(2, 3)))

        def fuse(self):
            """Fold every affine layer into its convolution (inference speed; in place)."""

            for m in self.modules():
                if isinstance(m, ConvAffine) and not m.fused:
                    m.fuse()
            return self

    return DlibResNet, add_zero_padded


_CLASSES = None


def _classes():
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _build_module_classes()
    return _CLASSES


def DlibResNet(*args, **kwargs):
    """A fresh (untrained) :class:`DlibResNet` module."""

    return _classes()[0](*args, **kwargs)


def add_zero_padded(a, b):
    return _classes()[1](a, b)


def state_dict_from_weights(w: DlibResNetWeights) -> dict:
    torch = _torch()
    sd = {"means": torch.tensor(w.means, dtype=torch.float32).view(1, 3, 1, 1)}
    names = ["stem"]
    for stage, _, n, _ in STAGES:
        for i in range(n):
            names += [f"{stage}.{i}.ca1", f"{stage}.{i}.ca2"]
    for name, conv, (gamma, beta) in zip(names, w.convs, w.affines):
        sd[f"{name}.conv.weight"] = torch.from_numpy(conv.weight)
        sd[f"{name}.conv.bias"] = torch.from_numpy(conv.bias)
        sd[f"{name}.affine.gamma"] = torch.from_numpy(gamma)
        sd[f"{name}.affine.beta"] = torch.from_numpy(beta)
    sd["fc.weight"] = torch.from_numpy(w.fc)
    return sd


#: :func:`fasfinder.modelfiles.cached_model` key kind of the converted state dicts (one per .dat path).
STATE_DICT_KEY = "dlib-resnet-torch state dict"


def _cached_state_dict(path: Path) -> dict:
    """State dict of the .dat at ``path``, from the user cache dir when its tensors pass their
    integrity check (:func:`fasfinder.engines.weights_cache.cached_state_dict`), else converted again."""

    return cached_state_dict(path, ENGINE_NAME, lambda p: state_dict_from_weights(read_dlib_resnet(p)))


def load_model(path: str | Path | None = None, *, fused: bool = False, cache: bool = True):
    """The trained network (eval mode, float32). ``path`` defaults to the installed, verified .dat.

    ``fused=True`` folds the affine layers into the convolutions (faster; for inference only).
    Every call returns a new module (callers may modify it).
    """

    path = Path(path) if path is not None else dlib_file("resnet")
    sd = cached_model((STATE_DICT_KEY, str(path), cache),
                      lambda: _cached_state_dict(path) if cache else state_dict_from_weights(read_dlib_resnet(path)))
    model = DlibResNet()
    model.load_state_dict({k: v.clone() for k, v in sd.items()})
    model.eval()
    if fused:
        model.fuse()
    return model


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------
class DlibTorchEngine(Engine):
    """dlib's ResNet descriptor computed by the PyTorch port (batched)."""

    name = ENGINE_NAME
    dim = 128
    card_name = ENGINE_NAME
    batch_size = 32

    def __init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()

    def verify(self) -> None:
        """The .dat against its sha256 and the converted tensors against theirs (rebuilt if they fail)."""

        _cached_state_dict(dlib_file("resnet"))

    def model(self):
        if self._model is None:
            torch = _torch()
            m = load_model(fused=True)
            self._model = m.to(memory_format=torch.channels_last)
        return self._model

    def descriptors_from_chips(self, chips: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """Raw (unnormalised) descriptors of 150x150 RGB uint8 chips, like dlib's."""

        if len(chips) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        torch = _torch()
        stack = np.stack([np.asarray(c, dtype=np.uint8) for c in chips])
        out = []
        with self._lock:
            model = self.model()
            with torch.inference_mode():
                for i in range(0, len(stack), self.batch_size):
                    x = model.preprocess(stack[i : i + self.batch_size]).contiguous(memory_format=torch.channels_last)
                    out.append(model(x).numpy())
        return np.concatenate(out).astype(np.float32)

    def embed_views(self, rgb: np.ndarray, faces: list[Face], *, mirror: bool = True):
        """(plain, mirrored): L2-normalised embeddings of each face and of its mirror image
        (``mirrored`` is None unless ``mirror``); all views go through the network in one batch."""

        chips = [face_chip(rgb, f) for f in faces]
        n = len(chips)
        if not n:
            empty = np.zeros((0, self.dim), dtype=np.float32)
            return empty, (empty if mirror else None)
        views = chips + ([np.ascontiguousarray(c[:, ::-1]) for c in chips] if mirror else [])
        emb = l2_normalise(self.descriptors_from_chips(views))
        return emb[:n], (emb[n:] if mirror else None)

    def embed_faces(self, rgb: np.ndarray, faces: list[Face], *, flip: bool = False) -> np.ndarray:
        """(len(faces), 128) L2-normalised; ``flip``: normalised sum of both views' embeddings."""

        plain, mirrored = self.embed_views(rgb, faces, mirror=flip)
        return l2_normalise(plain + mirrored) if flip else plain

    def embed_faces_many(self, items: list[tuple[np.ndarray, list[Face]]], *, flip: bool = False) -> list[np.ndarray]:
        """:meth:`embed_faces` of several images with every chip (and mirror) in shared batches of
        :attr:`batch_size`: about half the time per face of one small batch per image."""

        chips = [face_chip(rgb, f) for rgb, faces in items for f in faces]
        n = len(chips)
        if not n:
            return [np.zeros((0, self.dim), dtype=np.float32) for _ in items]
        views = chips + ([np.ascontiguousarray(c[:, ::-1]) for c in chips] if flip else [])
        emb = l2_normalise(self.descriptors_from_chips(views))
        emb = l2_normalise(emb[:n] + emb[n:]) if flip else emb
        out, i = [], 0
        for _, faces in items:
            out.append(emb[i : i + len(faces)])
            i += len(faces)
        return out


def register_engines(register) -> None:
    register(
        ENGINE_NAME,
        DlibTorchEngine,
        "dlib's ResNet-29 face descriptor (128-d) ported to PyTorch from dlib's .dat (batched, explainable)",
    )


__all__ = [
    "DlibTorchEngine",
    "DlibResNet",
    "DlibResNetWeights",
    "read_dlib_resnet",
    "load_model",
    "register_engines",
    "STAGES",
    "state_dict_digest",
    "DEFAULT_TARGET_LAYER",
    "ENGINE_NAME",
]
