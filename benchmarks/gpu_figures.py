"""The GPU figures, in one run on a machine with an NVIDIA GPU.

    python3 benchmarks/gpu_figures.py --models MESHES [--sizes 32 64 128 224] [--workers 8] [--seconds 3]

1. Which device renders: the EGL devices with their CUDA ordinals (EGL_CUDA_DEVICE_NV), and what
   `--device 0` maps to.
2. Render images/s on GPU 0 at each size (every variation, today's defaults, median of 3 timed passes),
   and two processes rendering on the same GPU at 64 px (their sum).
3. RenderStream (DataLoader workers, 32 px) against ResNet-20 training steps on the GPU (batch 128, the
   trainer's step: uint8 to the device, channels_last, bf16 autocast): the stream must keep the GPU busy.
4. CycleGAN iterations/s (benchmarks/gan_speed.py, the appendix's networks at batch 144 and 5 G + 1 D
   updates per iteration) and the time one paper-scale stage takes.
Target: >= 50,000 images/s at 64 px on an H100 (rendering issue). Exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_64 = 50_000
CLASSES = ["airplane", "car", "horse", "truck"]


def render_rate(models: str, size: int, seconds: float, device: int = 0, passes: int = 3) -> float:
    from renderer import ModelLibrary, RenderConfig, Renderer

    lib = ModelLibrary.load(models, on_skip=lambda m: None, classes=CLASSES)
    r = Renderer(lib, RenderConfig(size=size, seed=0, device=device))
    n = r.batch_capacity
    start = 0
    for _ in range(2):  # warm-up: shaders, atlases
        r.render([r.spec_at(i) for i in range(start, start + n)])
        start += n
    rates = []
    for _ in range(passes):
        done, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            r.render([r.spec_at(i) for i in range(start, start + n)])
            start += n
            done += n
        rates.append(done / (time.perf_counter() - t))
    r.release()
    return statistics.median(rates)


def _child(models: str, size: int, seconds: float, q) -> None:
    q.put(render_rate(models, size, seconds, passes=1))


def stream_rate(models: str, workers: int, batches: int = 60) -> float:
    from renderer import RenderConfig
    from train.datasets import RenderStream
    from train.mixing import stream_loader

    stream = RenderStream(models, RenderConfig(size=32, seed=0, device=0), class_names=CLASSES)
    it = iter(stream_loader(stream, batch_size=128, workers=workers))
    for _ in range(2 * workers):
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * 128 / (time.perf_counter() - t)


def train_rate(steps: int = 100) -> float:
    from torch.nn import functional as F

    from train.loop import normalise
    from train.models import build_model

    dev = torch.device("cuda")
    model = build_model("resnet20", 4, 32).to(dev, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    images = torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 4, (128,))

    def step():
        x = normalise(images.to(dev, non_blocking=True), 32)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), labels.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(10):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * 128 / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 224])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--skip-gan", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU here: these are GPU figures")
        return 2
    from renderer import create_context
    from renderer.devices import egl_devices, resolve

    print(f"gpu_figures | {datetime.datetime.now():%Y-%m-%d %H:%M} | {torch.cuda.get_device_name(0)} | "
          f"torch {torch.__version__}")
    for d in egl_devices():
        print(f"  EGL device {d.index}: CUDA {d.cuda}; {'EGL_NV_device_cuda' in d.extensions and 'NV' or d.extensions}")
    print(f"  --device 0 -> {resolve(0)}")
    ctx = create_context(0)
    print(f"  context: {ctx.extra['device']}")
    ctx.release()
    rates = {}
    for size in args.sizes:
        rates[size] = render_rate(args.models, size, args.seconds)
        print(f"  render {size} px: {rates[size]:,.0f} img/s (median of 3)", flush=True)
    q = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=_child, args=(args.models, 64, args.seconds * 2, q))
             for _ in range(2)]
    for p in procs:
        p.start()
    both = [q.get() for _ in procs]
    for p in procs:
        p.join()
    print(f"  two processes on one GPU, 64 px: {sum(both):,.0f} img/s ({' + '.join(f'{b:,.0f}' for b in both)})")
    s, tr = stream_rate(args.models, args.workers), train_rate()
    print(f"  RenderStream ({args.workers} workers, 32 px): {s:,.0f} img/s; ResNet-20 training on the GPU: "
          f"{tr:,.0f} img/s; ratio {s / tr:.2f}", flush=True)
    if not args.skip_gan:
        for extra in (["--batch", "144", "--blocks", "9", "--g-updates", "5"],
                      ["--batch", "32", "--blocks", "3", "--g-updates", "1"]):
            subprocess.run([sys.executable, str(REPO / "benchmarks" / "gan_speed.py"), "--device", "cuda",
                            "--steps", "20", *extra], check=False)
    ok = 64 not in rates or rates[64] >= TARGET_64
    print(f"  64 px target >= {TARGET_64:,} img/s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
