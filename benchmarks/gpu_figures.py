"""The GPU figures, in one run on a machine with an NVIDIA GPU.

    python3 benchmarks/gpu_figures.py --models MESHES [--sizes 32 64 128 224] [--workers 8] [--seconds 3]
        [--samples OUT.npz]                            # and, on another machine: --compare OUT.npz

1. Which device renders: the EGL devices with their CUDA ordinals (EGL_CUDA_DEVICE_NV), and what
   `--device 0` maps to.
2. Render images/s on GPU 0 at each size (every variation, today's defaults, median of 3 timed passes) with
   where one process's time goes, and N processes rendering on the same GPU at 64 px (their sum: one
   process is bound by its CPU work, so a GPU's throughput takes several).
3. RenderStream (DataLoader workers, 32 px) against ResNet-20 training steps on the GPU (batch 128, the
   trainer's step: uint8 to the device, channels_last, bf16 autocast): the stream must keep the GPU busy.
4. CycleGAN iterations/s (benchmarks/gan_speed.py, the appendix's networks at batch 144 and 5 G + 1 D
   updates per iteration) and the time one paper-scale stage takes.
Target: >= 50,000 images/s at 64 px on one GPU (an H100 in the scale issue), by one process or several
together. Exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
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


def _renderer(models: str, size: int, device: int | None, without: str = ""):
    """A renderer of today's defaults at `size` px; `without`: a comma list of variations switched off, or
    "supersample" (drawn at the output size, no box filter)."""
    from dataclasses import replace

    from renderer import ModelLibrary, RenderConfig, Renderer
    from renderer.variations import VARIATION_NAMES

    config = RenderConfig(size=size, seed=0, device=device)
    off = {w for w in without.split(",") if w}
    if "supersample" in off:
        config = replace(config, supersample=1)
    if off - {"supersample"}:
        config = replace(config, variations=config.variations.only(
            tuple(n for n in config.variations.enabled if n not in off and n in VARIATION_NAMES)))
    lib = ModelLibrary.load(models, on_skip=lambda m: None, classes=CLASSES)
    return Renderer(lib, config)


def render_rate(models: str, size: int, seconds: float, device: int = 0, passes: int = 3,
                split: bool = False, profile: bool = False, without: str = "", barrier=None) -> float:
    """Median images/s of `passes` timed passes; with split=True also prints where one more pass's time goes
    (each GL pass waited for: PassTimer, wall and GPU time), with profile=True the top Python functions of a
    profiled pass. `barrier`: timing starts when every process sharing it is ready."""
    r = _renderer(models, size, device, without)
    n = r.batch_capacity
    start = 0

    def batch() -> None:
        nonlocal start
        r.render([r.spec_at(i) for i in range(start, start + n)])
        start += n

    for _ in range(2):  # warm-up: shaders, atlases
        batch()
    if barrier is not None:
        barrier.wait()
    rates = []
    for _ in range(passes):
        done, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            batch()
            done += n
        rates.append(done / (time.perf_counter() - t))
    if split:
        timer, t = r.time_passes(), time.perf_counter()
        for _ in range(8):
            batch()
        total = time.perf_counter() - t
        r.time_passes(False)
        gpu = sum(timer.gpu_seconds.values())
        print(f"    {size} px{' without ' + without if without else ''}: {statistics.median(rates):,.0f} img/s; "
              f"waited for pass by pass {8 * n / total:,.0f} img/s, GPU busy {gpu / total:.0%} "
              f"(GPU-only ceiling {8 * n / gpu if gpu else float('nan'):,.0f} img/s)")
        print("      wall: " + "; ".join(f"{k} {v / total:.0%}" for k, v in
                                         sorted(timer.seconds.items(), key=lambda kv: -kv[1])))
        print("      GPU us/image: " + "; ".join(f"{k} {v / (8 * n) * 1e6:.1f}" for k, v in
                                                sorted(timer.gpu_seconds.items(), key=lambda kv: -kv[1])
                                                if v / (8 * n) > 0.05e-6), flush=True)
        st = r.stats()
        print(f"      {st['models_uploaded']} models on the GPU, {st['faces_drawn']:,} faces drawn of "
              f"{st['faces_full']:,}; batches of {n}")
    if profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        for _ in range(8):
            batch()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
        print("\n".join("      " + line for line in out.getvalue().splitlines() if line.strip())[:4000])
    r.release()
    return statistics.median(rates)


def processes_rate(models: str, count: int, size: int, seconds: float) -> list[float]:
    """`count` processes rendering on GPU 0 at once (timing starts when all are warm): each one's img/s."""
    ctx = mp.get_context("spawn")
    q, barrier = ctx.Queue(), ctx.Barrier(count)
    procs = [ctx.Process(target=_child, args=(models, size, seconds, q, barrier)) for _ in range(count)]
    for p in procs:
        p.start()
    rates = [q.get() for _ in procs]
    for p in procs:
        p.join()
    return rates


def sample_images(models: str, size: int = 64, count: int = 64, device: int | None = 0):
    """The first `count` images of seed 0 at `size` px, and the GL renderer that drew them."""
    r = _renderer(models, size, device)
    images = r.render([r.spec_at(i) for i in range(count)])
    gl = r.ctx.info["GL_RENDERER"]
    r.release()
    return images, gl


def save_samples(models: str, path: str) -> None:
    """This GPU's samples, for comparing its pixels with another backend's (`--compare PATH` there)."""
    import numpy as np

    images, gl = sample_images(models)
    np.savez_compressed(path, images=images, gl=np.array(gl))


def compare_samples(models: str, path: str) -> None:
    """This machine's render of the samples in `path` against them: how far two backends' pixels differ."""
    import numpy as np

    theirs = np.load(path)
    images = theirs["images"]
    mine, gl = sample_images(models, size=images.shape[1], count=len(images), device=None)
    diff = np.abs(mine.astype(np.int16) - images.astype(np.int16))
    same = (diff.reshape(len(diff), -1).max(axis=1) == 0).sum()
    print(f"{theirs['gl']} against {gl}: {same} of {len(images)} images byte-identical; per pixel channel "
          f"mean |diff| {diff.mean():.2f}, {np.mean(diff > 8):.2%} over 8 levels, max {diff.max()}")


def _child(models: str, size: int, seconds: float, q, barrier) -> None:
    q.put(render_rate(models, size, seconds, passes=1, barrier=barrier))


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
    ap.add_argument("--samples", help="also save the first 64 images at 64 px here (.npz)")
    ap.add_argument("--compare", help="on any machine: compare a --samples file with this machine's render")
    cores = os.cpu_count() or 2
    ap.add_argument("--processes", type=int, nargs="+", default=sorted({2, max(2, cores // 2), max(2, cores * 3 // 4)}),
                    help="process counts to render with at once on the one GPU, at 64 px (default: 2, half and "
                         "three quarters of the CPU cores)")
    ap.add_argument("--without", nargs="*", default=[],
                    help="64 px again with each of these off (a comma list of variations, or supersample)")
    ap.add_argument("--breakdown", action="store_true",
                    help="only where the time goes: --without and --processes at 64 px, no sizes/stream/GAN")
    args = ap.parse_args()
    if args.compare:
        compare_samples(args.models, args.compare)
        return 0
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
    best_64 = 0.0  # one process or several on the GPU together
    for size in [] if args.breakdown else args.sizes:
        rates[size] = render_rate(args.models, size, args.seconds, split=True, profile=True)
        print(f"  render {size} px: {rates[size]:,.0f} img/s (median of 3)", flush=True)
        if size == 64:
            best_64 = rates[size]
    for without in args.without:
        render_rate(args.models, 64, args.seconds, passes=1, split=True, without=without)
    if args.samples:
        save_samples(args.models, args.samples)
    for count in args.processes:
        each = processes_rate(args.models, count, 64, args.seconds * 2)
        best_64 = max(best_64, sum(each))
        print(f"  {count} process(es) on one GPU, 64 px: {sum(each):,.0f} img/s "
              f"({' + '.join(f'{b:,.0f}' for b in each)})", flush=True)
    if not args.breakdown:
        s, tr = stream_rate(args.models, args.workers), train_rate()
        print(f"  RenderStream ({args.workers} workers, 32 px): {s:,.0f} img/s; ResNet-20 training on the GPU: "
              f"{tr:,.0f} img/s; ratio {s / tr:.2f}", flush=True)
    if not (args.skip_gan or args.breakdown):
        for extra in (["--batch", "144", "--blocks", "9", "--g-updates", "5"],
                      ["--batch", "32", "--blocks", "3", "--g-updates", "1"]):
            subprocess.run([sys.executable, str(REPO / "benchmarks" / "gan_speed.py"), "--device", "cuda",
                            "--steps", "20", *extra], check=False)
    ok = best_64 >= TARGET_64
    print(f"  64 px target >= {TARGET_64:,} img/s on the GPU: best {best_64:,.0f}, {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
