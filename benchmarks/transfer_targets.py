"""Do synthetic images transfer to real photos? The transfer issue's accuracy targets, read from experiment runs.

    mixreal experiment table1 --data c10-da4 --scale quick --seeds 0,1,2 --out OUT
    mixreal experiment table2 --data c10-da4 --scale quick --seeds 0,1,2 --out OUT
    python3 benchmarks/transfer_targets.py OUT

Targets (on the large real test split, 1,000 images per class, with `--counts 500,50,1000`, the default):
  1. synthetic-only ResNet-20 with the default variations (table1 "all variations (default)"), mean of the
     seeds, >= 65 %;
  2. no class below 40 % in that row (per-class accuracy, mean over seeds);
  3. real + synthetic (the best of table2's mixed-batch rows: every ratio, schedule and background) ahead of
     real only trained 4x as long by >= 3 points, with their 95 % intervals (test sampling, Wilson) not
     overlapping. The rows include 1:1 and 1:3 trained for the steps of 1:15 (at quick scale the paper's
     10-epoch 1:15 row sees each real image only 10 times, the 4x baseline 40). Printed beside it, not
     targets: the best row against real only trained as many steps (16x epochs), the same comparison for
     pre-training on renders and fine-tuning on the real images (3'), and every equal-steps row.
Prints every figure; exits 1 when a target is missed, 2 when the runs are not there yet.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SYNTHETIC_TARGET, CLASS_FLOOR, MIXED_MARGIN = 0.65, 0.40, 0.03
BASELINE = "real only, 4x epochs"
PHOTO_ROW = "real + synthetic 1:15, real-photo backgrounds"
AS_LONG = "real only, 16x epochs (the steps of 1:15)"
FINE_TUNED = "real only, 4x epochs, from synthetic-only pre-training"
EQUAL_STEPS = ("real + synthetic 1:15", "real + synthetic 1:3, 4x epochs (the steps of 1:15)",
               "real + synthetic 1:1, 8x epochs (the steps of 1:15)",
               "real only, 4x epochs, from synthetic-only pre-training")  # 2,500 + 640 steps


def mixed_rows() -> list[str]:
    """table2's real + synthetic mixed-batch rows (both parts of the ratio > 0, random initial weights)."""
    from train.experiments import TABLE2

    return [r.name for r in TABLE2 if r.init is None and all(int(x) > 0 for x in r.ratio.split(":"))]


def runs(out: Path, table: str, row: str) -> list[dict]:
    from train.experiments import slug

    return [json.loads(p.read_text()) for p in sorted((out / table / slug(row)).glob("seed-*/summary.json"))]


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def main() -> int:
    from train.stats import mean_interval

    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    out = Path(sys.argv[1])
    ok, missing = True, False

    syn = runs(out, "table1", "all variations (default)")
    if not syn:
        print("1-2. no finished table1 'all variations (default)' run")
        missing = True
    else:
        accs = [r["test_acc_at_best_val"] for r in syn]
        n = syn[0]["test_at_best_val"]["n"]
        lo, hi = mean_interval(accs, n)
        hit = mean(accs) >= SYNTHETIC_TARGET
        ok &= hit
        print(f"1. synthetic only, default variations: {100 * mean(accs):.2f}% (seeds {len(accs)}, "
              f"95% {100 * lo:.1f}-{100 * hi:.1f}, n={n}; fitted {sum(r['fits_training_images'] for r in syn)}/"
              f"{len(syn)}) target >= {100 * SYNTHETIC_TARGET:.0f}%: {'met' if hit else 'MISSED'}")
        classes = syn[0]["test_at_best_val"]["per_class"]
        per_class = {c: mean(r["test_at_best_val"]["per_class"][c] for r in syn) for c in classes}
        floor = min(per_class.values())
        ok &= floor >= CLASS_FLOOR
        print("2. per class: " + ", ".join(f"{c} {100 * v:.1f}%" for c, v in per_class.items())
              + f"; lowest >= {100 * CLASS_FLOOR:.0f}%: {'met' if floor >= CLASS_FLOOR else 'MISSED'}")

    base = runs(out, "table2", BASELINE)
    mixed = {row: runs(out, "table2", row) for row in mixed_rows()}
    partial = {k: len(v) for k, v in mixed.items() if v and len(v) < len(base)}
    # a row competes for "best ratio" only with as many seeds as the baseline: one lucky seed is not a mean
    mixed = {k: v for k, v in mixed.items() if v and len(v) >= len(base)}
    for k, seeds in partial.items():
        print(f"   ({k}: {seeds} of {len(base)} seeds so far, not compared yet)")
    if not base or not mixed:
        print("3. table2 runs missing (real only 4x epochs and at least one mixed ratio)")
        missing = True
    else:
        best = max(mixed, key=lambda k: mean(r["test_acc_at_best_val"] for r in mixed[k]))
        m = [r["test_acc_at_best_val"] for r in mixed[best]]
        b = [r["test_acc_at_best_val"] for r in base]
        n = base[0]["test_at_best_val"]["n"]
        (mlo, mhi), (blo, bhi) = mean_interval(m, n), mean_interval(b, n)
        margin = mean(m) - mean(b)
        hit = margin >= MIXED_MARGIN and mlo > bhi
        ok &= hit
        print(f"3. {best}: {100 * mean(m):.2f}% (95% {100 * mlo:.1f}-{100 * mhi:.1f}) vs {BASELINE}: "
              f"{100 * mean(b):.2f}% (95% {100 * blo:.1f}-{100 * bhi:.1f}), n={n}: {100 * margin:+.2f} points; "
              f"target >= +{100 * MIXED_MARGIN:.0f} with intervals apart: {'met' if hit else 'MISSED'}")
        def row(name: str) -> tuple[float, str, float, float] | None:
            """(mean, 'mean% (95% lo-hi), seeds k', lo, hi) of a table2 row, None before it has run."""
            accs = [r["test_acc_at_best_val"] for r in runs(out, "table2", name)]
            if not accs:
                return None
            lo, hi = mean_interval(accs, n)
            return mean(accs), f"{100 * mean(accs):.2f}% (95% {100 * lo:.1f}-{100 * hi:.1f}), seeds {len(accs)}", lo, hi

        strict = row(AS_LONG)
        if strict:  # not the target: the stricter baseline, real only trained as many steps
            apart = mean(m) - strict[0] >= MIXED_MARGIN and mlo > strict[3]
            print(f"3+. {best} against {AS_LONG}: {strict[1]}: {100 * (mean(m) - strict[0]):+.2f} points; "
                  f">= +{100 * MIXED_MARGIN:.0f} with intervals apart: {'yes' if apart else 'no'}")
            print(f"   equal steps: {AS_LONG}: {strict[1]}; against it:")
            for name in EQUAL_STEPS:
                if (e := row(name)) is not None:
                    print(f"     {name}: {e[1]}: {100 * (e[0] - strict[0]):+.2f} points")
        tuned = row(FINE_TUNED)
        if tuned:  # the other real + synthetic recipe: the same target's margin and intervals, reported beside it
            apart = tuned[0] - mean(b) >= MIXED_MARGIN and tuned[2] > bhi
            print(f"3'. pre-trained on renders, fine-tuned on the real images ({FINE_TUNED}): {tuned[1]}: "
                  f"{100 * (tuned[0] - mean(b)):+.2f} points over {BASELINE}; >= +{100 * MIXED_MARGIN:.0f} "
                  f"with intervals apart: {'yes' if apart else 'no'}")
        photo = row(PHOTO_ROW)
        if photo:  # not a target: what a user with real background photos gets, beside the same baseline
            print(f"   ({PHOTO_ROW}: {photo[1]}: {100 * (photo[0] - mean(b)):+.2f} points over {BASELINE})")
    if missing:
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
