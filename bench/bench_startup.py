"""Start-up time of installed FASFinder packages, side by side (issue 20: CUDA bundle vs CPU-only bundle).

    python bench/bench_startup.py --app cuda=dist-cuda/fasfinder_0.1.0_amd64.deb --app cpu=dist/fasfinder_0.1.0_amd64.deb \\
        --runs 10 --out docs/results/bench_startup.json

Each ``--app LABEL=PATH`` is a .deb (unpacked with ``dpkg -x`` into a scratch root, as installed: the
app runs from ``<root>/opt/fasfinder``) or a one-folder bundle. Measured per app, wall clock from
process start to exit, with a temporary HOME, settings and caches and without network (``unshare -rn``
where allowed):

- ``window``: the desktop app on the offscreen platform with ``--screenshot`` and a one-photo gallery:
  it exits once the window is shown, its helper process has loaded the models and all work is idle
  (``ui/app.py``: ``pool.wait_idle(settle_ms=1500)``, so 1.5 s of each number is that fixed settle time);
- ``search``: ``fasfinder search PHOTO --db GALLERY --json`` on one photo (detection, liveness,
  embedding, search; one process start).

One untimed warm-up run per app and command (page cache), then the apps alternate run by run, so load
changes on this shared machine hit both alike. Medians (and min/max) of ``--runs`` runs; the gallery is
a fresh copy for every run (search records its query in the gallery).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "packaging"))
from smoke_test import offline_prefix, scratch_env  # noqa: E402 - the smoke test's offline, scratch-HOME runs


def app_dir(path: Path, scratch: Path, label: str) -> Path:
    if path.is_dir():
        return path.resolve()
    root = scratch / f"root-{label}"
    subprocess.run(["dpkg-deb", "-x", str(path), str(root)], check=True)
    return root / "opt" / "fasfinder"


def timed(cmd: list[str], env: dict, timeout: int = 900) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--app", action="append", required=True, metavar="LABEL=PATH", help=".deb or bundle folder")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from PIL import Image
    from skimage import data

    scratch = Path(tempfile.mkdtemp(prefix="fasfinder-bench-startup-"))
    try:
        apps = {}
        for spec in args.app:
            label, _, path = spec.partition("=")
            apps[label] = app_dir(Path(path), scratch, label) / "fasfinder"
        env = scratch_env(scratch)
        prefix = offline_prefix()
        photo = scratch / "gallery" / "astronaut" / "astronaut.png"
        photo.parent.mkdir(parents=True)
        Image.fromarray(data.astronaut()).save(photo)
        gallery = scratch / "gallery.db"
        first = next(iter(apps.values()))
        timed([*prefix, str(first), "enroll", str(photo.parent.parent), "--db", str(gallery), "--json"], env)

        def command(kind: str, exe: Path, db: Path) -> list[str]:
            if kind == "window":
                return [*prefix, str(exe), "--screenshot", str(scratch / "shot.png"), "--db", str(db)]
            return [*prefix, str(exe), "search", str(photo), "--db", str(db), "--json"]

        times: dict[str, dict[str, list[float]]] = {label: {"window": [], "search": []} for label in apps}
        for kind in ("window", "search"):
            for run in range(args.runs + 1):  # run 0: warm-up, not counted
                for label, exe in apps.items():
                    db = scratch / f"run-{label}.db"
                    shutil.copy(gallery, db)
                    dt = timed(command(kind, exe, db), env)
                    if run:
                        times[label][kind].append(dt)
                    db.unlink()
                print(f"{kind} run {run}: " + ", ".join(f"{lab} {times[lab][kind][-1]:.2f} s" if run else f"{lab} warm-up"
                                                        for lab in apps), flush=True)
        load = os.getloadavg()
        result = {
            "command": "python bench/bench_startup.py " + " ".join(f"--app {a}" for a in args.app) + f" --runs {args.runs}",
            "machine": f"{platform.platform()}, {os.cpu_count()} CPUs shared with other jobs; load average after the run "
                       f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
            "offline": bool(prefix), "date": time.strftime("%Y-%m-%d %H:%M"),
            "apps": {label: str(exe) for label, exe in apps.items()},
            "results": {label: {kind: {"median_s": round(statistics.median(v), 2), "min_s": round(min(v), 2),
                                       "max_s": round(max(v), 2), "runs": len(v)} for kind, v in kinds.items()}
                        for label, kinds in times.items()},
        }
        labels = list(apps)
        if len(labels) == 2:
            a, b = labels
            result["ratio"] = {kind: round(result["results"][b][kind]["median_s"] / result["results"][a][kind]["median_s"], 3)
                               for kind in ("window", "search")}
            result["ratio_note"] = f"median {b} / median {a}"
        text = json.dumps(result, indent=1)
        print(text)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n", encoding="utf-8")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
