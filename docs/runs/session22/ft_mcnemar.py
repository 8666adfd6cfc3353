"""Within-seed paired comparison of the fine-tuned rows on the same 4,000 test photos: exact McNemar test
of each refined row against the raw one (discordant pairs), from each run's best.pt."""
import sys
from pathlib import Path

import torch
from scipy.stats import binomtest

sys.path.insert(0, "/work/main")
from train.config import TrainConfig
from train.datasets import RealDataset
from train.experiments import slug
from train.loop import load_trained, predict

torch.set_num_threads(1)
T = Path("/work/exp/t3/table3")
data = Path("/work/exp/t3/data/c10-da4-500-50-1000")
test = RealDataset.from_split(data, "test")
rows = {"raw": "fine-tuned on real from raw renders",
        "photo statistics": "fine-tuned on real from photo-statistics renders",
        "CycleGAN": "fine-tuned on real from CycleGAN renders",
        "real only, 4x epochs": "real only, 4x epochs"}
cfg = TrainConfig(model="resnet20")
for seed in [int(s) for s in sys.argv[1].split(",")]:
    right = {}
    for short, name in rows.items():
        run = T / slug(name) / f"seed-{seed}"
        if not (run / "summary.json").is_file():
            continue
        model, _, _ = load_trained(run)
        right[short] = predict(model, test, cfg, torch.device("cpu")) == test.labels
    for short in right:
        if short == "raw" or "raw" not in right:
            continue
        a, b = right[short], right["raw"]
        win, loss = int((a & ~b).sum()), int((~a & b).sum())
        p = binomtest(win, win + loss).pvalue if win + loss else 1.0
        print(f"seed {seed}: {short} vs raw: {100 * a.double().mean():.2f} vs {100 * b.double().mean():.2f}; "
              f"right only here {win}, only raw {loss}: {100 * (win - loss) / len(a):+.2f} points, McNemar p {p:.3f}")
