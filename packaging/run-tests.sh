#!/usr/bin/env bash
# Set up Delineo (first run only), lint, and run the whole test suite offscreen.
# Extra arguments go to pytest (e.g. -k dicom, -m "not slow"; -n 0 runs in one process).
# The tests run in parallel workers (pytest-xdist), one per CPU core and at most 4
# (each holds whole-head volumes; DELINEO_TEST_WORKERS sets the number).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/packaging/setup.sh"
cd "$ROOT"
export QT_QPA_PLATFORM=offscreen
"$VENV/bin/ruff" check .
WORKERS="${DELINEO_TEST_WORKERS:-$("$VENV/bin/python" -c \
  'import os; print(max(1, min(4, len(os.sched_getaffinity(0)))))')}"
set +e
"$VENV/bin/python" -m pytest -n "$WORKERS" --dist loadfile "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "run-tests: pytest collected no tests; treating that as a failure" >&2
  exit 1
fi
exit "$status"
