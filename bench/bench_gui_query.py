"""GUI query speed: from submitting a query to its matches on screen, and to every explanation done.

The real MainWindow (offscreen Qt), the real helper process (ProcessHost), a real gallery: the
first photos of LFW deep-funneled identities that have several, enrolled into a temporary gallery;
the queries are OTHER photos of enrolled persons (so each query has a true match).

    QT_QPA_PLATFORM=offscreen python bench/bench_gui_query.py [--gallery 150] [--queries 12]
    QT_QPA_PLATFORM=offscreen python bench/bench_gui_query.py --back-to-back [--interval-ms 0]

Per query: ``first_ms`` = ``open_query`` called -> the matches dock has listed this query's
candidates and repainted (the timestamp is taken after a synchronous repaint of the list);
``all_ms`` = -> no worker of the window is left (heatmaps, region importance, per-match maps and
thumbnails, the history refresh). Sequential mode waits for ``all`` before the next query;
``--back-to-back`` submits every query at ``--interval-ms`` without waiting (a person clicking
through photos): first results of each, and the time until everything is done after the last.
Medians; JSON with ``--out`` (default docs/results/query_speed/gui_{mode}.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LFW = REPO.parent / "shared" / "data" / "lfw" / "images_deepfunneled"


def pick(gallery: int, queries: int) -> tuple[list[Path], list[Path]]:
    """(gallery photos: the first photo of each of ``gallery`` persons with >= 2 photos, evenly spread;
    queries: the second photo of ``queries`` of those persons, evenly spread)."""

    persons = [d for d in sorted(LFW.iterdir()) if d.is_dir() and len(list(d.glob("*.jpg"))) >= 2]
    step = max(1, len(persons) // gallery)
    chosen = persons[::step][:gallery]
    enrolled = [sorted(d.glob("*.jpg"))[0] for d in chosen]
    qstep = max(1, len(chosen) // queries)
    return enrolled, [sorted(d.glob("*.jpg"))[1] for d in chosen[::qstep][:queries]]


def med(xs):
    return round(statistics.median(xs), 1) if xs else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gallery", type=int, default=150, help="persons enrolled (one photo each)")
    ap.add_argument("--queries", type=int, default=12)
    ap.add_argument("--back-to-back", action="store_true", help="submit every query without waiting")
    ap.add_argument("--interval-ms", type=int, default=0, help="back-to-back: time between submissions")
    ap.add_argument("--host", choices=("process", "local"), default="process")
    ap.add_argument("--out", help="JSON file (default docs/results/query_speed/gui_<mode>.json)")
    args = ap.parse_args(argv)
    if not LFW.is_dir():
        print(f"needs the LFW images at {LFW}", file=sys.stderr)
        return 2

    import torch  # noqa: F401 - torch before Qt, as main.py does

    tmp = Path(tempfile.mkdtemp(prefix="fasfinder-gui-query-"))
    os.environ["FASFINDER_CONFIG_DIR"] = str(tmp / "config")
    os.environ["FASFINDER_DATA_DIR"] = str(tmp / "data")
    enrolled, queries = pick(args.gallery, args.queries)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from fasfinder.host import make_host
    from fasfinder.settings import Settings
    from ui.app import limit_threads
    from ui.main_window import MainWindow

    limit_threads()
    app = QApplication.instance() or QApplication([])
    settings = Settings(gallery=str(tmp / "gallery.db"))
    host = make_host(settings, args.host)
    t = time.perf_counter()
    host.call("warm_up")
    res = host.call("enroll", [str(p) for p in enrolled], label_from="parent")
    enroll_s = time.perf_counter() - t
    ok = sum(1 for r in res if r.error is None)
    win = MainWindow(settings, host, offer_demo=False, restore_layout=False)
    win.resize(1280, 800)
    win.show()
    pool = win.session.pool
    pool.wait_idle(timeout_ms=120_000, settle_ms=300)

    submitted: dict[str, float] = {}
    first: dict[str, float] = {}
    listed: dict[str, int] = {}

    def on_face(index: int) -> None:
        res = win.session.result
        if res is None or index != 0 or res.query in first or res.query not in submitted:
            return
        win.matches.list.viewport().repaint()  # painted, not only filled in
        first[res.query] = (time.perf_counter() - submitted[res.query]) * 1e3
        listed[res.query] = win.matches.list.count()

    win.session.face_selected.connect(on_face)  # after the docks' own slots: the list is filled by now

    def explained() -> dict:
        """What the explanation docks show once the query is done (so a failed map is not timed as done)."""

        return {"heatmap": win.heatmap.status.text(), "per_match": win.matches.explain_status.text()[:60],
                "regions": sorted(win.regions._values)}

    def submit(path: Path) -> None:
        submitted[str(path)] = time.perf_counter()
        win.open_query(str(path))

    # one untimed query first (the first search loads the gallery index)
    submit(queries[-1])
    pool.wait_idle(timeout_ms=120_000, settle_ms=300)
    submitted.clear()
    first.clear()

    rows = []
    t_all = time.perf_counter()
    if not args.back_to_back:
        for q in queries:
            submit(q)
            pool.wait_idle(timeout_ms=120_000, settle_ms=50)
            done_ms = (time.perf_counter() - submitted[str(q)]) * 1e3 - 50  # wait_idle's settle time is not work
            rows.append({"query": q.name, "first_ms": round(first.get(str(q), float("nan")), 1),
                         "all_ms": round(done_ms, 1), "candidates_listed": listed.get(str(q), 0),
                         "explained": explained()})
    else:
        pending = list(queries)

        def fire():
            if pending:
                submit(pending.pop(0))
                QTimer.singleShot(args.interval_ms, fire)

        fire()
        deadline = time.perf_counter() + 300
        while (pending or len(first) < len(queries)) and time.perf_counter() < deadline:
            app.processEvents()
            time.sleep(0.001)
        pool.wait_idle(timeout_ms=120_000, settle_ms=50)
        for q in queries:
            rows.append({"query": q.name, "first_ms": round(first.get(str(q), float("nan")), 1),
                         "candidates_listed": listed.get(str(q), 0)})
    wall_s = time.perf_counter() - t_all
    firsts = [r["first_ms"] for r in rows if r["first_ms"] == r["first_ms"]]
    out = {
        "mode": "back-to-back" if args.back_to_back else "sequential",
        "host": args.host,
        "gallery": {"persons": len(enrolled), "enrolled": ok, "enroll_s": round(enroll_s, 1),
                    "source": "LFW deep-funneled, first photo of persons with >= 2"},
        "queries": len(queries),
        "first_results_ms_median": med(firsts),
        "first_results_ms_max": max(firsts) if firsts else None,
        "all_explanations_ms_median": med([r["all_ms"] for r in rows if "all_ms" in r]),
        "wall_s": round(wall_s, 1),
        "shown": len(firsts),
        "rows": rows,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "compute_threads": os.environ.get("FASFINDER_COMPUTE_THREADS", "default")},
        "loadavg_after": os.getloadavg(),
    }
    if args.back_to_back:
        out["interval_ms"] = args.interval_ms
        out["all_done_after_last_submit_s"] = round(wall_s - args.interval_ms * (len(queries) - 1) / 1e3, 1)
    text = json.dumps(out, indent=2)
    print(text)
    dest = Path(args.out) if args.out else REPO / "docs" / "results" / "query_speed" / f"gui_{out['mode']}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text + "\n")
    win.close()
    app.processEvents()
    host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
