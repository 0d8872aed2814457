#!/usr/bin/env bash
# Headless rendering for MuJoCo: make sure OSMesa (libosmesa6) is installed, where this user can.
#
# Called by `make demo` and `make test` (and so by CI). Rendering is optional: only the evaluation
# video and the rendering tests need it. So this never fails the build:
#   - libOSMesa already loads            -> nothing to do;
#   - root (or passwordless sudo) + apt  -> apt-get install libosmesa6;
#   - otherwise                          -> one line saying rendering is off and how to enable it.
# At run time `import envs` picks the backend (envs/gl.py): OSMesa when it loads, else EGL on a
# GPU, else none.
set -u
PY=${1:-python3}

has_osmesa() {
    "$PY" -c 'import ctypes, ctypes.util, sys
p = ctypes.util.find_library("OSMesa")
try:
    ctypes.CDLL(p) if p else sys.exit(1)
except OSError:
    sys.exit(1)' 2>/dev/null
}

has_osmesa && exit 0

if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
    fi
    if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
        echo "installing libosmesa6 for headless rendering (apt-get)..."
        $SUDO apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libosmesa6 >/dev/null 2>&1 || true
        has_osmesa && exit 0
        echo "note: rendering is off: apt-get could not install libosmesa6; evaluation videos are skipped (everything else runs)."
        exit 0
    fi
fi
echo "note: rendering is off: libOSMesa is not installed and this user cannot install system packages; evaluation videos are skipped (everything else runs). To enable: sudo apt-get install libosmesa6"
exit 0
