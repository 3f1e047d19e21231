"""The case report of one recorded query, and the case file of a case (all its recorded queries): each a
self-contained HTML page (the GUI prints it to PDF with Qt).

Built from what was recorded, never from a new search: the query (path, sha256, time, user, engine),
each face with its liveness verdict and the candidates as they were shown (rank, label, case id,
similarity, confidence, the candidate photo's sha256 and its stored face crop inline), the case
worker's decisions and notes (who, when), and the versions of the program and the engine. Every
text is HTML-escaped; the crops are ``data:`` URIs, so the file stands alone.
"""

from __future__ import annotations

import base64
import html

from . import __version__

_CSS = """body{font-family:sans-serif;font-size:10pt;color:#111;margin:24px}
h1{font-size:16pt;margin:0 0 4px}h2{font-size:12pt;margin:18px 0 6px;border-bottom:1px solid #999}
h3{font-size:11pt;margin:10px 0 4px}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #bbb;padding:3px 5px;vertical-align:top;text-align:left}
th{background:#eee}.mono{font-family:monospace;font-size:8pt;word-break:break-all}.note{white-space:pre-wrap}
.confirm{color:#0a6b0a;font-weight:bold}.reject{color:#a30000;font-weight:bold}.unsure{color:#8a5a00;font-weight:bold}"""


def _e(v) -> str:
    return html.escape("" if v is None else str(v))


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * float(v):.1f} %"


def _query_table(entry: dict, engine_description: str) -> list[str]:
    return ["<table>",
            f"<tr><th>Query photo</th><td>{_e(entry['query_path'])}</td></tr>",
            f"<tr><th>Query sha256</th><td class='mono'>{_e(entry.get('query_sha256'))}</td></tr>",
            f"<tr><th>Searched</th><td>{_e(entry['created_at'])} by {_e(entry['user'])}</td></tr>",
            f"<tr><th>Engine</th><td>{_e(entry['engine'])} {_e(engine_description)}</td></tr>",
            "</table>"]


def _faces(entry: dict, candidates: dict[int, dict], h: str = "h2") -> list[str]:
    """The recorded faces of one query: liveness, the candidates as shown (crop, scores, photo sha256)
    and the decisions with notes."""

    res = entry.get("results") or {}
    decisions = {(d["face_index"], d["face_id"]): d for d in entry.get("decisions", [])}
    out = []
    if res.get("error"):
        out.append(f"<{h}>Search failed</{h}><p>{_e(res['error'].get('code'))}: {_e(res['error'].get('message'))}</p>")
    faces = res.get("faces") or []
    if not faces and not res.get("error"):
        out.append(f"<{h}>No face found</{h}>")
    for fi, face in enumerate(faces):
        live = face.get("liveness") or {}
        verdict = f"{_e(live.get('label'))} (score {_e(live.get('score'))})" if live else "not checked"
        out.append(f"<{h}>Face {fi + 1} of {len(faces)} \u2013 box {_e(face.get('box'))}, liveness {verdict}</{h}>")
        matches = face.get("matches") or []
        if not matches:
            out.append("<p>No candidate in the gallery at the time of the search.</p>")
            continue
        out.append("<table><tr><th>#</th><th>Crop</th><th>Candidate</th><th>Similarity</th><th>Confidence</th>"
                   "<th>Decision</th><th>Candidate photo sha256</th></tr>")
        for m in matches:
            c = candidates.get(int(m["face_id"])) or {}
            img = ""
            if c.get("crop"):
                img = ("<img width='72' src='data:image/jpeg;base64,"
                       + base64.b64encode(c["crop"]).decode("ascii") + "'>")
            d = decisions.get((fi, int(m["face_id"])))
            dec = "\u2013"
            if d:
                dec = (f"<span class='{_e(d['decision'])}'>{_e(d['decision'])}</span><br>{_e(d['at'][:19])} "
                       f"by {_e(d['user'])}<div class='note'>{_e(d['note'])}</div>")
            sha = c.get("sha256") or "(no longer in the gallery)"
            case = m.get("case_id") or "\u2013"
            out.append(f"<tr><td>{_e(m.get('rank'))}</td><td>{img}</td><td>{_e(m.get('label'))}<br>case "
                       f"{_e(case)}<br><span class='mono'>{_e(m.get('image'))}</span></td>"
                       f"<td>{_e(m.get('similarity'))}</td><td>{_pct(m.get('confidence'))}</td><td>{dec}</td>"
                       f"<td class='mono'>{_e(sha)}</td></tr>")
        out.append("</table>")
    return out


def _head(title: str) -> str:
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style></head><body>"


LEAD = ("<p>A candidate is a lead for a trained person to check, never an identification on its own. "
        "The results below are those recorded at the time of the search.</p>")


def case_report(entry: dict, *, candidates: dict[int, dict], generated_at: str, user: str,
                engine_description: str = "") -> str:
    """The HTML of one recorded query ``entry`` (a :meth:`Gallery.query` row with its ``decisions``).

    ``candidates[face_id]``: ``{"sha256", "crop" (JPEG bytes or None), "path"}`` of each candidate
    still in the gallery (a candidate deleted since is reported from the recorded result alone).
    """

    out = [_head(f"Case report: query {entry['id']}"), f"<h1>Case report \u2013 query {_e(entry['id'])}</h1>", LEAD,
           *_query_table(entry, engine_description)[:-1],
           f"<tr><th>Report</th><td>{_e(generated_at)} by {_e(user)}, FASFinder {_e(__version__)}</td></tr>",
           "</table>", *_faces(entry, candidates), "</body></html>"]
    return "\n".join(out)


def case_file_report(case: dict, entries: list[dict], *, candidates: dict[int, dict], generated_at: str,
                     user: str, engine_descriptions: dict[str, str] | None = None) -> str:
    """The case file: one case (a :meth:`Gallery.case_list` row) with every recorded query of it
    (``entries``, oldest first, each with its ``decisions``), each query as in :func:`case_report`."""

    desc = engine_descriptions or {}
    decided = sum(1 for e in entries for _d in e.get("decisions", []))
    out = [_head(f"Case file: {case['case_id']}"), f"<h1>Case file \u2013 {_e(case['case_id'])}</h1>", LEAD,
           "<table>",
           f"<tr><th>Case</th><td>{_e(case['case_id'])}</td></tr>",
           f"<tr><th>Persons</th><td>{_e(', '.join(case.get('labels') or []) or '(none in the gallery)')}</td></tr>",
           f"<tr><th>Photos</th><td>{_e(case.get('images'))}</td></tr>",
           f"<tr><th>Recorded queries</th><td>{len(entries)} ({decided} decision(s))</td></tr>",
           f"<tr><th>Last activity</th><td>{_e(case.get('last_activity'))}</td></tr>",
           f"<tr><th>Report</th><td>{_e(generated_at)} by {_e(user)}, FASFinder {_e(__version__)}</td></tr>",
           "</table>"]
    if not entries:
        out.append("<h2>No recorded query</h2>")
    for entry in entries:
        out.append(f"<h2>Query {_e(entry['id'])} \u2013 {_e(str(entry['query_path']).replace(chr(92), '/').rsplit('/', 1)[-1])}</h2>")
        out += _query_table(entry, desc.get(entry["engine"], ""))
        out += _faces(entry, candidates, h="h3")
    out.append("</body></html>")
    return "\n".join(out)


def what_changed(recorded: dict, now: dict) -> list[str]:
    """In words, per face, how today's results of the same photo differ from the recorded ones:
    candidates that are new, gone (or left out as rejected), or whose similarity moved by 0.01 or more
    (faces matched by index)."""

    out = []
    old_faces, new_faces = recorded.get("faces") or [], now.get("faces") or []
    if len(old_faces) != len(new_faces):
        out.append(f"{len(new_faces)} face(s) found now, {len(old_faces)} recorded")
    for i, (old, new) in enumerate(zip(old_faces, new_faces)):
        before = {m["face_id"]: m for m in old.get("matches") or []}
        after = {m["face_id"]: m for m in new.get("matches") or []}
        rejected = {r["person_id"] for r in new.get("rejected") or []}
        for fid, m in after.items():
            if fid not in before:
                out.append(f"face {i + 1}: new candidate {m['label']} (similarity {m['similarity']:.3f})")
            elif abs(m["similarity"] - before[fid]["similarity"]) >= 0.01:
                out.append(f"face {i + 1}: {m['label']} similarity {before[fid]['similarity']:.3f} -> "
                           f"{m['similarity']:.3f}")
        for fid, m in before.items():
            if fid not in after and m.get("person_id") in rejected:
                out.append(f"face {i + 1}: {m['label']} left out (rejected for this photo)")
            elif fid not in after:
                out.append(f"face {i + 1}: {m['label']} is no longer a candidate")
    return out


# -- PDF ---------------------------------------------------------------------------------------
# The core never imports Qt, and Qt's text layout is what prints the reports to PDF. The program's
# entry point (main.py) registers the renderer; a library user without it gets a typed error.
_pdf_renderer = None


def set_pdf_renderer(render) -> None:
    """``render(html, path)`` writes ``html`` as a PDF file (main.py registers Qt's)."""

    global _pdf_renderer
    _pdf_renderer = render


def write_pdf(html: str, path) -> dict:
    """The report as PDF at ``path``: ``{"pdf", "pdf_sha256"}``; BadArgument without a renderer."""

    import hashlib
    from pathlib import Path

    from .errors import BadArgument

    if _pdf_renderer is None:
        raise BadArgument("writing PDF needs the program's Qt renderer: run `python main.py` or the fasfinder "
                          "launcher (the HTML report is written without it)")
    _pdf_renderer(html, str(path))
    data = Path(path).read_bytes()
    if not data.startswith(b"%PDF"):
        raise BadArgument(f"the PDF renderer wrote no PDF to {path}")
    return {"pdf": str(path), "pdf_sha256": hashlib.sha256(data).hexdigest()}
