#!/usr/bin/env bash
# There, on a lent GPU machine (after `bash scripts/device_prepare.sh` here; docs/DESIGN.md "On a lent GPU"):
# the scale issue's GPU figures in one call.
#
#   run(command="bash scripts/device_figures.sh [GPU_FIGURES_OPTIONS]", carry=[".device"], timeout_s=420)
#
# e.g. `--breakdown --without sensor supersample --processes 1 2 4 8` for where the 64 px time goes only.
# Writes $OUT/figures.txt (benchmarks/gpu_figures.py: device mapping, render img/s per size with where the
# time goes, two processes, stream against ResNet-20, CycleGAN speed), $OUT/tests.txt (tests/test_devices.py
# on the real driver) and $OUT/samples_gpu.npz (64 images to compare with llvmpipe's here:
# `python3 benchmarks/gpu_figures.py --models MESHES --compare samples_gpu.npz`).
set -uo pipefail
start=$(date +%s)
# shellcheck source=scripts/device_env.sh
source scripts/device_env.sh
[ $# -gt 0 ] || python3 -m pytest -q -p no:cacheprovider tests/test_devices.py 2>&1 | tee "$OUT/tests.txt" | tail -3
python3 benchmarks/gpu_figures.py --models "$MIXREAL_DATA/meshes" --seconds "${SECONDS_PER_PASS:-2}" \
  --samples "$OUT/samples_gpu.npz" "$@" 2>&1 | tee "$OUT/figures.txt"
echo "device_figures: $(( $(date +%s) - start )) s in all"
