"""User settings (gallery location, engine, detector, thresholds), stored per user as JSON."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .imaging import DEFAULT_MAX_PIXELS


def config_dir() -> Path:
    override = os.environ.get("FASFINDER_CONFIG_DIR")
    if override:
        return Path(override)
    from platformdirs import user_config_dir

    return Path(user_config_dir("fasfinder", appauthor=False))


def data_dir() -> Path:
    override = os.environ.get("FASFINDER_DATA_DIR")
    if override:
        return Path(override)
    from platformdirs import user_data_dir

    return Path(user_data_dir("fasfinder", appauthor=False))


def cache_dir() -> Path:
    """Caches (evaluation embeddings, converted weights, training data); ``FASFINDER_CACHE_DIR`` overrides."""

    override = os.environ.get("FASFINDER_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("fasfinder", appauthor=False))


def default_gallery_path() -> Path:
    return data_dir() / "gallery.db"


def demo_gallery_path() -> Path:
    """The demo gallery (``--demo``, the first-start demo): its own file, never the real gallery."""

    return data_dir() / "demo.db"


@dataclass
class Settings:
    gallery: str = ""
    engine: str = "dlib-resnet-torch"  # bit-exact PyTorch port of dlib-resnet: batched, explainable
    detector: str = "hog"  # "hog" | "cnn"
    upsample: int | None = None  # None: chosen by image size
    top_k: int = 5
    flip: bool = True  # flip test-time augmentation for embeddings
    liveness: bool = True  # run the FAS model on every face when installed
    liveness_model: str = ""  # "" = the shipped default; a card name of models/ (research models) or "minifasnet"
    refuse_spoof: bool = False  # enrollment refuses faces judged spoof
    max_pixels: int = DEFAULT_MAX_PIXELS
    enroll_all_faces: bool = False  # enroll every face of an image instead of the largest
    open_set_threshold: float | None = None  # None: the engine card's threshold (FPIR 1 % on CelebA, by gallery size)
    history_days: int | None = 365  # recorded queries older than this are deleted (audited); None keeps all
    server: str = ""  # office server, a postgresql:// URL without password ("": standalone gallery)
    server_password_file: str = ""  # file (mode 0600) holding the server password; else $FASFINDER_SERVER_PASSWORD
    server_case: str = ""  # case id given to persons enrolled without one when they are pushed
    trash_days: int | None = 30  # deleted persons/photos stay restorable this long, then are purged (audited)
    video_rate: float = 2.0  # video: frames sampled per second of footage
    video_max_side: int = 1280  # video: frames are downscaled to this long side before detection
    video_frame_timeout_s: float = 30.0  # video: one frame that takes longer to decode stops the file (video_timeout)
    video_timeout_s: float = 3600.0  # video: the longest one file may take to scan

    def __post_init__(self) -> None:
        if not self.gallery:
            self.gallery = str(default_gallery_path())

    @classmethod
    def path(cls) -> Path:
        return config_dir() / "settings.json"

    @classmethod
    def load(cls) -> Settings:
        p = cls.path()
        try:
            raw = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
        except (OSError, json.JSONDecodeError):
            raw = {}
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self) -> None:
        p = self.path()
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        os.replace(tmp, p)

    def to_dict(self) -> dict:
        return asdict(self)
