"""The casework commands of the command line (issue 17): ``decide``, ``report``, ``case-report``, ``cases``,
``trash``, ``restore``.

Registered by :mod:`fasfinder.cli` (which passes its option helper, service factory and printer,
so this module imports nothing of it); each is one service operation.
"""

from __future__ import annotations

from pathlib import Path

from .gallery.decisions import DECISIONS
from .report import write_pdf


def with_pdf(out: dict, pdf) -> str:
    """A report operation's result without its HTML text, which is also written as PDF to ``pdf`` when
    given; returns the PDF's part of the plain-text line."""

    html = out.pop("html")
    if not pdf:
        return ""
    out.update(write_pdf(html, pdf))
    return f"; PDF {out['pdf']} sha256 {out['pdf_sha256']}"


def register(sub, common, service, emit, safe) -> None:
    """Add the casework subcommands to ``sub`` (the CLI's subparsers)."""

    def cmd_decide(args) -> int:
        ff = service(args)
        row = ff.decide(args.query_id, args.face, args.candidate, args.decision, args.note or "")
        emit(row, args.json, f"query {row['query_id']} face {row['face_index']}: {row['decision']} candidate "
                             f"{row['face_id']} by {row['user']} at {row['at']}")
        ff.close()
        return 0

    def cmd_report(args) -> int:
        ff = service(args)
        out = ff.case_report(args.query_id, args.out)
        pdf = with_pdf(out, args.pdf)
        emit(out, args.json, f"{safe(out['path'])} sha256 {out['sha256']}{pdf}")
        ff.close()
        return 0

    def cmd_case_report(args) -> int:
        ff = service(args)
        out = ff.case_file_report(args.case_id, args.out)
        pdf = with_pdf(out, args.pdf)
        emit(out, args.json, f"{safe(out['path'])} sha256 {out['sha256']} ({len(out['queries'])} recorded "
                             f"quer{'y' if len(out['queries']) == 1 else 'ies'} of case {safe(out['case_id'])}){pdf}")
        ff.close()
        return 0

    def cmd_cases(args) -> int:
        ff = service(args)
        for c in ff.cases():
            names = ", ".join(safe(p["label"]) for p in c["persons"])
            emit(c, args.json, f"{safe(c['case_id'])}: {len(c['persons'])} person(s), {c['images']} photo(s), "
                               f"{c['faces']} face(s): {names}")
        ff.close()
        return 0

    def cmd_trash(args) -> int:
        ff = service(args)
        for e in ff.trash():
            emit(e, args.json, f"{e['id']} {e['deleted_at'][:19]} {safe(e['what'])} (purged after {e['purge_after']})")
        ff.close()
        return 0

    def cmd_restore(args) -> int:
        ff = service(args)
        out = ff.restore(args.trash_id)
        emit(out, args.json, f"restored {safe(out['what'])}")
        ff.close()
        return 0

    sp = sub.add_parser("decide", help="record confirm / reject / unsure on a candidate of a recorded query")
    sp.add_argument("query_id", type=int, help="the query's id (see `history`)")
    sp.add_argument("candidate", type=int, help="the candidate's face id (the match's face_id)")
    sp.add_argument("--decision", required=True, choices=DECISIONS)
    sp.add_argument("--face", type=int, default=0, help="the query face's index (default 0)")
    sp.add_argument("--note", help="the case worker's note")
    common(sp, engine=False)
    sp.set_defaults(func=cmd_decide)

    sp = sub.add_parser("report", help="the case report (self-contained HTML, --pdf also PDF) of a recorded query")
    sp.add_argument("query_id", type=int)
    sp.add_argument("out", type=Path, help="the HTML file to write")
    sp.add_argument("--pdf", type=Path, help="also the same report as PDF (Qt's layout, as in the GUI)")
    common(sp, engine=False)
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser("case-report", help="the case file (self-contained HTML, --pdf also PDF) of a case: every "
                        "recorded query of it with its candidates, decisions and sha256s")
    sp.add_argument("case_id", help="the case id (see `cases`)")
    sp.add_argument("out", type=Path, help="the HTML file to write")
    sp.add_argument("--pdf", type=Path, help="also the same case file as PDF (Qt's layout, as in the GUI)")
    common(sp, engine=False)
    sp.set_defaults(func=cmd_case_report)

    sp = sub.add_parser("cases", help="the case ids with their persons and photo / face counts")
    common(sp, engine=False)
    sp.set_defaults(func=cmd_cases)

    sp = sub.add_parser("trash", help="deleted persons / photos and merges that can still be restored")
    common(sp, engine=False)
    sp.set_defaults(func=cmd_trash)

    sp = sub.add_parser("restore", help="undo a delete or merge from the trash")
    sp.add_argument("trash_id", type=int)
    common(sp, engine=False)
    sp.set_defaults(func=cmd_restore)
