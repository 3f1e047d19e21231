"""The video commands of the command line (issue 18): ``search clip.mp4``, ``enroll-video``, ``find``.

Registered by :mod:`fasfinder.cli` (which passes its option helper, service factory and printer, so
this module imports nothing of it); ``search`` hands a video file (by suffix) to :func:`search_video`.
"""

from __future__ import annotations

import json
import sys

from .video.decode import VIDEO_SUFFIXES, is_video

__all__ = ["VIDEO_SUFFIXES", "is_video", "register", "search_video"]


def _progress(enabled: bool):
    if not enabled:
        return None

    def progress(done: int, total: int, message: str) -> None:
        sys.stderr.write(f"\r[{done}/{total}] {message[-60:]:<60}")
        sys.stderr.flush()

    return progress


def _fmt_s(t: float) -> str:
    return f"{int(t // 60)}:{t % 60:04.1f}"


def search_video(ff, path: str, args, emit, safe) -> None:
    """One JSON object for the video ``path``: ``{"query", "error", "tracks": [...]}`` (docs/BENCHMARKS.md)."""

    res = ff.search_video(path, rate=getattr(args, "rate", None), top_k=args.top,
                          progress=_progress(not args.json and sys.stderr.isatty()))
    if res.error:
        human = f"{safe(path)}: {res.error['code']}: {safe(res.error['message'])}"
    else:
        lines = [f"{safe(path)}: {len(res.tracks)} track(s) in {res.video['duration_s']:.1f} s "
                 f"({res.sampled} frames sampled at {res.rate:g}/s)"] + [f"  warning: {w}" for w in res.warnings]
        for t in res.tracks:
            lv = f" liveness={t.liveness.label}({t.liveness.score:.2f})" if t.liveness is not None else ""
            inside = t.decision is not None and t.decision.in_gallery
            top = f"{safe(t.persons[0].label)} sim={t.persons[0].similarity:.3f}" if t.persons else "-"
            lines.append(f"  track {t.track} {_fmt_s(t.start_s)}-{_fmt_s(t.end_s)} best {_fmt_s(t.best_s)} "
                         f"faces={t.faces}{lv}: {'in gallery: ' if inside else 'no reliable match; top '}{top}")
        human = "\n".join(lines)
    emit(res.to_dict(), args.json, human)


def register(sub, common, service, emit, safe) -> None:
    """Add ``enroll-video`` and ``find`` to ``sub`` (the CLI's subparsers)."""

    def cmd_enroll_video(args) -> int:
        ff = service(args)
        try:
            meta = json.loads(args.metadata) if args.metadata else None
            for res in ff.enroll_video(args.video, args.track, label=args.label, case_id=args.case_id, metadata=meta,
                                       rate=args.rate):
                human = f"{safe(res.path)}: " + (f"record {res.record_id} as {safe(repr(res.label))}" if not res.error
                                                 else f"{res.error['code']}: {safe(res.error['message'])}")
                emit(res.to_dict(), args.json, human)
        finally:
            ff.close()
        return 0

    def cmd_find(args) -> int:
        ff = service(args)
        try:
            for res in ff.find_in_footage(args.videos, photo=args.photo, person_id=args.person, rate=args.rate,
                                          min_confidence=args.min_confidence,
                                          progress=_progress(not args.json and sys.stderr.isatty())):
                if res.error:
                    human = f"{safe(res.query)}: {res.error['code']}: {safe(res.error['message'])}"
                else:
                    human = "\n".join([f"{safe(res.query)}: {safe(res.reference)} in {len(res.spans)} span(s)"] + [
                        f"  {_fmt_s(s.start_s)}-{_fmt_s(s.end_s)} best {_fmt_s(s.best_s)} sim={s.similarity:.3f} "
                        f"tracks={s.tracks}" for s in res.spans])
                emit(res.to_dict(), args.json, human)
        finally:
            ff.close()
        return 0

    sp = sub.add_parser("enroll-video", help="add the best faces of one track of a video (see `search VIDEO`) to a person")
    sp.add_argument("video")
    sp.add_argument("--track", type=int, required=True, help="the track number `search VIDEO` printed")
    sp.add_argument("--label", required=True, help="the person (created when new, else the faces are added)")
    sp.add_argument("--case-id")
    sp.add_argument("--metadata", help="JSON object stored with a new person")
    sp.add_argument("--rate", type=float, help="sampled frames per second (default: the video_rate setting, 2); "
                    "use the rate the track numbers came from")
    common(sp)
    sp.set_defaults(func=cmd_enroll_video)

    sp = sub.add_parser("find", help="time spans where one person (a photo or an enrolled person) appears in videos")
    sp.add_argument("videos", nargs="+")
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--photo", help="query photo (its largest face)")
    who.add_argument("--person", type=int, help="an enrolled person's id")
    sp.add_argument("--rate", type=float, help="sampled frames per second (default: the video_rate setting, 2)")
    sp.add_argument("--min-confidence", type=float, default=0.5,
                    help="same-person probability a track needs (the engine's calibration; default 0.5)")
    common(sp)
    sp.set_defaults(func=cmd_find)
