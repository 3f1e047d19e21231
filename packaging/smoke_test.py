"""Smoke test of the built FASFinder package (not part of the pytest suite: it needs a build).

    packaging/.build-venv/bin/python packaging/smoke_test.py [--deb dist/fasfinder_*.deb | --bundle dist/fasfinder]

With a .deb (the default when dist/ has one) it unpacks it into a scratch root with `dpkg -x` and
checks the package layout (launcher, desktop entry, icons, licence); with --bundle it runs the
one-folder bundle directly. Then, with user data, config and cache in a temporary HOME and, where
`unshare -n` is allowed, WITHOUT network (so any download attempt fails):
  1. `fasfinder engines --json`
  2. `fasfinder enroll GALLERY --json` on skimage's astronaut (PNG) plus LFW identities when
     ../shared/data/lfw exists (label = folder name)
  3. `fasfinder search QUERIES --json`: the astronaut again and a second LFW photo of each person;
     checks exit codes, the JSON shape and that each query's top match is the right person
  4. `fasfinder liveness astronaut.png --json` (the bundled FAS model)
  5. numbers (smoke_numbers.py): `enroll --engine E` for every engine of the reference, whose embeddings
     must match packaging/smoke_reference.json (made in the development environment) to a cosine of
     1 - 1e-5, and `liveness --json` scores within 1e-4; every engine that `engines --json` lists must
     be in the reference (so every engine is shown to load and embed in the bundle)
  6. the desktop app offscreen: `fasfinder --screenshot app.png --db GALLERY --query astronaut.png`
     (the query runs in the spawned helper process), and with xvfb-run on the xcb platform plugin
     when xvfb-run exists; checks the PNGs.
Prints one line per check and a summary; exit status 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LFW = REPO.parent / "shared" / "data" / "lfw" / "images_deepfunneled"
APP = "fasfinder"

results: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = "") -> bool:
    results.append((name, bool(ok), detail))
    print(f"[{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""), flush=True)
    return bool(ok)


def png_size(path: Path) -> tuple[int, int] | None:
    head = path.read_bytes()[:24]
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def non_trivial_png(path: Path) -> tuple[bool, str]:
    """Exists, decodes, has the window's size and is not a single flat colour."""

    if not path.is_file():
        return False, f"{path} missing"
    wh = png_size(path)
    if wh is None:
        return False, "not a PNG"
    try:
        import numpy as np
        from PIL import Image

        px = np.asarray(Image.open(path).convert("RGB"))
        colours = len(np.unique(px.reshape(-1, 3)[:: max(1, px.size // 3 // 200_000)], axis=0))
    except ImportError:  # no numpy/Pillow in this Python: fall back to the file size
        colours = -1
    ok = wh[0] >= 800 and wh[1] >= 500 and path.stat().st_size > 20_000 and (colours < 0 or colours > 50)
    return ok, f"{wh[0]}x{wh[1]} px, {path.stat().st_size} bytes, {colours} colours"


def scratch_env(tmp: Path) -> dict:
    """Environment for running the app with HOME, settings, gallery and caches under ``tmp``, offscreen."""

    home = tmp / "home"
    (tmp / "run").mkdir(mode=0o700, exist_ok=True)
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen",
            "FASFINDER_CONFIG_DIR": str(home / "config"), "FASFINDER_DATA_DIR": str(home / "data"),
            "FASFINDER_CACHE_DIR": str(home / "cache"), "TORCH_HOME": str(home / "torch"),
            "XDG_RUNTIME_DIR": str(tmp / "run")}


def offline_prefix() -> list[str]:
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-rn"]
    return []


def run(cmd: list[str], env: dict, timeout: int, prefix: list[str]) -> tuple[int, str, str, float]:
    t0 = time.perf_counter()
    p = subprocess.run(prefix + cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0


def json_lines(text: str) -> list[dict] | None:
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError:
        return None


def install_deb(deb: Path, root: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Installed-Size", "Depends"],
                          check=True, capture_output=True, text=True).stdout
    check("deb control fields", "Package: fasfinder" in info and "Depends:" in info,
          " ".join(line for line in info.splitlines() if not line.startswith("Depends")))
    launcher = root / "usr" / "bin" / APP
    check("deb launcher /usr/bin/fasfinder", launcher.is_file() and os.access(launcher, os.X_OK)
          and "/opt/fasfinder/fasfinder" in launcher.read_text())
    desktop = root / "usr" / "share" / "applications" / f"{APP}.desktop"
    ok = desktop.is_file() and "Exec=fasfinder" in desktop.read_text() and "Icon=fasfinder" in desktop.read_text()
    detail = ""
    if ok and shutil.which("desktop-file-validate"):
        v = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
        ok, detail = v.returncode == 0, (v.stdout + v.stderr).strip() or "desktop-file-validate: ok"
    check("deb desktop entry", ok, detail)
    icons = [root / "usr/share/icons/hicolor/scalable/apps/fasfinder.svg",
             root / "usr/share/icons/hicolor/256x256/apps/fasfinder.png"]
    check("deb icons (svg + 256 px png)", all(p.is_file() for p in icons) and png_size(icons[1]) == (256, 256))
    notice = root / "usr" / "share" / "doc" / APP / "copyright"
    check("deb licence notice names the non-commercial 68-point model",
          notice.is_file() and "NON-COMMERCIAL" in notice.read_text() and "300-W" in notice.read_text())
    return root / "opt" / APP


def make_gallery(tmp: Path) -> tuple[Path, list[tuple[Path, str]]]:
    """gallery/<label>/<image> and the (query, expected label) pairs."""

    from PIL import Image
    from skimage import data

    gallery, queries_dir = tmp / "gallery", tmp / "queries"
    (gallery / "astronaut").mkdir(parents=True)
    queries_dir.mkdir()
    astro = gallery / "astronaut" / "astronaut.png"
    Image.fromarray(data.astronaut()).save(astro)
    queries = [(astro, "astronaut")]
    if LFW.is_dir():
        people = [p for p in sorted(LFW.iterdir()) if (p / f"{p.name}_0002.jpg").is_file()][:3]
        for person in people:
            (gallery / person.name).mkdir()
            shutil.copy(person / f"{person.name}_0001.jpg", gallery / person.name)
            shutil.copy(person / f"{person.name}_0002.jpg", queries_dir)
            queries.append((queries_dir / f"{person.name}_0002.jpg", person.name))
    return gallery, queries


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--deb", type=Path, help="the .deb to unpack and test (default: newest dist/fasfinder_*.deb)")
    g.add_argument("--bundle", type=Path, help="a one-folder bundle to run directly (e.g. dist/fasfinder)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--reference", type=Path, default=REPO / "packaging" / "smoke_reference.json",
                    help="numbers of the development build (packaging/smoke_numbers.py writes it)")
    args = ap.parse_args()

    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="fasfinder-smoke-"))
    print(f"smoke test in {tmp}", flush=True)
    try:
        if args.bundle is None and args.deb is None:
            debs = sorted(glob.glob(str(REPO / "dist" / f"{APP}_*.deb")), key=os.path.getmtime)
            if debs:
                args.deb = Path(debs[-1])
            else:
                args.bundle = REPO / "dist" / APP
        if args.deb is not None:
            print(f"package: {args.deb} ({args.deb.stat().st_size / 2**20:.0f} MiB)", flush=True)
            app_dir = install_deb(args.deb, tmp / "root")
        else:
            app_dir = args.bundle.resolve()
            print(f"bundle: {app_dir}", flush=True)
        exe = app_dir / APP
        if not check("executable present", exe.is_file() and os.access(exe, os.X_OK), str(exe)):
            return summary(t_start, tmp, args.keep)

        env = scratch_env(tmp)
        home = Path(env["HOME"])
        prefix = offline_prefix()
        check("network cut off for the app (unshare -rn)", bool(prefix),
              "no network namespace: the run is NOT proven offline" if not prefix else "")

        code, out, err, dt = run([str(exe), "engines", "--json"], env, 300, prefix)
        rows = json_lines(out)
        check("engines --json", code == 0 and bool(rows), f"exit {code}, {len(rows or [])} lines, {dt:.1f} s"
              + ("" if code == 0 else f"\n{err[-3000:]}"))
        listed = {r.get("name"): r.get("error") for r in rows or []}

        gallery, queries = make_gallery(tmp)
        db = tmp / "cases.db"
        code, out, err, dt = run([str(exe), "enroll", str(gallery), "--db", str(db), "--json"], env, 900, prefix)
        rows = json_lines(out) or []
        shape_ok = all({"path", "label", "record_id", "faces", "error", "liveness"} <= set(r) for r in rows)
        enrolled = [r for r in rows if r.get("record_id") is not None and not r.get("error")]
        check("enroll --json", code == 0 and shape_ok and len(enrolled) == len(queries),
              f"exit {code}, {len(enrolled)}/{len(queries)} images enrolled, {dt:.1f} s"
              + ("" if code == 0 else f"\n{err[-3000:]}"))

        cmd = [str(exe), "search", *[str(q) for q, _ in queries], "--db", str(db), "--json"]
        code, out, err, dt = run(cmd, env, 900, prefix)
        rows = json_lines(out) or []
        shape_ok = len(rows) == len(queries) and all(
            {"query", "error", "faces", "engine", "query_id", "timings_ms"} <= set(r) and not r["error"] and r["faces"]
            and all({"box", "detector", "liveness", "matches"} <= set(f) for f in r["faces"])
            and all({"rank", "label", "similarity", "confidence"} <= set(m) for f in r["faces"] for m in f["matches"])
            for r in rows)
        check("search --json: exit code and JSON shape", code == 0 and shape_ok,
              f"exit {code}, {len(rows)} result lines, {dt:.1f} s" + ("" if code == 0 else f"\n{err[-3000:]}"))
        hits = []
        for (q, want), r in zip(queries, rows):
            faces = r.get("faces") or []
            top = faces[0]["matches"][0] if faces and faces[0].get("matches") else {}
            hits.append(top.get("label") == want)
            live = (faces[0].get("liveness") or {}) if faces else {}
            print(f"    {q.name}: top match {top.get('label')!r} similarity {top.get('similarity')} "
                  f"confidence {top.get('confidence')}; liveness {live}", flush=True)
        check("search: every query's top match is the right person", bool(hits) and all(hits),
              f"{sum(hits)}/{len(hits)}")

        code, out, err, dt = run([str(exe), "liveness", str(queries[0][0]), "--json"], env, 300, prefix)
        rows = json_lines(out) or []
        live_ok = code == 0 and len(rows) == 1 and rows[0].get("faces") and rows[0]["faces"][0].get("liveness")
        check("liveness --json (bundled FAS model)", bool(live_ok), f"exit {code}, {dt:.1f} s"
              + ("" if code == 0 else f"\n{err[-3000:]}"))

        check_numbers(args.reference, app_dir, exe, env, gallery, queries, listed, tmp, prefix)

        shot = tmp / "app-offscreen.png"
        cmd = [str(exe), "--screenshot", str(shot), "--db", str(db), "--query", str(queries[0][0])]
        code, out, err, dt = run(cmd, env, 600, prefix)
        ok, detail = non_trivial_png(shot)
        check("desktop app, offscreen platform: --screenshot with a query", code == 0 and ok,
              f"exit {code}, {detail}, {dt:.1f} s" + ("" if code == 0 else f"\n{err[-3000:]}"))
        if shutil.which("xvfb-run"):
            shot = tmp / "app-xcb.png"
            env_x = dict(env, QT_QPA_PLATFORM="xcb")
            cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", str(exe), "--screenshot", str(shot), "--db", str(db)]
            code, out, err, dt = run(cmd, env_x, 600, [])  # Xvfb needs its socket: no network namespace here
            ok, detail = non_trivial_png(shot)
            check("desktop app, xcb platform under Xvfb: --screenshot", code == 0 and ok,
                  f"exit {code}, {detail}, {dt:.1f} s" + ("" if code == 0 else f"\n{err[-3000:]}"))
        else:
            print("[SKIP] xcb platform: xvfb-run not installed", flush=True)
        for name in ("app-offscreen.png", "app-xcb.png"):
            if (tmp / name).is_file():
                out_dir = REPO / "build" / "smoke"
                out_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy(tmp / name, out_dir / name)
        downloaded = [p for p in (home / "torch", home / ".cache" / "torch") if p.exists()]
        check("nothing downloaded into the torch cache", not downloaded, ", ".join(map(str, downloaded)))
        return summary(t_start, tmp, args.keep)
    except Exception:
        import traceback

        traceback.print_exc()
        check("smoke test ran to the end", False)
        return summary(t_start, tmp, args.keep)


def check_numbers(reference_path: Path, app_dir: Path, exe: Path, env: dict, gallery: Path,
                  queries: list[tuple[Path, str]], listed: dict, tmp: Path, prefix: list[str]) -> None:
    """Embeddings of every engine and liveness scores against the development build's (smoke_numbers.py)."""

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import smoke_numbers

    if not check("numbers: reference present", reference_path.is_file(),
                 f"{reference_path} (made by `.venv/bin/python packaging/smoke_numbers.py`)"):
        return
    reference = json.loads(reference_path.read_text(encoding="utf-8"))
    digest = smoke_numbers.models_digest(app_dir / "_internal" / "models")
    if not check("numbers: reference made with the bundled model files", digest == reference["models_digest"],
                 f"made with torch {reference['made_with']['torch']} on {reference['made_with']['date']}"
                 + ("" if digest == reference["models_digest"] else
                    "; STALE: the models changed, run packaging/smoke_numbers.py in the development venv")):
        return
    check("numbers: every engine that `engines --json` lists loads without error and is in the reference",
          bool(listed) and all(e is None for e in listed.values()) and set(listed) == set(reference["engines"]),
          f"listed {sorted(listed)}, errors {[n for n, e in listed.items() if e]}, "
          f"not in the reference {sorted(set(listed) - set(reference['engines']))}")
    present = {smoke_numbers.image_key(str(p)) for p in gallery.rglob("*") if p.is_file()}
    names = {q.name for q, _ in queries}
    wanted = {"engines": {e: {k: v for k, v in ref.items() if k in present} for e, ref in reference["engines"].items()},
              "liveness": {k: v for k, v in reference["liveness"].items() if k in names}}
    t0 = time.perf_counter()
    got = smoke_numbers.measure([str(exe)], env, gallery, [q for q, _ in queries], list(reference["engines"]), tmp,
                                prefix)
    for name, ok, detail in smoke_numbers.compare(wanted, got):
        check(name, ok, detail)
    print(f"    numbers measured in {time.perf_counter() - t0:.0f} s", flush=True)


def summary(t_start: float, tmp: Path, keep: bool) -> int:
    passed = sum(ok for _, ok, _ in results)
    print(f"== smoke test: {passed}/{len(results)} checks passed in {time.perf_counter() - t_start:.0f} s"
          + (f"; screenshots in {REPO / 'build' / 'smoke'}" if (REPO / "build" / "smoke").is_dir() else ""))
    for name, ok, _ in results:
        if not ok:
            print(f"   FAILED: {name}")
    if keep:
        print(f"   scratch folder kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if results and passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
