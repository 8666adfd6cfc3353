"""Does on-the-fly rendering keep up with training?

    python3 benchmarks/stream_vs_train.py

Measures, on this machine, in one run:
  1. images/s delivered by RenderStream alone (2 DataLoader workers, 32 px, all variations), in whole
     rendered batches as MixedBatches draws them (the target), and image by image through a DataLoader's
     collation (what a hand-written loop over single images gets; shown for reference);
  2. images/s consumed by ResNet-20 training steps alone (batch 128, SGD, random inputs);
  3. training at real:synthetic 1:7 with synthetic images read from a pre-rendered disk set;
  4. the same with synthetic images rendered on the fly by RenderStream (2 workers).
Real images: CIFAR-DA c10-da4 built from $MIXREAL_DATA/cifar; models: $MIXREAL_DATA/meshes (classes
airplane, car, horse, truck). Targets: (4) within 10 % of (3), and (1) at least 5 x (2) with the renderer's
default settings (anti-aliasing included), so that rendering never holds training up. Exits 1 when missed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLASSES = ["airplane", "car", "horse", "truck"]
TARGET = 0.90
STREAM_TARGET = 5.0  # stream alone / training step alone


def data_root() -> Path:
    return Path(os.environ.get("MIXREAL_DATA", REPO.parent / "shared" / "data"))


def real_set():
    from train.cifar import load_cifar
    from train.cifar_da import Counts, build
    from train.classes import load_class_map
    from train.datasets import RealDataset

    sources = {"cifar10": load_cifar(data_root() / "cifar" / "cifar10-train-subset.npz", "cifar10")}
    splits, _ = build(load_class_map("c10-da4"), sources, Counts(), seed=0)
    tr = splits["train"]
    return RealDataset(tr.images, tr.labels, tr.class_names)


class Trainer:
    """The training step the trainers will use: uint8 in, normalised on the fly, channels_last."""

    def __init__(self, classes: int):
        from train.models import ResNet20

        torch.manual_seed(0)
        self.model = ResNet20(classes).to(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        x = images.float().div_(255).sub_(0.5).div_(0.25).contiguous(memory_format=torch.channels_last)
        loss = torch.nn.functional.cross_entropy(self.model(x), labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def timed(batches, n: int, warmup: int, step=None) -> float:
    """images/s over n batches after warmup batches (worker start-up, first renders)."""
    it = iter(batches)
    for _ in range(warmup):
        b = next(it)
        if step:
            step(b)
    t0, images = time.perf_counter(), 0
    for _ in range(n):
        b = next(it)
        if step:
            step(b)
        images += len(b[1])
    return images / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=24, help="timed batches per measurement")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from renderer import RenderConfig, VariationConfig
    from train.datasets import RenderedDataset, RenderStream
    from train.mixing import MixedBatches, stream_loader

    meshes = data_root() / "meshes"
    if not meshes.is_dir():
        print(f"{meshes}: shared meshes not found (set MIXREAL_DATA)", file=sys.stderr)
        return 2
    real = real_set()
    cfg = RenderConfig(size=32, batch_size=128, variations=VariationConfig.parse("all"))  # default supersampling
    filtered = Path(tempfile.mkdtemp(prefix="mixreal-bench-models-"))
    for c in CLASSES:  # the four c10-da4 classes only, so every render is a usable training image
        (filtered / c).symlink_to((meshes / c).resolve())
    results = {}

    # the stream alone over 4x the batches: 24 rendered batches pass in under a second here, too short to
    # read past this VM's run-to-run spread
    stream = RenderStream(filtered, cfg, class_names=CLASSES, block=128)
    results["stream alone"] = timed(stream_loader(stream, batch_size=None, workers=args.workers),
                                    4 * args.batches, 3)
    stream = RenderStream(filtered, cfg, class_names=CLASSES)
    results["stream alone, image by image"] = timed(stream_loader(stream, batch_size=128, workers=args.workers),
                                                    4 * args.batches, 3)

    trainer = Trainer(len(CLASSES))
    fake = (torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 4, (128,)))
    results["train step alone"] = timed(iter(lambda: fake, None), args.batches, 3, lambda b: trainer.step(*b))

    disk = Path(tempfile.mkdtemp(prefix="mixreal-bench-render-"))
    from click.testing import CliRunner

    from cli import main as cli_main

    per_model = (args.batches + 4) * 112 // 14 + 1  # enough synthetic images for every batch
    r = CliRunner().invoke(cli_main, ["render", "--models", str(filtered), "--per-model", str(per_model),
                                      "--size", "32", "--out", str(disk), "--quiet"])
    if r.exit_code:
        print(r.output, file=sys.stderr)
        return 2
    on_disk = RenderedDataset(disk, class_names=CLASSES)
    trainer = Trainer(len(CLASSES))
    mixed = MixedBatches(real, on_disk, "1:7", batch_size=128, workers=args.workers, epoch_batches=10**6)
    results["train 1:7, disk set"] = timed(mixed, args.batches, 3, lambda b: trainer.step(b[0], b[1]))

    trainer = Trainer(len(CLASSES))
    mixed = MixedBatches(real, RenderStream(filtered, cfg, class_names=CLASSES), "1:7", batch_size=128,
                         workers=args.workers, epoch_batches=10**6)
    results["train 1:7, RenderStream"] = timed(mixed, args.batches, 3, lambda b: trainer.step(b[0], b[1]))

    ratio = results["train 1:7, RenderStream"] / results["train 1:7, disk set"]
    print(f"\nRenderStream vs training ({datetime.date.today().isoformat()}; {platform.node()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.workers} workers, 32 px, all variations, supersample {cfg.supersample}, batch 128, ResNet-20)\n")
    print("| measurement | images/s |")
    print("|---|---:|")
    for k, v in results.items():
        print(f"| {k} | {v:,.0f} |")
    headroom = results["stream alone"] / results["train step alone"]
    print(f"\non-the-fly / disk training speed: {ratio:.2f} (target >= {TARGET:.2f})")
    print(f"stream alone / training step alone: {headroom:.1f}x (target >= {STREAM_TARGET:.0f}x)")
    return 0 if ratio >= TARGET and headroom >= STREAM_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
