"""Training images/s: mixreal's loop against a plain PyTorch loop, same model, same data, same run.

    python3 benchmarks/train_speed.py [--model resnet20] [--batches 30]

The plain loop is the textbook one: a DataLoader over a TensorDataset of float images, the model in the
default memory format, `loss.item()` logged every step. mixreal's step (train/loop.py) keeps images as
uint8 until the step, normalises on the fly, uses channels_last, accumulates statistics on the device
(no host synchronisation per step), bfloat16 autocast on GPU and, with --compile, torch.compile.
Exits 1 if mixreal's loop is slower than the plain one.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def plain(model_name: str, images: torch.Tensor, labels: torch.Tensor, batches: int, device) -> float:
    from train.models import build_model

    torch.manual_seed(0)
    model = build_model(model_name, 10, images.shape[-1]).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    data = torch.utils.data.TensorDataset(images.float().div(255).sub(0.5).div(0.25), labels)
    loader = torch.utils.data.DataLoader(data, batch_size=128, shuffle=True, drop_last=True)
    seen, t0, losses = 0, None, []
    while seen < (batches + 3) * 128:
        for i, (x, y) in enumerate(loader):
            if t0 is None and i == 3:
                t0, seen = time.perf_counter(), 0
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())  # the usual per-step logging: a host sync every step
            seen += len(y)
            if t0 is not None and seen >= batches * 128:
                return seen / (time.perf_counter() - t0)
    return seen / (time.perf_counter() - t0)


def ours(model_name: str, images: torch.Tensor, labels: torch.Tensor, batches: int, device, compile_: bool) -> float:
    from train.config import preset
    from train.loop import normalise
    from train.models import build_model

    cfg = preset(model_name, "quick", image_size=images.shape[-1])
    torch.manual_seed(0)
    model = build_model(model_name, 10, images.shape[-1]).to(device, memory_format=torch.channels_last)
    runner = torch.compile(model) if compile_ else model
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    amp = device.type == "cuda"
    loss_sum = torch.zeros((), device=device)
    n = len(labels)
    seen, t0 = 0, None
    for step in range(batches + 3):
        if step == 3:
            t0, seen = time.perf_counter(), 0
        idx = torch.randint(0, n, (128,))
        x = normalise(images[idx].to(device, non_blocking=True), cfg.image_size)
        y = labels[idx].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(runner(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach()
        seen += len(y)
    loss_sum.item()  # one sync at the end, as the trainer does once per epoch
    return seen / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet20", choices=["resnet20", "alexnet"])
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = 32 if args.model == "resnet20" else 224
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2048, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (2048,), generator=g)
    a = plain(args.model, images, labels, args.batches, device)
    b = ours(args.model, images, labels, args.batches, device, args.compile)
    print(f"\nTraining speed, {args.model}, batch 128, {size} px ({datetime.date.today().isoformat()}; "
          f"{platform.node()}, {os.cpu_count()} CPUs, {device}, torch {torch.__version__})\n")
    print("| loop | images/s |\n|---|---:|")
    print(f"| plain PyTorch | {a:,.0f} |\n| mixreal{' (compiled)' if args.compile else ''} | {b:,.0f} |")
    print(f"\nratio {b / a:.2f}")
    return 0 if b >= a else 1


if __name__ == "__main__":
    sys.exit(main())
