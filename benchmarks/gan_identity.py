"""How close a stage's generators get to the identity in pre-training (MrGAN issue).

    python3 benchmarks/gan_identity.py --real DATA --models MODELS [--steps 600] [--blocks 3] [--batch 32]
        [--lr 2e-4] [--norm-scale-mean 0] [--identity-skip] [--kid] [--out gan_identity.png]

Every MrGAN stage starts with generators pre-trained on L1(G(x), x), so that adversarial training starts from
the stage's input, not from noise. This trains that pre-training alone (train.cyclegan.pretrain_generators_step
on a stage from new_stage, as a stage does) on renders of MODELS and the real train images of DATA, and every
100 steps prints each generator's mean absolute error to its input on 500 held-out images per side ([-1, 1]
scale: 0.05 is about 6 of 255 levels), and with --kid the KID x 100 of the synthetic side's output against the
real images in the gap meter's features (beside the inputs' own KID: what a perfect identity would give).
Writes a sheet: held-out renders, then their pre-trained outputs. Exits 1 when the final error is above
--target (default 0.05): pre-training did not reach the identity, so the stage starts from a distorted copy
of its input.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from train.cyclegan import CycleGanConfig, new_stage, pretrain_generators_step, to_signed, to_uint8  # noqa: E402
from train.datasets import RealDataset, RenderStream  # noqa: E402
from train.gan_networks import GanNetworks  # noqa: E402

HELD_OUT = 500


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, required=True, help="a CIFAR-DA folder (its train split is used)")
    ap.add_argument("--models", type=Path, required=True, help="meshes of the real set's classes")
    ap.add_argument("--steps", type=int, default=600, help="pre-training steps (quick preset: 600)")
    ap.add_argument("--blocks", type=int, default=3, help="residual blocks (quick preset: 3, appendix: 9)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--norm-scale-mean", type=float, default=0.0, help="0: the appendix's init; 1: the "
                    "CycleGAN reference code's")
    ap.add_argument("--identity-skip", action="store_true")
    ap.add_argument("--kid", action="store_true", help="also KID in the gap meter's features (trains its "
                    "feature network once per DATA if absent, ~5 min on 2 cores)")
    ap.add_argument("--synthetic-images", type=int, default=10_000, help="renders to pre-train on")
    ap.add_argument("--target", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=Path("gan_identity.png"))
    args = ap.parse_args()

    real = RealDataset.from_split(args.real, "train")
    size = int(real.images.shape[-1])
    real_images = torch.stack([real[i][0] for i in range(len(real))])
    if len(real_images) <= 2 * HELD_OUT:
        print(f"{args.real}: {len(real_images)} real train images; need more than {2 * HELD_OUT}", file=sys.stderr)
        return 2
    from dataclasses import replace

    from renderer import RenderConfig

    stream = RenderStream(args.models, replace(RenderConfig(), size=size, seed=0), class_names=real.class_names,
                          length=args.synthetic_images + HELD_OUT, block=256)
    syn_images = torch.cat([x for x, _ in stream])
    train_s, held_s = syn_images[:-HELD_OUT], syn_images[-HELD_OUT:]
    train_r, held_r, ref_r = real_images[:-HELD_OUT], real_images[-HELD_OUT:], real_images[:-HELD_OUT][:1000]

    net = ref_f = None
    if args.kid:
        from train.gap import cached_feature_net, kid_fid

        net = cached_feature_net(args.real)
        ref_f = net.features_and_logits(ref_r)[0]

    cfg = CycleGanConfig(batch_size=args.batch, lr_g=args.lr,
                         networks=GanNetworks(residual_blocks=args.blocks, norm_scale_mean=args.norm_scale_mean,
                                              identity_skip=args.identity_skip))
    st = new_stage(cfg, size)
    gen = torch.Generator().manual_seed(0)

    def probe() -> tuple[dict, torch.Tensor]:
        with torch.no_grad():
            out_s, out_r = to_uint8(st.g_sr(to_signed(held_s))), to_uint8(st.g_rs(to_signed(held_r)))
        row = {"l1_sr": float((out_s.float() - held_s.float()).abs().mean() / 127.5),
               "l1_rs": float((out_r.float() - held_r.float()).abs().mean() / 127.5)}
        if net is not None:
            row["kid_in"] = 100 * kid_fid(ref_f, net.features_and_logits(held_s)[0])[0]
            row["kid_out"] = 100 * kid_fid(ref_f, net.features_and_logits(out_s)[0])[0]
        return row, out_s

    print(f"# gan_identity {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC | "
          f"{platform.processor() or platform.machine()} | torch {torch.__version__} | threads "
          f"{torch.get_num_threads()} | blocks {args.blocks} batch {args.batch} lr {args.lr} norm scales "
          f"N({args.norm_scale_mean}, 0.02) identity_skip {args.identity_skip}")
    t0 = time.perf_counter()
    for step in range(args.steps + 1):
        if step % 100 == 0 or step == args.steps:
            row, out_s = probe()
            print(f"step {step:5d}  {time.perf_counter() - t0:7.0f} s  "
                  + "  ".join(f"{k} {v:.3f}" if k.startswith("l1") else f"{k} {v:.1f}" for k, v in row.items()),
                  flush=True)
        if step == args.steps:
            break
        s = to_signed(train_s[torch.randint(len(train_s), (args.batch,), generator=gen)])
        r = to_signed(train_r[torch.randint(len(train_r), (args.batch,), generator=gen)])
        pretrain_generators_step(st, s, r)

    from torchvision.utils import save_image

    save_image(torch.cat([held_s[:16], out_s[:16]]).float() / 255, args.out, nrow=16)
    err = (row["l1_sr"] + row["l1_rs"]) / 2
    ok = err <= args.target
    print(f"mean error to the input after {args.steps} steps: {err:.3f} (target <= {args.target}): "
          f"{'met' if ok else 'MISSED'}; sheet {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
