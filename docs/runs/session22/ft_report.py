"""Fine-tuning rows of Table 3: per-seed table, paired differences, chart."""
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, "/work/main")
from train.experiments import slug
from train.report import plot_table

T = Path("/work/exp/t3/table3")
rows = [("real only, 4x epochs", "real only, 4x epochs"),
        ("raw", "fine-tuned on real from raw renders"),
        ("photo statistics", "fine-tuned on real from photo-statistics renders"),
        ("CycleGAN", "fine-tuned on real from CycleGAN renders"),
        ("MrGAN rr-rs (refined-real)", "fine-tuned on real from MrGAN renders, refined real")]
pre = {"raw": "synthetic only: no refinement", "photo statistics": "synthetic only: photo statistics (no GAN)",
       "CycleGAN": "synthetic only: CycleGAN-refined", "MrGAN rr-rs (refined-real)": "synthetic only: MrGAN-refined"}
seeds = [int(a) for a in sys.argv[1].split(",")] if len(sys.argv) > 1 else [0, 1, 2]
acc, per = {}, {}
for short, name in rows:
    vals = []
    for s in seeds:
        p = T / slug(name) / f"seed-{s}" / "summary.json"
        vals.append(json.loads(p.read_text())["test_acc_at_best_val"] * 100 if p.is_file() else np.nan)
    acc[short] = np.array(vals)
    if short in pre:
        v = []
        for s in seeds:
            p = T / slug(pre[short]) / f"seed-{s}" / "summary.json"
            v.append(json.loads(p.read_text())["test_acc_at_best_val"] * 100 if p.is_file() else np.nan)
        per[short] = np.array(v)
print("| row | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std | its pre-training (synthetic only, mean) |")
print("|---|" + "---:|" * (len(seeds) + 2))
for short, name in rows:
    a = acc[short]
    ok = ~np.isnan(a)
    sd = f"{a[ok].std(ddof=1):.2f}" if ok.sum() > 1 else "—"
    pt = f"{np.nanmean(per[short]):.2f}" if short in per else "—"
    cells = " | ".join("—" if np.isnan(x) else f"{x:.2f}" for x in a)
    print(f"| {name} | {cells} | {a[ok].mean():.2f} ± {sd} | {pt} |")
print()
for base in ("real only, 4x epochs", "raw"):
    for short, _ in rows:
        if short == base or (base == "raw" and short == "real only, 4x epochs"):
            continue
        d = acc[short] - acc[base]
        ok = ~np.isnan(d)
        p = stats.ttest_rel(acc[short][ok], acc[base][ok]).pvalue if ok.sum() > 1 else float("nan")
        print(f"{short} - {base}: " + ", ".join(f"{x:+.2f}" for x in d[ok]) + f" (mean {d[ok].mean():+.2f}, p {p:.2f})")
if len(sys.argv) > 2:
    plot_table(Path(sys.argv[2]), {name: list(acc[short][~np.isnan(acc[short])] / 100) for short, name in rows},
               f"fine-tuned from renders, refined or not (c10-da4, quick, seeds {','.join(map(str, seeds))})")
