#!/usr/bin/env bash
# Installs everything mixreal needs on a fresh Debian/Ubuntu machine (run as root or with sudo):
# Mesa's headless EGL (only when no EGL context can be made) and the Python package with its
# dependencies; with --test also what the tests need (pytest, webdataset, timm, Ray, Playwright and
# Debian's chromium for the studio's browser test). Safe to run again: it installs only what is missing.
set -euo pipefail
TEST=0
[ "${1:-}" = "--test" ] && TEST=1
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo

apt_install() {
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v "$PY" >/dev/null || ! "$PY" -m pip --version >/dev/null 2>&1; then
    apt_install python3 python3-pip python3-venv
fi

egl_ok() {
    "$PY" - <<'PY' >/dev/null 2>&1
import moderngl
moderngl.create_context(standalone=True, backend="egl").release()
PY
}

# Debian's own python3 is "externally managed" (PEP 668): on a machine set up for this job, install anyway
PIP_FLAGS=(-q)
if "$PY" -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
    PIP_FLAGS+=(--break-system-packages)
fi
# torch first, pinned: the pair this project is built and tested with
"$PY" -m pip install "${PIP_FLAGS[@]}" torch==2.14.1 torchvision==0.29.1
if [ "$TEST" = 1 ]; then
    "$PY" -m pip install "${PIP_FLAGS[@]}" -e ".[test,ray]"
    command -v chromium >/dev/null || apt_install chromium
else
    "$PY" -m pip install "${PIP_FLAGS[@]}" -e .
fi
if ! egl_ok; then
    echo "setup: no headless EGL yet; installing Mesa's EGL (libegl1 libegl-mesa0 libgl1-mesa-dri)"
    apt_install libegl1 libegl-mesa0 libgl1-mesa-dri libgl1
    egl_ok || { echo "setup: EGL still unavailable after installing Mesa" >&2; exit 1; }
fi
# pyenv installs console scripts behind shims that must be refreshed
command -v pyenv >/dev/null && pyenv rehash || true
echo "setup: ok ($("$PY" -c 'import moderngl; c=moderngl.create_context(standalone=True, backend="egl"); print(c.info["GL_RENDERER"])'))"
