"""CycleGAN training speed: mixreal's step against a plain PyTorch CycleGAN step, in the same run.

    python3 benchmarks/gan_speed.py [--batch 32] [--blocks 9] [--g-updates 5] [--steps 3] [--device auto]

Both train the appendix's networks (c7s1-32 ... R128 x blocks ... c7s1-3 generators, C64-C128 PatchGANs at
32 px) with the same losses (least squares + 10 x cycle + 0.1 x L1), the same schedule (g_updates generator
updates, then one discriminator update with an image pool) and the same batch. The plain step is written as
the CycleGAN reference code does it: NCHW tensors and the default Adam. mixreal's is train.cyclegan.train_step
on a stage from new_stage: channels_last memory format, instance norm through GroupNorm's kernels (no
NCHW copies) and the fused Adam. Prints iterations/s of both and
the ratio; the target is >= 1.2 x on CPU. On a GPU it also prints the time one paper-scale stage would take
(1,500 pre-training steps + 40,000 iterations at batch 144). Exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from train.cyclegan import CycleGanConfig, ImagePool, d_targets, new_stage, train_step  # noqa: E402
from train.gan_networks import GanNetworks, InstanceNorm, build_discriminator, build_generator  # noqa: E402
from train.loop import pick_device  # noqa: E402

TARGET = 1.2


def with_torch_instance_norm(module: torch.nn.Module) -> torch.nn.Module:
    """The same network with nn.InstanceNorm2d layers (as the reference code builds it) in place of mixreal's."""
    for name, child in module.named_children():
        if isinstance(child, InstanceNorm):
            ref = torch.nn.InstanceNorm2d(child.num_channels, affine=True)
            ref.load_state_dict(child.state_dict())
            setattr(module, name, ref)
        else:
            with_torch_instance_norm(child)
    return module


class PlainCycleGan:
    """The reference code's way: four networks with nn.InstanceNorm2d, two Adams over NCHW tensors,
    optimize_parameters()."""

    def __init__(self, cfg: CycleGanConfig, size: int, device: torch.device):
        torch.manual_seed(0)
        self.cfg = cfg
        self.g_sr, self.g_rs = (with_torch_instance_norm(build_generator(cfg.networks)).to(device) for _ in range(2))
        self.d_r, self.d_s = (with_torch_instance_norm(build_discriminator(cfg.networks, size)).to(device)
                              for _ in range(2))
        b = (cfg.beta1, 0.999)
        self.opt_g = torch.optim.Adam([*self.g_sr.parameters(), *self.g_rs.parameters()], lr=cfg.lr_g, betas=b)
        self.opt_d = torch.optim.Adam([*self.d_r.parameters(), *self.d_s.parameters()], lr=cfg.lr_d, betas=b)
        self.pool_r, self.pool_s = ImagePool(cfg.pool_size), ImagePool(cfg.pool_size)

    def step(self, s: torch.Tensor, r: torch.Tensor, gen: torch.Generator) -> None:
        cfg = self.cfg
        for _ in range(cfg.g_updates):
            for p in [*self.d_r.parameters(), *self.d_s.parameters()]:
                p.requires_grad = False
            fake_r, fake_s = self.g_sr(s), self.g_rs(r)
            rec_s, rec_r = self.g_rs(fake_r), self.g_sr(fake_s)
            pr, ps = self.d_r(fake_r), self.d_s(fake_s)
            loss = (F.mse_loss(pr, torch.ones_like(pr)) + F.mse_loss(ps, torch.ones_like(ps))
                    + cfg.lambda_cycle * (F.l1_loss(rec_s, s) + F.l1_loss(rec_r, r))
                    + cfg.lambda_l1 * (F.l1_loss(fake_r, s) + F.l1_loss(fake_s, r)))
            self.opt_g.zero_grad()
            loss.backward()
            self.opt_g.step()
        for p in [*self.d_r.parameters(), *self.d_s.parameters()]:
            p.requires_grad = True
        self.opt_d.zero_grad()
        pairs = ((self.d_r, r, self.pool_r.query(fake_r, gen)), (self.d_s, s, self.pool_s.query(fake_s, gen)))
        for d, real, fake in pairs:
            p_real, p_fake = d(real), d(fake.detach())
            loss_d = 0.5 * (F.mse_loss(p_real, d_targets(p_real.shape, True, cfg, gen).to(real.device))
                            + F.mse_loss(p_fake, d_targets(p_fake.shape, False, cfg, gen).to(real.device)))
            loss_d.backward()
        self.opt_d.step()


def timed(fn, steps: int, device: torch.device) -> float:
    fn()  # warm-up: allocator, kernels
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=9)
    ap.add_argument("--g-updates", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=2, help="alternate the two this many times; best of each")
    ap.add_argument("--no-compile", action="store_true", help="mixreal's step without torch.compile")
    args = ap.parse_args()
    device = pick_device(args.device)
    cfg = CycleGanConfig(batch_size=args.batch, g_updates=args.g_updates,
                         networks=GanNetworks(residual_blocks=args.blocks))
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(args.batch, 3, args.size, args.size, generator=g) * 2 - 1).to(device)
    r = (torch.rand(args.batch, 3, args.size, args.size, generator=g) * 2 - 1).to(device)
    plain = PlainCycleGan(cfg, args.size, device)
    st = new_stage(cfg, args.size, device, compile=not args.no_compile)
    t = time.perf_counter()
    train_step(st, s, r, cfg, g)  # compiles (once per run of a stage)
    first = time.perf_counter() - t
    ours_s, ours_r = s.contiguous(memory_format=torch.channels_last), r.contiguous(memory_format=torch.channels_last)
    plain_ips, ours_ips = 0.0, 0.0
    for _ in range(args.rounds):  # interleaved, so a busy neighbour slows both alike
        plain_ips = max(plain_ips, timed(lambda: plain.step(s, r, g), args.steps, device))
        ours_ips = max(ours_ips, timed(lambda: train_step(st, ours_s, ours_r, cfg, g), args.steps, device))
    ratio = ours_ips / plain_ips
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'}, " \
        f"{torch.get_num_threads()} threads"
    print(f"gan_speed | {datetime.date.today()} | {name} | torch {torch.__version__}")
    print(f"  networks: generator c7s1-32 ... R128 x {args.blocks}; batch {args.batch} at {args.size} px; "
          f"{args.g_updates} G + 1 D updates per iteration")
    print(f"  plain PyTorch CycleGAN step: {plain_ips:.3f} it/s ({1 / plain_ips:.2f} s/it)")
    print(f"  mixreal train_step:          {ours_ips:.3f} it/s ({1 / ours_ips:.2f} s/it)"
          f"{'' if args.no_compile else f'; torch.compile, first step {first:.0f} s (compiling, once per stage)'}")
    print(f"  ratio: {ratio:.2f} x (target >= {TARGET} x)")
    if device.type == "cuda":
        paper_steps = 1500 + 40_000
        print(f"  one paper-scale stage ({paper_steps:,} steps at this batch): {paper_steps / ours_ips / 3600:.1f} h")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
