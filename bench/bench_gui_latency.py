"""GUI event-loop latency while a 200-image import and repeated searches run.

A 10 ms QTimer records the gap between consecutive ticks on the GUI thread; any work done on
the GUI thread (or any GIL-holding model call in this process) shows up as a long gap. The
window is the real MainWindow (all docks, per-match heatmaps, region bars on every search).

    .venv/bin/python bench/bench_gui_latency.py                 # models in the helper process
    .venv/bin/python bench/bench_gui_latency.py --host local    # models in the GUI process (comparison)

Images: 200 augmentations of skimage's astronaut (flips, crops, brightness), 20 persons x 10.
Prints worst / p99 / p50 gap (goal: worst and p99 < 50 ms) and writes JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def make_images(folder: Path, n: int, persons: int = 20) -> list[Path]:
    from PIL import Image
    from skimage import data

    from fasfinder import perturb

    astro = data.astronaut()
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = astro[:, ::-1] if i % 2 else astro
        c = int(rng.integers(0, 40))
        img = img[c: 512 - int(rng.integers(0, 40)), int(rng.integers(0, 40)): 512 - int(rng.integers(0, 40))]
        img = perturb.brightness(np.ascontiguousarray(img), float(rng.uniform(0.75, 1.25)))
        p = folder / f"person_{i % persons:02d}" / f"img_{i:03d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(p)
        out.append(p)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="images to import")
    ap.add_argument("--host", choices=("process", "local"), default="process")
    ap.add_argument("--interval", type=int, default=10, help="timer interval (ms)")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)

    import torch  # noqa: F401 - torch before Qt, as main.py does

    tmp = Path(tempfile.mkdtemp(prefix="fasfinder-bench-"))
    os.environ["FASFINDER_CONFIG_DIR"] = str(tmp / "config")
    os.environ["FASFINDER_DATA_DIR"] = str(tmp / "data")
    images = make_images(tmp / "import", args.n)
    queries = images[::17][:8]

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from fasfinder.settings import Settings
    from ui.app import limit_threads
    from fasfinder.host import make_host
    from ui.main_window import MainWindow

    limit_threads()
    app = QApplication.instance() or QApplication([])
    settings = Settings(gallery=str(tmp / "gallery.db"))
    host = make_host(settings, args.host)
    win = MainWindow(settings, host, offer_demo=False, restore_layout=False)
    win.resize(1280, 800)
    win.show()
    # Warm up (model loading is not what we measure), then seed one image so searches have matches.
    host.call("warm_up")
    host.call("enroll", [str(images[0])], label="seed")
    win.session.pool.wait_idle(timeout_ms=120_000, settle_ms=200)

    gaps: list[float] = []
    state = {"last": None, "searches": 0, "import_done": False, "t0": None, "t_import": None}

    def tick():
        now = time.perf_counter()
        if state["last"] is not None:
            gaps.append((now - state["last"]) * 1e3)
        state["last"] = now

    timer = QTimer()
    timer.setTimerType(__import__("PySide6.QtCore", fromlist=["Qt"]).Qt.TimerType.PreciseTimer)
    timer.timeout.connect(tick)

    def next_search(*_):
        if state["import_done"]:
            return
        q = queries[state["searches"] % len(queries)]
        state["searches"] += 1
        win.open_query(str(q))

    def on_query_done(_result):
        QTimer.singleShot(50, next_search)

    win.session.result_changed.connect(on_query_done)

    def import_done(results):
        state["import_done"] = True
        state["t_import"] = time.perf_counter() - state["t0"]
        state["results"] = results

    win.gallery.import_finished.connect(import_done)

    timer.start(args.interval)
    state["t0"] = time.perf_counter()
    win.gallery.import_folder(str(tmp / "import"))
    next_search()
    while not state["import_done"]:
        app.processEvents()
        time.sleep(0.001)
    win.session.pool.wait_idle(timeout_ms=120_000, settle_ms=500)
    timer.stop()
    wall = time.perf_counter() - state["t0"]

    g = np.array(gaps)
    res = state["results"]
    enrolled = sum(1 for r in res if not isinstance(res, Exception) and r.error is None)
    out = {
        "host": args.host,
        "interval_ms": args.interval,
        "images": args.n,
        "enrolled": enrolled,
        "import_s": round(state["t_import"], 1),
        "searches": state["searches"],
        "wall_s": round(wall, 1),
        "ticks": int(len(g)),
        "worst_gap_ms": round(float(g.max()), 1),
        "p99_gap_ms": round(float(np.percentile(g, 99)), 1),
        "p50_gap_ms": round(float(np.percentile(g, 50)), 1),
        "gaps_over_50ms": int((g > 50).sum()),
        "cpu_cores": os.cpu_count(),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    win.close()
    app.processEvents()
    return 0 if out["p99_gap_ms"] < 50 else 1


if __name__ == "__main__":
    sys.exit(main())
