#!/usr/bin/env bash
# Set up (first run only) and start the FASFinder desktop app on the default gallery.
# Extra arguments go to main.py, e.g. ./run-app.sh --db my.db  or  ./run-app.sh search photo.jpg --json
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
if [ $# -eq 0 ] && [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  mkdir -p out
  echo "run-app: no display found; starting the app on a virtual screen (demo gallery and a demo search) and saving a screenshot to out/app.png" >&2
  exec xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python main.py --screenshot out/app.png --demo --curves
fi
exec .venv/bin/python main.py "$@"
