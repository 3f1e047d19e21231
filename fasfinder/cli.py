"""Command line of docs/BENCHMARKS.md section 1.

With ``--json`` every input produces exactly one JSON object on its own line of stdout; logs go
to stderr. Exit status: 0 when every input was processed (an input with an error still counts
and carries its error object), 1 when the command itself failed, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import FasFinderError

log = logging.getLogger("fasfinder")


#: Unicode categories never written raw to a terminal: controls (escape sequences, newlines, DEL,
#: C1), format characters (right-to-left overrides, isolates), line/paragraph separators, surrogates
#: (undecodable bytes of file names) and private-use characters.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co"}


def terminal_safe(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every terminal control, bidi override and newline shown as a ``\\x..``/``\\u....`` escape.

    The one helper for plain-text output: labels, file names and messages come from users and
    files, and must not move the cursor, recolour the terminal, reverse the line or start a fake
    new line. ``keep_newlines`` keeps the newlines the CLI itself puts between lines.
    """

    import unicodedata

    out = []
    for ch in str(text):
        if (ch == "\n" and keep_newlines) or unicodedata.category(ch) not in _UNSAFE_CATEGORIES:
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


_t = terminal_safe


def _emit(obj: dict, as_json: bool, human: str | None = None) -> None:
    if as_json:
        # undecodable file-name bytes (lone surrogates) become JSON \udcXX escapes instead of crashing the write
        line = json.dumps(obj, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    else:
        text = human if human is not None else json.dumps(obj, indent=2, ensure_ascii=False)
        print(terminal_safe(text, keep_newlines=True))


def _service(args):
    from .service import FasFinder
    from .settings import Settings

    settings = Settings.load()
    if getattr(args, "engine", None):
        settings.engine = args.engine
    if getattr(args, "detector", None):
        settings.detector = args.detector
    if getattr(args, "no_flip", False):
        settings.flip = False
    if getattr(args, "no_liveness", False):
        settings.liveness = False
    if getattr(args, "refuse_spoof", False):
        settings.refuse_spoof = True
    if getattr(args, "all_faces", False):
        settings.enroll_all_faces = True
    db = getattr(args, "db", None)
    ff = FasFinder(db or settings.gallery, settings=settings, key=_key_from_file(getattr(args, "key_file", None)))
    ff.engine  # noqa: B018 - an unknown engine fails the command (exit 1), not each input
    return ff


ARCHIVE_KEY_HELP = "file whose first line is the passphrase of encrypted archives (default: $FASFINDER_ARCHIVE_KEY)"


def _key_from_file(path: str | None) -> str | None:
    """The gallery key from ``--key-file`` (its first line); None: the service reads $FASFINDER_GALLERY_KEY."""

    if not path:
        return None

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FasFinderError(f"{path}: cannot read the key file ({type(exc).__name__})", code="bad_argument") from exc
    key = text.splitlines()[0] if text.strip() else ""
    if not key:
        raise FasFinderError(f"{path}: the key file is empty", code="bad_argument")
    return key


def cmd_encrypt(args) -> int:
    ff = _service(args)
    out = ff.encrypt_gallery()
    _emit(out, args.json, f"encrypted {_t(out['path'])}: {out['counts'].get('faces', 0)} face(s), "
                          f"{out['index_files']} index file(s); plain copy removed")
    return 0


def _progress_printer(enabled: bool):
    if not enabled:
        return None

    def progress(done: int, total: int, message: str) -> None:
        sys.stderr.write(f"\r[{done}/{total}] {message[-60:]:<60}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return progress


# -- commands ----------------------------------------------------------------------------
def cmd_enroll(args) -> int:
    ff = _service(args)
    meta = json.loads(args.metadata) if args.metadata else None
    try:
        for res in ff.iter_enroll(args.paths, label=args.label, label_from=args.label_from, case_id=args.case_id,
                             metadata=meta, progress=_progress_printer(not args.json and sys.stderr.isatty())):
            d = res.to_dict()
            human = f"{_t(res.path)}: " + (f"record {res.record_id} as {_t(repr(res.label))} ({res.faces} face(s) found)"
                                          if not res.error else f"{res.error['code']}: {_t(res.error['message'])}")
            _emit(d, args.json, human)
    finally:
        ff.close()
    return 0


def _search_lines(image, res) -> list[str]:
    lines = [f"{_t(image)}: {len(res.faces)} face(s)"]
    for f in res.faces:
        lv = f" liveness={f.liveness.label}({f.liveness.score:.2f})" if f.liveness else ""
        q = f" quality={f.quality.score:.2f}{'(' + ','.join(f.quality.flags) + ')' if f.quality.flags else ''}" if f.quality else ""
        lines.append(f"  face {f.index} box={list(f.box)}{lv}{q}")
        if f.decision is not None:
            lines.append(f"    decision: {'in gallery' if f.decision.in_gallery else 'no reliable match in the gallery'}"
                         f" (threshold {'n/a' if f.decision.threshold is None else f'{f.decision.threshold:.3f}'})")
        for m in (f.persons if f.persons is not None else f.matches):
            conf, n = f"{m.confidence:.3f}" if m.confidence is not None else "n/a", f" photos={len(getattr(m, 'photos', []))}"
            lines.append(f"    #{m.rank} {_t(m.label)} sim={m.similarity:.3f} conf={conf} record={m.record_id}{n}")
        for r in f.rejected:  # rejected for this photo before: never proposed again
            lines.append(f"    (rejected before) {_t(r['label'])} sim={r['similarity']:.3f}")
    return lines


def cmd_search(args) -> int:
    from .cli_video import is_video, search_video

    ff = _service(args)
    try:
        for image in args.images:
            if is_video(image):  # one object per video: its tracks (cli_video)
                search_video(ff, image, args, _emit, _t)
                continue
            res = ff.search(image, top_k=args.top, by=args.by, case_ids=args.case or None)
            d = res.to_dict()
            if res.error:
                human = f"{_t(image)}: {res.error['code']}: {_t(res.error['message'])}"
            else:
                human = "\n".join(_search_lines(image, res))
            _emit(d, args.json, human)
    finally:
        ff.close()
    return 0


def cmd_liveness(args) -> int:
    ff = _service(args)
    for image in args.images:
        res = ff.liveness(image)
        d = res.to_dict(with_matches=False)
        if res.error:
            human = f"{_t(image)}: {res.error['code']}: {_t(res.error['message'])}"
        else:
            human = "\n".join(f"{_t(image)}: face {f.index} {f.liveness.label} (live score {f.liveness.score:.3f})"
                              for f in res.faces)
        _emit(d, args.json, human)
    return 0


def cmd_explain(args) -> int:
    ff = _service(args)
    try:
        report = ff.explain_to_folder(args.image, args.out, with_matches=args.db is not None, top_k=args.top)
    finally:
        ff.close()
    _emit(report, args.json)
    return 0


def cmd_engines(args) -> int:
    from .service import FasFinder

    for engine in FasFinder().engines(details=True):
        info = engine.to_dict()
        _emit(info, args.json, f"{engine.name}: {engine.description} (dim {info.get('dim')})")
    return 0


def cmd_audit(args) -> int:
    ff = _service(args)
    if args.verify:  # exit 0 either way: the report says ok or where the chain breaks
        try:
            rep = ff.audit_verify()
        finally:
            ff.close()
        _emit(rep, args.json, f"audit log intact: {rep['rows']} rows, head {rep['head']}" if rep["ok"] else
              f"audit log BROKEN at row {rep['first_broken_id']}: {rep['problem']}")
        return 0
    for row in reversed(ff.audit_log(args.limit)):
        _emit(row, args.json, f"{row['at']} {_t(row['user'])} {_t(row['action'])} {_t(json.dumps(row['details']))}")
    ff.close()
    return 0


def cmd_export(args) -> int:
    ff = _service(args)
    try:
        summary = ff.export_archive(args.out, labels=args.label, case_ids=args.case_id,
                                    archive_key=_key_from_file(args.archive_key_file))
    finally:
        ff.close()
    _emit(dict(summary, error=None), args.json,
          f"{_t(summary['path'])}: {summary['persons']} person(s), {summary['images']} image(s), {summary['faces']} face(s), "
          f"sha256 {summary['sha256']}, signed by {_t(summary['signer']['name'])} ({summary['signer']['fingerprint'][:16]})"
          + (", encrypted" if summary.get("encrypted") else ""))
    return 0


def _signature_text(sig: dict | None) -> str:
    sig = sig or {}
    who = f" by {_t(sig.get('signer_name') or '?')} ({sig.get('signer', '')[:16]})" if sig.get("signer") else ""
    allowed = " (accepted with --allow-unsigned)" if sig.get("allowed_by_user") else ""
    return f"{sig.get('status', 'unknown')}{who}{allowed}"


def cmd_import(args) -> int:
    ff, archive_key = _service(args), _key_from_file(args.archive_key_file)
    try:
        for path in args.files:
            try:
                d = dict(ff.import_archive(path, allow_unsigned=args.allow_unsigned, archive_key=archive_key), error=None)
                human = (f"{_t(path)}: {d['images']} image(s) imported, {d['duplicates']} already enrolled, "
                         f"{d['persons_created']} new person(s); signature {_signature_text(d.get('signature'))}")
            except FasFinderError as exc:
                d = {"path": path, "images": 0, "duplicates": 0, "faces": 0, "persons_created": 0, "error": exc.to_dict()}
                human = f"{_t(path)}: {exc.code}: {_t(exc.message)}"
            _emit(d, args.json, human)
    finally:
        ff.close()
    return 0


def cmd_keys(args) -> int:
    from .service import FasFinder

    ff = FasFinder()  # the keys live in the user's config dir; no gallery is opened
    if args.action == "init":
        rows = [ff.keys_init(args.name)]
    elif args.action == "trust":
        rows = [ff.keys_trust(args.file, args.name)]
    elif args.action == "untrust":
        n = ff.keys_untrust(args.who)
        _emit({"removed": n, "who": args.who}, args.json, f"{n} key(s) removed")
        return 0 if n else 1
    else:
        rows = ff.keys_list()
    for row in rows:
        what = "own key" if row.get("own") else "trusted"
        _emit(row, args.json, f"{_t(row['name'])} ({what}) fingerprint {row['fingerprint_pretty']}\n  {_t(row['public_key'])}")
    return 0


def cmd_history(args) -> int:
    ff = _service(args)
    for row in ff.history(args.limit):
        summary = {"id": row["id"], "created_at": row["created_at"], "user": row["user"], "query": row["query_path"],
                   "engine": row["engine"], "results": row["results"], "decisions": row.get("decisions", [])}
        _emit(summary, args.json, f"{row['id']} {row['created_at']} {_t(row['query_path'])} "
                                  f"({len(row['results'].get('faces', []))} face(s))")
    ff.close()
    return 0


def cmd_eval(args) -> int:
    progress = _progress_printer(sys.stderr.isatty())
    engines = [e for e in (getattr(args, "engine", None) or "").split(",") if e]
    if args.protocol in ("lfw", "ident") and len(engines) > 1:
        # several engines: one pass over the images fills every engine's cache, then one line each
        from .evaluation.lfw import prefill

        prefill(args.lfw, engines, limit=getattr(args, "limit", None), progress=progress)
        for name in engines:
            args.engine = name
            cmd_eval(args)
        return 0
    from .evaluation.dispatch import run_protocol

    out = run_protocol(args, progress)
    _emit(out, args.json)
    return 0


# -- parser ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py", description="FASFinder: offline face search with liveness and explanations. "
                                "Without a command the desktop app opens.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def common(sp, db=True, engine=True):
        sp.add_argument("--json", action="store_true", help="one JSON object per input on stdout")
        if db:
            sp.add_argument("--db", help="gallery file (default: the one in the settings)")
            sp.add_argument("--key-file", help="file whose first line is the key of an encrypted gallery "
                            "(default: $FASFINDER_GALLERY_KEY; without either the gallery is plain)")
        if engine:
            sp.add_argument("--engine", help="embedding engine (see `engines`)")
        sp.add_argument("--detector", choices=["hog", "cnn"], help="face detector")

    sp = sub.add_parser("enroll", help="add images (folders recursively) to a gallery")
    sp.add_argument("paths", nargs="+")
    sp.add_argument("--label-from", choices=["parent", "stem"], default="parent")
    sp.add_argument("--label", help="one label for all inputs (overrides --label-from)")
    sp.add_argument("--case-id", help="case number stored with new persons")
    sp.add_argument("--metadata", help="JSON object stored with new persons")
    sp.add_argument("--all-faces", action="store_true", help="enroll every face, not only the largest")
    sp.add_argument("--refuse-spoof", action="store_true", help="refuse faces the liveness check calls spoof")
    common(sp)
    sp.set_defaults(func=cmd_enroll)

    sp = sub.add_parser("search", help="top-K matches for every face of each image")
    sp.add_argument("images", nargs="+")
    sp.add_argument("--top", type=int, default=5)
    sp.add_argument("--by", choices=("person", "photo"), default="person",
                    help="list persons (default: best photo, photo count, person score, decision) or photos")
    sp.add_argument("--case", action="append", metavar="ID", help="search only the persons of this case (repeatable)")
    sp.add_argument("--no-liveness", action="store_true")
    sp.add_argument("--rate", type=float, help="videos: sampled frames per second (default: the video_rate setting, 2)")
    common(sp)
    sp.set_defaults(func=cmd_search)

    sp = sub.add_parser("liveness", help="face anti-spoofing verdict for every face")
    sp.add_argument("images", nargs="+")
    common(sp, db=False, engine=False)
    sp.set_defaults(func=cmd_liveness)

    sp = sub.add_parser("explain", help="Grad-CAM++ heatmaps, region importance and per-match maps")
    sp.add_argument("image")
    sp.add_argument("--out", required=True)
    sp.add_argument("--top", type=int, default=5)
    common(sp)
    sp.set_defaults(func=cmd_explain)

    sp = sub.add_parser("engines", help="installed engines and their model cards")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_engines)

    sp = sub.add_parser("audit", help="the gallery's append-only audit log")
    sp.add_argument("--limit", type=int)
    sp.add_argument("--verify", action="store_true", help="check the log's hash chain (finds deleted or changed rows)")
    common(sp, engine=False)
    sp.set_defaults(func=cmd_audit)

    sp = sub.add_parser("export", help="write the gallery (or selected persons/cases) to one verifiable file")
    sp.add_argument("out", help="export file to write (zip)")
    sp.add_argument("--label", action="append", help="only this person (repeatable)")
    sp.add_argument("--case-id", action="append", help="only persons with this case id (repeatable)")
    sp.add_argument("--archive-key-file", help=ARCHIVE_KEY_HELP + "; an encrypted gallery exports encrypted by default")
    common(sp, engine=False)
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("import", help="verify and import export files (all or nothing per file)")
    sp.add_argument("files", nargs="+")
    sp.add_argument("--allow-unsigned", action="store_true",
                    help="also import archives that are unsigned or signed by an untrusted key (audited)")
    sp.add_argument("--archive-key-file", help=ARCHIVE_KEY_HELP + "; else the gallery key is tried")
    common(sp, engine=False)
    sp.set_defaults(func=cmd_import)

    sp = sub.add_parser("encrypt", help="encrypt a plain gallery in place (key: $FASFINDER_GALLERY_KEY or --key-file)")
    common(sp, engine=False)
    sp.set_defaults(func=cmd_encrypt)

    sp = sub.add_parser("keys", help="this office's signing key and the trusted keys of other offices")
    ks = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    k = ks.add_parser("init", help="create the office key if missing; print its public key line and fingerprint")
    k.add_argument("--name", help="office name written in the public key line")
    k = ks.add_parser("trust", help="trust another office's public key (a file holding its line)")
    k.add_argument("file")
    k.add_argument("--name", help="the office's name (default: the name in the line)")
    k = ks.add_parser("untrust", help="stop trusting a key (name or fingerprint)")
    k.add_argument("who")
    ks.add_parser("list", help="the own key and the trusted keys")
    for k in ks.choices.values():
        k.add_argument("--json", action="store_true", help="one JSON object per key on stdout")
    sp.set_defaults(func=cmd_keys)

    from .cli_server import add_server_commands

    add_server_commands(sub, common, _service, _emit)
    sp = sub.add_parser("history", help="past queries and their results")
    sp.add_argument("--limit", type=int, default=50)
    common(sp, engine=False)
    sp.set_defaults(func=cmd_history)

    from .cli_casework import register

    register(sub, common, _service, _emit, _t)
    from .cli_video import register as register_video

    register_video(sub, common, _service, _emit, _t)

    ev = sub.add_parser("eval", help="benchmark protocols of docs/BENCHMARKS.md")
    evs = ev.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    e = evs.add_parser("lfw", help="protocol 2: LFW verification")
    e.add_argument("--lfw", required=True)
    e.add_argument("--engine", help="engine name, or several separated by commas (one JSON line each)")
    e.add_argument("--flip", action="store_true")
    e.add_argument("--limit", type=int, help="only the first N pairs (smoke runs)")
    e.add_argument("--json", action="store_true")
    e = evs.add_parser("ident", help="protocol 3: LFW identification (--open-set: protocol 3b)")
    e.add_argument("--lfw", required=True)
    e.add_argument("--engine")
    e.add_argument("--open-set", action="store_true", help="protocol 3b (and the CelebA test half); --plot DET PNG")
    e.add_argument("--json", action="store_true")
    e = evs.add_parser("identify-fit", help="fit fusion, FPIR threshold and identification confidence on CelebA")
    e.add_argument("--engine")
    e.add_argument("--write", action="store_true", help="store the result in the engine's model card")
    for ep in (evs.choices["ident"], evs.choices["identify-fit"]):
        ep.add_argument("--plot", help="DET plot PNG (ident --open-set) / reliability diagram PNG (identify-fit)")
        ep.add_argument("--cached-only", action="store_true", help="only the images already embedded (partial run)")
    e.add_argument("--json", action="store_true")
    e = evs.add_parser("fas", help="protocol 5: NUAA face anti-spoofing")
    e.add_argument("--nuaa", required=True)
    e.add_argument("--model", help="liveness model card, or minifasnet (the reference pair in ../shared; default: the shipped default)")
    e.add_argument("--json", action="store_true")
    e = evs.add_parser("calibrate", help="fit an engine's similarity->confidence calibration on CelebA")
    e.add_argument("--celeba", required=True, help="folder holding celeba_subset/ and celeba_extra/")
    e.add_argument("--engine")
    e.add_argument("--write", action="store_true", help="store the result in the engine's model card")
    e.add_argument("--cards", help="comma-separated model cards to write (default: the engine's own)")
    e.add_argument("--json", action="store_true")
    for name, what in (("robustness", "protocol 4: conditions, severity sweeps (closed set + LFW) and the ablation"),
                       ("ablation", "protocol 4: Zero/Random/Shuffle ablation of the heatmap channel (closed set)")):
        e = evs.add_parser(name, help=what)
        e.add_argument("--out", required=True, help="output folder: CSV/JSON tables, PNG curves, report.md (resumable)")
        e.add_argument("--celeba", help="folder holding celeba_subset/ (closed set; e.g. ../shared/data)")
        e.add_argument("--lfw", help="LFW folder holding pairs.txt (open set, robustness only)")
        e.add_argument("--engines", nargs="+", help="engines (space or comma separated; default: every installed "
                       "engine but the slow C++ dlib-resnet)")
        e.add_argument("--limit", type=int, help="LFW: only N pairs (the selection of `eval lfw --limit`)")
        e.add_argument("--ids", type=int, help="closed set: only the first N identities (smoke runs)")
        e.add_argument("--no-sweeps", action="store_true", help="closed set: single-point conditions only")
        e.add_argument("--lfw-sweeps", action="store_true", help="LFW: the full severity sweeps too (slow)")
        e.add_argument("--no-lfw", action="store_true", help="skip the open set")
        e.add_argument("--no-ablation", action="store_true", help="robustness: skip the ablation")
        e.add_argument("--no-flip", action="store_true", help="no flip TTA")
        e.add_argument("--batch", type=int, default=128)
        e.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
        e.add_argument("--json", action="store_true")
    for e in evs.choices.values():
        e.set_defaults(func=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except FasFinderError as exc:
        _emit({"error": exc.to_dict()}, getattr(args, "json", False), f"error: {exc.code}: {_t(exc.message)}")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the command itself failed: one error object, no traceback on stdout
        log.debug("command failed", exc_info=True)
        _emit({"error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}}, getattr(args, "json", False),
              f"error: {type(exc).__name__}: {_t(exc)}")
        return 1
