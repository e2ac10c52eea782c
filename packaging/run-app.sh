#!/usr/bin/env bash
# Set up Delineo (first run only) and start the viewer.
# Usage: bash packaging/run-app.sh [IMAGE] [--labels MASK] [--ground-truth GT] [--demo]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/packaging/setup.sh"
# Without a display the viewer says so and exits (status 2). DELINEO_VIRTUAL_SCREEN=1
# runs it on an invisible virtual screen instead (for screenshots and checks).
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ -z "${QT_QPA_PLATFORM:-}" ] \
   && [ "${DELINEO_VIRTUAL_SCREEN:-0}" = "1" ]; then
  echo "delineo: no display; running on an invisible virtual screen (xvfb-run), as asked." >&2
  exec xvfb-run -a -s "-screen 0 1600x1000x24" "$VENV/bin/delineo" "$@"
fi
exec "$VENV/bin/delineo" "$@"
