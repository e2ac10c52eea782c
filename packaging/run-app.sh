#!/usr/bin/env bash
# Set up Delineo (first run only) and start the viewer.
# Usage: bash packaging/run-app.sh [IMAGE] [--labels MASK] [--ground-truth GT] [--demo]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/packaging/setup.sh"
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ -z "${QT_QPA_PLATFORM:-}" ]; then
  echo "delineo: no display found; starting on a virtual screen (xvfb-run)." >&2
  exec xvfb-run -a -s "-screen 0 1600x1000x24" "$VENV/bin/delineo" "$@"
fi
exec "$VENV/bin/delineo" "$@"
