"""Synthetic test videos made from face photos, with the ground truth of who appears when. No real footage.

:func:`write_video` composes scenes (cut to cut, 3-12 s each) on seeded backgrounds (colour
gradients with blocks): in each scene 0-3 people, each a face photo (e.g. LFW deepfunneled 250 x 250)
pasted through a feathered ellipse, moving in a straight line and scaling over the scene; some are
partly covered by a bar that slides over the face for a while. It is written with OpenCV (mp4v,
``.mp4``/``.mov``/``.mkv``; MJPG ``.avi``) and the ground truth goes beside it as JSON: one
appearance per person and scene (identity, enrolled or not, start/end, the pasted rectangle at
start and end, linearly interpolated between).

:func:`score_tracks` compares ``search_video``'s track list with that ground truth: a track belongs
to the appearance whose pasted rectangle holds its best face's centre at its best time; it is
identified correctly when an enrolled person's track names that person with an in-gallery decision,
or an unknown person's track has a not-in-gallery decision.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class Appearance:
    identity: str
    enrolled: bool
    image: str  # the face photo used
    start_s: float
    end_s: float
    rect0: tuple[int, int, int, int]  # x0, y0, x1, y1 of the pasted photo at start_s
    rect1: tuple[int, int, int, int]  # ... at end_s
    occluded: bool = False

    def rect_at(self, t: float) -> tuple[float, float, float, float]:
        a = 0.0 if self.end_s <= self.start_s else min(1.0, max(0.0, (t - self.start_s) / (self.end_s - self.start_s)))
        return tuple((1 - a) * u + a * v for u, v in zip(self.rect0, self.rect1))


def _background(rng, h: int, w: int) -> np.ndarray:
    c0, c1 = rng.integers(30, 220, 3), rng.integers(30, 220, 3)
    ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    bg = (c0 * (1 - ramp) + c1 * ramp).astype(np.float32) * np.ones((h, 1, 1), np.float32)
    for _ in range(int(rng.integers(3, 8))):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        bw, bh = int(rng.integers(w // 12, w // 3)), int(rng.integers(h // 12, h // 3))
        bg[y:y + bh, x:x + bw] = rng.integers(20, 235, 3)
    return np.clip(bg, 0, 255).astype(np.uint8)


def _mask(side: int) -> np.ndarray:
    import cv2

    m = np.zeros((side, side), np.float32)
    cv2.ellipse(m, (side // 2, side // 2), (int(side * 0.40), int(side * 0.47)), 0, 0, 360, 1.0, -1)
    k = max(3, side // 10) | 1
    return cv2.GaussianBlur(m, (k, k), 0)[..., None]


def _paste(frame: np.ndarray, photo: np.ndarray, rect) -> None:
    import cv2

    x0, y0 = int(round(rect[0])), int(round(rect[1]))
    side = int(round(rect[2] - rect[0]))
    x1, y1 = x0 + side, y0 + side
    if side < 8:
        return
    img = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA if side < photo.shape[0] else cv2.INTER_LINEAR)
    m = _mask(side)
    h, w = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sub = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    pi = img[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0].astype(np.float32)
    pm = m[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    frame[fy0:fy1, fx0:fx1] = (sub * (1 - pm) + pi * pm).astype(np.uint8)


def plan_scenes(people: dict[str, list[str]], enrolled: set[str], duration_s: float, *, size=(1280, 720),
                seed: int = 0) -> list[dict]:
    """Scenes ``[{"start_s", "end_s", "seed", "appearances": [Appearance]}]`` covering ``duration_s``."""

    rng = np.random.default_rng(seed)
    w, h = size
    names = sorted(people)
    scenes, t = [], 0.0
    while t < duration_s - 1e-6:
        d = float(min(duration_s - t, rng.uniform(3.0, 12.0)))
        n = int(rng.choice([0, 1, 1, 2, 2, 3], 1)[0]) if d >= 2 else 0
        apps = []
        slots = rng.permutation(3)[:n]  # three horizontal lanes so people do not overlap
        for lane, name in zip(slots, rng.choice(names, n, replace=False)):
            photo = str(rng.choice(people[name]))
            s0, s1 = (int(rng.uniform(0.30, 0.55) * h) for _ in range(2))
            lane_w = w // 3
            (px0, py0), (px1, py1) = ((int(lane * lane_w + rng.uniform(0, max(1, lane_w - s))), int(rng.uniform(0, h - s)))
                                      for s in (s0, s1))
            a0 = float(t + rng.uniform(0, min(1.0, d / 4)))
            a1 = float(t + d - rng.uniform(0, min(1.0, d / 4)))
            apps.append(Appearance(identity=name, enrolled=name in enrolled, image=photo, start_s=round(a0, 3),
                                   end_s=round(a1, 3), rect0=(px0, py0, px0 + s0, py0 + s0),
                                   rect1=(px1, py1, px1 + s1, py1 + s1), occluded=bool(rng.random() < 0.3)))
        scenes.append({"start_s": round(t, 3), "end_s": round(t + d, 3), "seed": int(rng.integers(1 << 30)),
                       "appearances": apps})
        t += d
    return scenes


def write_video(out: str | Path, scenes: list[dict], *, fps: float = 25.0, size=(1280, 720)) -> dict:
    """Render ``scenes`` into ``out`` and the ground truth into ``out`` + ``.truth.json``; returns the truth."""

    import cv2

    out = Path(out)
    w, h = size
    fourcc = "MJPG" if out.suffix.lower() == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(out), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {out}")
    photos: dict[str, np.ndarray] = {}
    total = int(round(scenes[-1]["end_s"] * fps)) if scenes else 0
    try:
        scene_i, bg = -1, None
        for i in range(total):
            t = i / fps
            while scene_i + 1 < len(scenes) and t >= scenes[scene_i + 1]["start_s"] - 1e-9:
                scene_i += 1
                bg = _background(np.random.default_rng(scenes[scene_i]["seed"]), h, w)
            frame = bg.copy()
            for a in scenes[scene_i]["appearances"]:
                if not a.start_s <= t <= a.end_s:
                    continue
                if a.image not in photos:
                    photos[a.image] = cv2.imread(a.image)
                rect = a.rect_at(t)
                _paste(frame, photos[a.image], rect)
                if a.occluded:  # a bar sliding down over the face during the middle third of the appearance
                    third = (a.end_s - a.start_s) / 3
                    if a.start_s + third <= t <= a.end_s - third:
                        x0, y0, x1, y1 = (int(v) for v in rect)
                        bar_y = int(y0 + (y1 - y0) * (0.25 + 0.5 * (t - a.start_s - third) / max(third, 1e-6)))
                        cv2.rectangle(frame, (x0, bar_y), (x1, bar_y + (y1 - y0) // 5), (40, 40, 40), -1)
            writer.write(frame)
    finally:
        writer.release()
    truth = {"video": str(out), "fps": fps, "size": [w, h], "duration_s": total / fps, "synthetic": True,
             "appearances": [dict(asdict(a), scene=k) for k, s in enumerate(scenes) for a in s["appearances"]]}
    Path(str(out) + ".truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def load_truth(path: str | Path) -> list[Appearance]:
    data = json.loads(Path(path).read_text())
    keep = {f for f in Appearance.__dataclass_fields__}
    return [Appearance(**{k: (tuple(v) if k.startswith("rect") else v) for k, v in a.items() if k in keep})
            for a in data["appearances"]]


def _owner(track: dict, truth: list[Appearance]) -> int | None:
    x0, y0, x1, y1 = track["box"]
    cx, cy, t = (x0 + x1) / 2, (y0 + y1) / 2, track["best_s"]
    for i, a in enumerate(truth):
        if a.start_s - 0.1 <= t <= a.end_s + 0.1:
            r = a.rect_at(t)
            if r[0] <= cx <= r[2] and r[1] <= cy <= r[3]:
                return i
    return None


def score_tracks(tracks: list[dict], truth: list[Appearance]) -> dict:
    """Per-track identification accuracy and the share of appearances found (see the module text)."""

    correct, owned, stray = 0, 0, 0
    found: dict[int, bool] = {}
    for tr in tracks:
        i = _owner(tr, truth)
        if i is None:
            stray += 1
            continue
        owned += 1
        a = truth[i]
        inside = bool(tr["decision"] and tr["decision"]["in_gallery"])
        top = tr["matches"][0]["label"] if tr["matches"] else None
        ok = (inside and top == a.identity) if a.enrolled else not inside
        correct += ok
        found[i] = found.get(i, False) or ok
    n = len(truth)
    enrolled = [i for i, a in enumerate(truth) if a.enrolled]
    return {"tracks": len(tracks), "tracks_on_a_person": owned, "tracks_on_nothing": stray,
            "track_accuracy": correct / owned if owned else None,
            "appearances": n, "appearances_with_a_track": len(found) / n if n else None,
            "appearances_identified": sum(found.values()) / n if n else None,
            "enrolled_appearances_identified": (sum(found.get(i, False) for i in enrolled) / len(enrolled)
                                                if enrolled else None),
            "tracks_per_appearance": owned / len(found) if found else None}


def pick_people(folder: str | Path, enrolled: int, unknown: int, *, seed: int = 0) -> tuple[dict, dict]:
    """From a folder of identity folders (LFW layout): ``(video_people, gallery_photos)``.

    ``enrolled`` identities with at least 3 photos: the first goes to the gallery, the others into the
    video (so the video never shows an enrolled photo); ``unknown`` more identities, never enrolled.
    """

    rng = np.random.default_rng(seed)
    dirs = sorted(d for d in Path(folder).iterdir() if d.is_dir())
    rich = [d for d in dirs if len(list(d.glob("*.jpg"))) >= 3]
    chosen = [rich[i] for i in rng.permutation(len(rich))[:enrolled + unknown]]
    video, gallery = {}, {}
    for k, d in enumerate(chosen):
        files = sorted(str(p) for p in d.glob("*.jpg"))
        if k < enrolled:
            gallery[d.name] = files[:1]
            video[d.name] = files[1:6]
        else:
            video[d.name] = files[:5]
    return video, gallery
