# Sourced there, on a lent GPU machine, by the device_*.sh scripts (after `bash scripts/device_prepare.sh`
# here): unpacks the GL loaders, installs the carried wheels, puts the carried data where this project's CPU
# runs keep it (/work/shared/data) and sets the environment. Stops the caller unless on that machine.
command -v nvidia-smi >/dev/null && [ -n "${OUT:-}" ] || { echo "run this on the lent GPU machine (device tool)"; exit 2; }
for f in .device/gl/*.deb; do dpkg -x "$f" /; done
ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .device/whl/*.whl || exit 1
# the NVIDIA EGL vendor file, where glvnd does not find it by itself
nv=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$nv" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$nv
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MIXREAL_DATA=/work/shared/data MIXREAL_CACHE=/tmp/mixreal-cache
mkdir -p /work/shared/data /work/exp
cp -r .device/data/. /work/shared/data/
cp -r .device/exp/data /work/exp/ 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, moderngl; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'moderngl', moderngl.__version__)"
