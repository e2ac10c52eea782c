#!/usr/bin/env bash
# Delineo set-up on a fresh machine: Qt's system libraries, a virtual
# environment in .venv with torch==2.13.0 (CPU) and Delineo with its test
# extras, and the demo brain in the user cache. Safe to run again: every step
# is skipped when already done. Sourced by packaging/run-app.sh and
# packaging/run-tests.sh; not meant to be called on its own.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DELINEO_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

log() { printf '[delineo setup] %s\n' "$*" >&2; }
# pip warns about every unused local index folder configured on some machines; hide that noise.
quiet_pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file" >&2); }

# Qt (PySide6) needs these shared libraries; Xvfb and the xcb extras let the
# app run on a virtual screen for screenshots. Orthanc is the PACS the tests
# start on loopback (the Debian service is stopped and disabled right away:
# the tests run their own server with temporary storage).
QT_DEBS=(libegl1 libgl1 libopengl0 libglib2.0-0 libxkbcommon0 libxkbcommon-x11-0
         libfontconfig1 libfreetype6 libdbus-1-3 libx11-xcb1 libxcb-cursor0
         libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
         libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-xfixes0 libsm6 libice6
         fonts-dejavu-core xvfb xauth
         orthanc orthanc-dicomweb)  # a real PACS on 127.0.0.1 for the DICOMweb tests

install_system_libraries() {
  command -v dpkg-query >/dev/null 2>&1 || { log "not a Debian system: skipping apt"; return 0; }
  local missing=()
  for pkg in "${QT_DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing system packages: ${missing[*]} (run as root or install them with apt-get)"
    return 0
  fi
  log "installing system libraries for Qt: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The tests start their own Orthanc; the system service must not hold port 4242/8042.
  if command -v service >/dev/null 2>&1; then service orthanc stop >/dev/null 2>&1 || true; fi
}

install_python_packages() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.delineo-installed"
  local want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  log "installing torch==2.13.0 (CPU) and Delineo into $VENV"
  quiet_pip install --quiet --upgrade pip
  # Pin torch first: an unpinned torch would pull several GB of CUDA packages.
  quiet_pip install --quiet "torch==2.13.0"
  quiet_pip install --quiet -e "$ROOT[test,cluster]"  # cluster: Ray, for the batch tests
  echo "$want" > "$stamp"
}

fetch_demo_data() {
  # The MNI152 template comes from the nilearn wheel on PyPI (a package download).
  "$VENV/bin/python" -c "from engine.data.mni import ensure_template; ensure_template()" \
    || log "could not fetch the demo brain now; it will be fetched on first use"
}

install_system_libraries
install_python_packages
fetch_demo_data
