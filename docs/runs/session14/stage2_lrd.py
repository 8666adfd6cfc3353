"""Session 14 A/B (lr_d 2e-4): stage 2 (rr-rs) with identity-skip generators, on the baseline run's stage 1 (seed 0)."""
import sys
from pathlib import Path
sys.path.insert(0, "/work/exp/code7")
import torch
from train.datasets import RealDataset, RenderStream
from train.gap import cached_feature_net
from train.mrgan import Refiner, SyntheticBatches, _train_stage, load_generators, mrgan_preset
from train.table3 import _render_config

real_dir = Path("/work/exp/data/c10-da4-500-50-1000")
real = RealDataset.from_split(real_dir, "train")
stream = RenderStream(Path("/work/exp/models-c10-da4"), _render_config(0), class_names=real.class_names)
cfg = mrgan_preset("quick", stages=2, mapping="rr-rs", seed=0, identity_skip=True)
from dataclasses import replace
cfg = replace(cfg, cyclegan=replace(cfg.cyclegan, networks=replace(cfg.cyclegan.networks, norm_scale_mean=1.0), lr_d=2e-4))
print(cfg.cyclegan)
dev = torch.device("cpu")
prev = Refiner([load_generators(Path("/work/exp/table3/gan/seed-0/rr-rs/stage-1/generators.pt"), dev)], "rr-rs", device=dev)
net = cached_feature_net(real_dir)
src = SyntheticBatches(stream, cfg.cyclegan.seed)
_train_stage(cfg, 2, prev, real, src, Path("/work/exp/skip/rr-rs-stage-2-lrd"), dev, net, True, print)
