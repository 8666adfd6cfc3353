"""The paper's tables as commands: every configuration x seed is one resumable training run.

    table1: synthetic-only training, latent variations added one at a time, and real-only, tested on
            real images (the latent-variation ablation).
    table2: real only, and real + synthetic at 1:1, 1:7, 1:15, each without and with 2D augmentation;
            then real only trained 4x longer, a stronger baseline than the paper's schedule gives below
            paper scale.

Runs live in OUT/<table>/<configuration>/seed-<s>/ (metrics, curves, checkpoints, summary.json); a run
whose summary.json is complete is not run again, a killed one resumes. The table is mean +- std over
seeds of the test accuracy at the best validation epoch, beside the paper's figure where one is known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

# The paper's numbers are not shipped: this project has no verified copy of them, and a remembered figure
# printed as "the paper's" would be worse than none. `--paper FILE` supplies them (see load_paper_values);
# without it the column reads "n/a".
PaperValues = dict[str, float]  # configuration name -> test accuracy in %


@dataclass(frozen=True)
class RunSpec:
    name: str  # row label
    ratio: str
    augment: bool
    variations: str = "all"  # of the synthetic images
    epochs_factor: int = 1  # x the scale's epochs (and milestones): for baselines given a longer schedule


TABLE1 = [
    RunSpec("real only", "1:0", False),
    RunSpec("synthetic: no variation", "0:1", False, "none"),
    RunSpec("synthetic: texture", "0:1", False, "texture"),
    RunSpec("+ lighting", "0:1", False, "texture,lighting"),
    RunSpec("+ background", "0:1", False, "texture,lighting,background"),
    RunSpec("+ camera", "0:1", False, "texture,lighting,background,camera"),
    RunSpec("+ 2D augmentation", "0:1", False, "texture,lighting,background,camera,augment2d"),
]

TABLE2 = [RunSpec(f"{label}{', augmented' if aug else ''}", ratio, aug)
          for aug in (False, True)
          for label, ratio in (("real only", "1:0"), ("real + synthetic 1:1", "1:1"),
                               ("real + synthetic 1:7", "1:7"), ("real + synthetic 1:15", "1:15"))]

# Not in the paper: real only trained 4 times as long. Below paper scale the real-only schedule (lr / 10 at
# 18% and 28% of training) leaves it undertrained while the mixed runs take many more steps, so without
# this row a gain from synthetic data could be a gain from training longer.
TABLE2 += [RunSpec(f"real only, 4x epochs{', augmented' if aug else ''}", "1:0", aug, epochs_factor=4)
           for aug in (False, True)]

TABLES = {"table1": TABLE1, "table2": TABLE2}


def slug(name: str) -> str:
    """'real + synthetic 1:7, augmented' -> 'real-synthetic-1-7-augmented'."""
    import re

    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def finished(run: Path, epochs: int) -> bool:
    path = run / "summary.json"
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("epochs") == epochs
    except ValueError:
        return False


def load_paper_values(path: Path, table: str, data: str) -> PaperValues:
    """The paper's figures for one table and dataset from a JSON file shaped
    {"table2": {"c10-da4": {"real only": 61.5, "real + synthetic 1:7": 70.1, ...}}} (test accuracy in %).
    Configuration names must be this table's row names, so a typo cannot silently leave a row empty."""
    try:
        tree = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the paper's values ({exc})") from None
    by_data = tree.get(table, {}) if isinstance(tree, dict) else None
    values = by_data.get(data, {}) if isinstance(by_data, dict) else None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected {{table: {{dataset: {{configuration: accuracy %}}}}}}")
    names = {spec.name for spec in TABLES[table]}
    for name, value in values.items():
        if name not in names:
            raise ValueError(f"{path}: {table} has no configuration {name!r} (it has: {', '.join(sorted(names))})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            raise ValueError(f"{path}: {table} / {data} / {name}: expected an accuracy in % (0-100), got {value!r}")
    return {name: float(v) for name, v in values.items()}


def aggregate(rows: dict[str, list[float]], paper: PaperValues | None = None) -> str:
    """Markdown: configuration | ours mean +- std (n seeds) | paper."""
    paper = paper or {}
    lines = ["| configuration | ours: test accuracy % (mean ± std) | seeds | paper % |", "|---|---:|---:|---:|"]
    for name, accs in rows.items():
        a = 100 * np.asarray(accs, dtype=float)
        ours = f"{a.mean():.2f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.2f}" if len(a) else "not run"
        theirs = paper.get(name)
        lines.append(f"| {name} | {ours} | {len(a)} | {'n/a' if theirs is None else f'{theirs:.2f}'} |")
    return "\n".join(lines) + "\n"


def run_table(table: str, data: str, real_dir: Path, models: Path, out: Path, scale: str, seeds: list[int],
              workers: int = 2, epochs: int | None = None, paper: PaperValues | None = None, log=print,
              progress: bool = True) -> str:
    """Train every configuration of `table` for each seed, seed by seed, so that an interrupted sweep
    leaves whole seeds behind; table.md, table.png and results.json are rewritten after every run."""
    from renderer import RenderConfig, VariationConfig

    from .config import images_per_epoch, preset
    from .datasets import RealDataset, RenderStream
    from .loop import train_classifier

    train, val, test = (RealDataset.from_split(real_dir, s) for s in ("train", "val", "test"))
    classes = train.class_names
    if not (out / table / "samples.png").is_file():
        _write_samples(out / table / "samples.png", TABLES[table], train, models, seeds[0])
    results: dict[str, list[float]] = {spec.name: [] for spec in TABLES[table]}
    text = ""
    for seed in seeds:
        for spec in TABLES[table]:
            settings = dict(real_only=spec.ratio == "1:0", ratio=spec.ratio, augment=spec.augment, seed=seed,
                            workers=workers)
            cfg = preset("resnet20", scale, epochs=epochs, **settings)
            if spec.epochs_factor != 1:
                cfg = preset("resnet20", scale, epochs=cfg.epochs * spec.epochs_factor, **settings)
            cfg = replace(cfg, extra={"table": table, "data": data, "configuration": spec.name,
                                      "variations": spec.variations})
            run = out / table / slug(spec.name) / f"seed-{seed}"
            if not finished(run, cfg.epochs):
                images = cfg.epochs * images_per_epoch(len(train), cfg.ratio, cfg.batch_size)
                log(f"{table} | {spec.name} | seed {seed}: {cfg.epochs} epochs at {cfg.ratio} ({images:,} images)")
                synthetic = None
                if spec.ratio != "1:0":
                    synthetic = RenderStream(models, RenderConfig(size=32, seed=seed,
                                                                  variations=VariationConfig.parse(spec.variations)),
                                             class_names=classes)
                train_classifier(cfg, train, val, test, synthetic, run, classes, progress=progress,
                                 log=lambda m: None)
            results[spec.name].append(json.loads((run / "summary.json").read_text())["test_acc_at_best_val"])
            text = _write_table(table, data, scale, seeds, results, out, paper)
    return text


def _write_samples(path: Path, specs: list[RunSpec], train, models: Path, seed: int, n: int = 16) -> None:
    """The first `n` real training images and the first `n` synthetic images of each variation setting
    in the table: exactly what the runs of seed `seed` start training on."""
    from renderer import RenderConfig, VariationConfig

    from .datasets import RenderStream
    from .report import samples_sheet

    step = max(1, len(train) // n)
    rows = [("real (train)", [train[i][0].numpy() for i in range(0, step * n, step)])]
    first = {}  # each variation setting once, named by the first row that uses it
    for spec in specs:
        if spec.ratio != "1:0":
            first.setdefault(spec.variations, spec.name if spec.ratio == "0:1" else f"synthetic ({spec.variations})")
    for variations, label in first.items():
        stream = RenderStream(models, RenderConfig(size=32, seed=seed, variations=VariationConfig.parse(variations)),
                              class_names=train.class_names, length=n)
        rows.append((label, [image.numpy() for image, _ in stream]))
    samples_sheet(path, rows)


def _write_table(table: str, data: str, scale: str, seeds: list[int], results: dict[str, list[float]],
                 out: Path, paper: PaperValues | None) -> str:
    from renderer.export import atomic_write_text

    from .report import plot_table, write_summary

    text = aggregate(results, paper)
    (out / table).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / table / "table.md", f"# {table} on {data}, scale {scale}, seeds {seeds}\n\n{text}")
    write_summary(out / table / "results.json", {"table": table, "data": data, "scale": scale, "seeds": seeds,
                                                 "test_acc_at_best_val": results, "paper": paper or {}})
    plot_table(out / table / "table.png", results, f"{table} on {data}, scale {scale}", paper)
    return text
