#!/usr/bin/env bash
# Here, before a lent GPU machine is used (docs/DESIGN.md, "On a lent GPU"): gathers into .device/ (git-ignored
# through .git/info/exclude, carried with `carry: [".device"]`) what that machine lacks and cannot download:
# the Python wheels mixreal needs beyond its image (Python 3.12, PyTorch already there), the GL loader debs
# for EGL on the NVIDIA driver, and the data a table needs (the machine sees neither ../shared nor PyPI).
#
#   bash scripts/device_prepare.sh [EXPERIMENT_OUT]      # default /work/exp
#
# EXPERIMENT_OUT is a `mixreal experiment` --out on this machine: its built data split is carried, so the
# device builds nothing from CIFAR files. Stays under the 64 MiB a call may carry (checked at the end).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
exp=${1:-/work/exp}
data=${MIXREAL_DATA:-../shared/data}
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
rm -rf .device && mkdir -p .device/whl .device/gl .device/data .device/exp

platforms=()
for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64)
for pkg in moderngl glcontext pyrr multipledispatch trimesh fast-simplification; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .device/whl "$pkg" 2>/dev/null \
  || python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .device/whl "$pkg"
done

o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
mkdir -p /tmp/amd64/partial
# shellcheck disable=SC2086
apt-get $o update -qq
# shellcheck disable=SC2086
(cd .device/gl && apt-get $o download -qq libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)

# the data: the classes the c10-da4 tables use, the real-photo backgrounds, the built split
mkdir -p .device/data/meshes
for cls in airplane car horse truck; do cp -r "$data/meshes/$cls" .device/data/meshes/; done
cp "$data/meshes/manifest.csv" .device/data/meshes/ 2>/dev/null || true
cp -r "$data/backgrounds" .device/data/backgrounds
if [ -d "$exp/data" ]; then cp -r "$exp/data" .device/exp/data; fi

size=$(du -sm .device | cut -f1)
echo "device_prepare: .device is ${size} MiB ($(ls .device/whl | wc -l) wheels, $(ls .device/gl | wc -l) debs)"
[ "$size" -lt 64 ] || { echo "device_prepare: over the 64 MiB a call carries" >&2; exit 1; }
