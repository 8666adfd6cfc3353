"""The paper's tables as commands: every configuration x seed is one resumable training run.

    table1: synthetic-only training, latent variations added one at a time, and real-only, tested on
            real images (the latent-variation ablation).
    table2: real only, and real + synthetic at 1:1, 1:7, 1:15, each without and with 2D augmentation;
            then real only trained 4x longer, a stronger baseline than the paper's schedule gives below
            paper scale, and 16x longer (as many steps as the 1:15 run).

Runs live in OUT/<table>/<configuration>/seed-<s>/ (metrics, curves, checkpoints, summary.json); a run
whose summary.json is complete is not run again, a killed one resumes. The table is mean +- std over
seeds of the test accuracy at the best validation epoch, with its 95 % interval from test sampling, the
accuracy on the paper-sized test subset (50 per class), whether the runs fitted their training images, the
weakest class, and the paper's figure (shipped in paper_figures.json, labelled with the paper's dataset,
which is not c10-da4: the paper's Table 1 is VisDA airplane-vs-bicycle with AlexNet, its Table 2 CIFAR-DA9).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

PaperValues = dict[str, float]  # configuration name -> test accuracy in %
PAPER_FIGURES = Path(__file__).with_name("paper_figures.json")  # the paper's tables, figure by figure
REAL_BACKGROUNDS = "real-photo backgrounds"  # RunSpec.backgrounds: MIXREAL_DATA/backgrounds


@dataclass(frozen=True)
class RunSpec:
    name: str  # row label
    ratio: str
    augment: bool
    variations: str = "all"  # of the synthetic images
    epochs_factor: int = 1  # x the scale's epochs (and milestones): for baselines given a longer schedule
    backgrounds: str | None = None  # REAL_BACKGROUNDS: background crops from a folder of real photos
    step: str | None = None  # a renderer realism step (train/realism.py) instead of today's defaults
    init: tuple[str, str] | None = None  # (table, row): start from that row's run of the same seed (its best.pt)


TABLE1 = [
    RunSpec("real only", "1:0", False),
    RunSpec("synthetic: no variation", "0:1", False, "none"),
    RunSpec("synthetic: texture", "0:1", False, "texture"),
    RunSpec("+ lighting", "0:1", False, "texture,lighting"),
    RunSpec("+ background", "0:1", False, "texture,lighting,background"),
    RunSpec("+ camera", "0:1", False, "texture,lighting,background,camera"),
    RunSpec("+ 2D augmentation", "0:1", False, "texture,lighting,background,camera,augment2d"),
    # not in the paper: the default (every variation, occluders included), and with real-photo backgrounds
    RunSpec("all variations (default)", "0:1", False, "all"),
    RunSpec("all variations, real-photo backgrounds", "0:1", False, "all", backgrounds=REAL_BACKGROUNDS),
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
# And real only trained as many steps as the 1:15 run (an epoch is one pass over the real images: 250 steps of
# 8 real + 120 synthetic at 1:15, 16 steps real only): the baseline "trained as long" in the strict sense.
TABLE2 += [RunSpec("real only, 16x epochs (the steps of 1:15)", "1:0", False, epochs_factor=16)]
TABLE2 += [RunSpec("real + synthetic 1:15, real-photo backgrounds", "1:15", False, backgrounds=REAL_BACKGROUNDS)]
# Not in the paper either: at quick scale a 1:15 run sees each real image 10 times, the 16x baseline 160 times.
# These mix at 1:1 and 1:3 for the same number of steps (real images seen 80 and 40 times): does synthetic data
# still add anything when the real images get as many passes as training longer gives them?
TABLE2 += [RunSpec("real + synthetic 1:1, 8x epochs (the steps of 1:15)", "1:1", False, epochs_factor=8),
           RunSpec("real + synthetic 1:3, 4x epochs (the steps of 1:15)", "1:3", False, epochs_factor=4)]
# The other common way to use renders: pre-train on them alone, then fine-tune on the real images. The
# pre-training is table1's default row (2,500 steps, same seed); fine-tuning 640 steps: 3,140 in all, about the
# 16x baseline's 2,560.
PRETRAINED = ("table1", "all variations (default)")
TABLE2 += [RunSpec("real only, 4x epochs, from synthetic-only pre-training", "1:0", False, epochs_factor=4,
                   init=PRETRAINED)]

def _realism_table() -> list[RunSpec]:
    from .realism import CANDIDATES, STEPS

    rows = [RunSpec(name, "0:1", False, "all", step=name) for name, _ in STEPS]
    rows += [RunSpec("default + real-photo backgrounds", "0:1", False, "all", backgrounds=REAL_BACKGROUNDS)]
    return rows + [RunSpec(name, "0:1", False, "all", step=name) for name, _ in CANDIDATES]


# realism: not in the paper: synthetic-only with the renderer's realism changes added one at a time, each
# beside its domain gap (train/realism.py)
TABLES = {"table1": TABLE1, "table2": TABLE2, "realism": _realism_table()}
GAP_IMAGES = 2000  # synthetic images the gap meter measures per configuration, by default
# The meter reads each configuration once, from renders of this seed, whichever training seeds a sweep runs:
# a sweep of `--seeds 2` alone (or one row at a time) then reuses the reading of a `--seeds 0,1,2` sweep
# instead of measuring other images and overwriting it.
GAP_SEED = 0


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


def pretrained(run: Path, table: str, row: str) -> tuple[Path | None, str]:
    """The checkpoint a fine-tuning row starts from: the best.pt of `table`'s run `run` of `row`, or None and
    why not (not run yet, still training in another process, or finished without its checkpoint)."""
    if (run / "summary.json").is_file() and (run / "best.pt").is_file():
        return (run / "best.pt").resolve(), ""
    how = f"mixreal experiment {table} --rows '={row}'"
    if (run / "summary.json").is_file():
        return None, f"skipped: {table} '{row}' finished without its best.pt in {run} (delete it, then {how})"
    return None, f"skipped until {table} '{row}' has finished in {run} ({how})"


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
    names = set(row_names(table))
    for name, value in values.items():
        if name not in names:
            raise ValueError(f"{path}: {table} has no configuration {name!r} (it has: {', '.join(sorted(names))})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            raise ValueError(f"{path}: {table} / {data} / {name}: expected an accuracy in % (0-100), got {value!r}")
    return {name: float(v) for name, v in values.items()}


def parse_rows(text: str) -> list[str]:
    """--rows: texts separated by commas; a comma followed by a space is part of a row name ("real only, 4x
    epochs")."""
    return [r.strip() for r in re.split(r",(?! )", text) if r.strip()]


def _picks(text: str, name: str) -> bool:
    """Whether --rows text `text` selects the row called `name`: "=NAME" that name alone, else any name
    containing the text (case-insensitive both)."""
    if text.startswith("="):
        return text[1:].strip().lower() == name.lower()
    return text.lower() in name.lower()


def row_names(table: str) -> list[str]:
    if table == "table3":
        from .table3 import TABLE3

        return [row.name for row in TABLE3]
    return [spec.name for spec in TABLES[table]]


def shipped_paper_values(table: str, names: list[str] | None = None) -> tuple[PaperValues, str]:
    """The paper's figures for `table` as shipped with mixreal (train/paper_figures.json), and a label naming
    the paper's dataset and model."""
    tree = json.loads(PAPER_FIGURES.read_text())
    entry = tree["tables"].get(table)
    if entry is None:
        return {}, "paper"
    names = set(row_names(table) if names is None else names)
    values = {k: float(v) for k, v in entry["rows"].items() if k in names}
    return values, f"paper: {entry['dataset']}; {entry['model']}"


def aggregate(rows: dict[str, list[float]], paper: PaperValues | None = None,
              details: dict[str, list[dict]] | None = None, paper_label: str = "paper",
              gaps: dict[str, dict] | None = None) -> str:
    """Markdown: configuration | ours mean +- std | 95 % interval | seeds | 50/class test | fitted | weakest
    class | KID | paper. `details`: each run's summary.json, for the interval and the columns after it;
    `gaps`: the gap meter's report of each synthetic configuration. Below the table, the rank correlation
    of KID with accuracy over the rows that have both."""
    from .gap import spearman
    from .stats import mean_interval

    paper, details, gaps = paper or {}, details or {}, gaps or {}
    lines = [f"Paper column: {paper_label}.", "",
             "| configuration | ours: test accuracy % (mean ± std) | 95 % interval | seeds | 50/class test % "
             "| fitted train images | weakest class % | KID x 100 | coverage % | paper % |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, accs in rows.items():
        a = 100 * np.asarray(accs, dtype=float)
        # one seed has no spread: "± 0.00" would read as a measured zero
        spread = f"{a.std(ddof=1):.2f}" if len(a) > 1 else "— (one seed)"
        ours = f"{a.mean():.2f} ± {spread}" if len(a) else "not run"
        runs = [d for d in details.get(name, []) if d.get("test_at_best_val")]
        interval = small = fitted = weakest = "n/a"
        if runs and len(a):
            n = runs[0]["test_at_best_val"]["n"]
            lo, hi = mean_interval(list(a / 100), n)
            interval = f"{100 * lo:.1f}–{100 * hi:.1f} (n={n})"
            sm = [r["test_at_best_val"]["paper_size"]["accuracy"] for r in runs]
            small = f"{100 * np.mean(sm):.2f}" if None not in sm else "n/a"
            fitted = f"{sum(bool(r.get('fits_training_images')) for r in runs)}/{len(runs)} " \
                     f"({100 * np.mean([r.get('final_train_acc', 0.0) for r in runs]):.0f}% train)"
            per_class = {}
            for r in runs:
                for c, v in r["test_at_best_val"]["per_class"].items():
                    if v is not None:
                        per_class.setdefault(c, []).append(v)
            if per_class:
                c = min(per_class, key=lambda k: np.mean(per_class[k]))
                weakest = f"{c} {100 * np.mean(per_class[c]):.1f}"
        theirs = paper.get(name)
        kid = f"{100 * gaps[name]['kid']:.2f}" if name in gaps else "n/a"
        cover = f"{100 * gaps[name]['coverage']:.1f}" if "coverage" in gaps.get(name, {}) else "n/a"
        lines.append(f"| {name} | {ours} | {interval} | {len(a)} | {small} | {fitted} | {weakest} | {kid} | {cover} | "
                     f"{'n/a' if theirs is None else f'{theirs:.2f}'} |")
    both = [n for n in rows if n in gaps and len(rows[n])]
    if len(both) >= 3:
        acc = [np.mean(rows[n]) for n in both]
        rho = spearman([gaps[n]["kid"] for n in both], acc)
        rho_clf = spearman([gaps[n]["accuracy"] for n in both], acc)
        lines += ["", f"Rank correlation (Spearman) with test accuracy over the {len(both)} synthetic rows: "
                      f"KID {rho:+.2f} (−1: the lower the gap, the higher the accuracy, in every pair); the real "
                      f"classifier's accuracy on the synthetic images {rho_clf:+.2f} (+1 is perfect)"]
        if all("coverage" in gaps[n] for n in both):
            lines[-1] += f"; coverage of the real classes {spearman([gaps[n]['coverage'] for n in both], acc):+.2f}"
        lines[-1] += "."
    return "\n".join(lines) + "\n"


def run_table(table: str, data: str, real_dir: Path, models: Path, out: Path, scale: str, seeds: list[int],
              workers: int = 2, epochs: int | None = None, paper: PaperValues | None = None, log=print,
              progress: bool = True, backgrounds: Path | None = None, paper_label: str | None = None,
              gap_images: int = GAP_IMAGES, rows: list[str] | None = None, render_base=None) -> str:
    """Train every configuration of `table` for each seed, seed by seed, so that an interrupted sweep
    leaves whole seeds behind; table.md, table.png and results.json are rewritten after every run.
    `rows`: train only the configurations whose name contains one of these texts (case-insensitive; "=NAME":
    that name exactly); the
    table still shows every configuration's finished runs. `render_base`: the RenderConfig (a --config
    file) whose ranges every synthetic row starts from, each row switching its variations on and off."""

    from .config import images_per_epoch, preset
    from .datasets import RealDataset, RenderStream
    from .loop import train_classifier

    train, val, test = (RealDataset.from_split(real_dir, s) for s in ("train", "val", "test"))
    classes = train.class_names
    if paper is None:
        paper, shipped_label = shipped_paper_values(table)
        paper_label = paper_label or shipped_label
    check_render_base(out / table, render_base, models)
    chosen = [spec for spec in TABLES[table] if rows is None or any(_picks(r, spec.name) for r in rows)]
    if not chosen:
        raise ValueError(f"--rows {','.join(rows or [])}: no row of {table} matches ({'; '.join(row_names(table))})")
    specs = [spec for spec in TABLES[table] if spec.backgrounds is None or backgrounds is not None]
    skipped = [spec.name for spec in chosen if spec not in specs]
    if skipped:
        log(f"no real-photo background folder: skipping {', '.join(skipped)}")
    if not (out / table / "samples.png").is_file():
        _write_samples(out / table / "samples.png", specs, train, models, seeds[0], backgrounds, render_base)
    results: dict[str, list[float]] = {spec.name: [] for spec in specs}
    details: dict[str, list[dict]] = {spec.name: [] for spec in specs}
    gaps: dict[str, dict] = {}
    net = None  # the meter's feature network, loaded (or trained, once per DATA) for the first row it measures
    for spec in specs:  # the meter first: a minute per configuration, readable long before the training ends
        if spec.ratio != "0:1" or gap_images == 0:
            continue
        path = out / table / slug(spec.name) / "gap.json"
        if spec in chosen:
            from .gap import cached_feature_net

            net = net or cached_feature_net(real_dir, progress=progress, log=log)
            gaps[spec.name] = _gap(spec, path, net, train, models, GAP_SEED, backgrounds, gap_images, log,
                                   render_base)
        elif path.is_file():  # a row not run now: its earlier reading is shown only if it is comparable
            from .gap import trained_feature_net

            net = net or trained_feature_net(real_dir)
            settings = _gap_settings(spec, models, GAP_SEED, backgrounds, render_base)
            reading = net and _current_gap(path, settings, net, gap_images)
            if reading:
                gaps[spec.name] = reading
            else:
                log(f"gap | {spec.name}: the reading in {path} was taken with other settings or features; "
                    "left out (run the row to measure it again)")
    text = ""

    def write() -> str:
        return _write_table(table, data, scale, seeds, results, out, paper, details, paper_label or "paper", gaps)

    for seed in seeds:
        unwritten = False
        for spec in specs:
            settings = dict(real_only=spec.ratio == "1:0", ratio=spec.ratio, augment=spec.augment, seed=seed,
                            workers=workers)
            cfg = preset("resnet20", scale, epochs=epochs, epochs_factor=spec.epochs_factor, **settings)
            cfg = replace(cfg, extra={"table": table, "data": data, "configuration": spec.name,
                                      "variations": spec.variations})
            run = out / table / slug(spec.name) / f"seed-{seed}"
            if spec not in chosen and not finished(run, cfg.epochs):
                continue  # not asked for: shown only as far as it has run
            if spec.init is not None:
                start, why = pretrained(out / spec.init[0] / slug(spec.init[1]) / f"seed-{seed}", *spec.init)
                if start is None:
                    log(f"{table} | {spec.name} | seed {seed}: {why}")
                    continue
                check_render_base(out / spec.init[0], render_base, models)  # pre-trained on these renders
                cfg = replace(cfg, init=str(start))
            fresh = not finished(run, cfg.epochs)
            if fresh:
                images = cfg.epochs * images_per_epoch(len(train), cfg.ratio, cfg.batch_size)
                log(f"{table} | {spec.name} | seed {seed}: {cfg.epochs} epochs at {cfg.ratio} ({images:,} images)")
                synthetic = None
                if spec.ratio != "1:0":
                    synthetic = RenderStream(models, _render_config(spec, seed, backgrounds, render_base),
                                             class_names=classes)
                train_classifier(cfg, train, val, test, synthetic, run, classes, progress=progress,
                                 log=lambda m: log(m) if m.startswith("warning") else None)
            summary = json.loads((run / "summary.json").read_text())
            results[spec.name].append(summary["test_acc_at_best_val"])
            details[spec.name].append(summary)
            if fresh:  # current after every run of a long sweep; finished runs read back are drawn once a seed
                text, unwritten = write(), False
            else:
                unwritten = True
        if unwritten:
            text = write()
    return text


def check_render_base(folder: Path, base, models: Path) -> None:
    """A sweep's folder holds runs of one set of render ranges: FOLDER/render.json records them on first use,
    and a later sweep with another --config is refused (its finished runs would be read as this one's)."""
    from renderer import RenderConfig
    from renderer.export import check_settings, settings_of

    settings = settings_of(base or RenderConfig(), Path(models).resolve())
    for per_run in ("seed", "size"):  # each run sets these itself
        settings.pop(per_run)
    folder.mkdir(parents=True, exist_ok=True)
    check_settings(folder, settings)


def _gap(spec: RunSpec, path: Path, net, train, models: Path, seed: int, backgrounds: Path | None,
         n_images: int, log, render_base=None) -> dict:
    """The gap meter's report for one synthetic configuration (n_images class-balanced images against the
    real train split, in the feature network `net`), cached in `path`."""
    from renderer.export import atomic_write_text

    from . import gap as meter
    from .datasets import RenderStream

    settings = _gap_settings(spec, models, seed, backgrounds, render_base)
    cached = _current_gap(path, settings, net, n_images)
    if cached is not None:
        return cached
    config = _render_config(spec, seed, backgrounds, render_base)
    stream = RenderStream(models, config, class_names=train.class_names, length=n_images)
    images, labels = meter.collect(stream)
    report, _ = meter.measure(net, train.images, train.labels, images, labels, train.class_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({**report.to_dict(), "render": settings}, indent=2) + "\n")
    log(f"gap | {spec.name}: KID x 100 {100 * report.kid:.2f}, real classifier on it {100 * report.accuracy:.1f}%, "
        f"coverage of the real classes {100 * report.coverage:.1f}%")
    return report.to_dict()


def _gap_settings(spec: RunSpec, models: Path, seed: int, backgrounds: Path | None, render_base=None) -> dict:
    """The render settings a row's gap reading records (and is checked against)."""
    from renderer.export import settings_of

    return settings_of(_render_config(spec, seed, backgrounds, render_base), Path(models).resolve())


def _current_gap(path: Path, settings: dict, net, n_images: int) -> dict | None:
    """The reading saved in `path` if it measured these images as they are now: a reading of other images
    (another --config, older code) or in another network's features is not comparable, since the table sets
    the rows' readings side by side."""
    from . import gap as meter

    if not path.is_file():
        return None
    cached = json.loads(path.read_text())
    if (cached.get("n_synthetic") == n_images and cached.get("render", settings) == settings
            and cached.get("meter_version", 1) == meter.METER_VERSION and meter.measured_by(cached, net)):
        return cached
    return None


def _render_config(spec: RunSpec, seed: int, backgrounds: Path | None, base=None, size: int = 32):
    """The row's render settings: `base` (default: the defaults) with the row's variations switched on, its
    realism step and background folder; the run's seed; the real images' size."""
    from renderer import RenderConfig
    from renderer.variations import parse_names

    base = base or RenderConfig()
    variations, supersample = base.variations.only(parse_names(spec.variations)), base.supersample
    if spec.step is not None:
        from .realism import step_config

        variations, supersample = step_config(spec.step, variations)
    if spec.backgrounds == REAL_BACKGROUNDS:
        variations = replace(variations, background=replace(variations.background, image_dir=backgrounds))
    return replace(base, size=size, seed=seed, variations=variations, supersample=supersample)


def _write_samples(path: Path, specs: list[RunSpec], train, models: Path, seed: int, backgrounds: Path | None,
                   render_base=None, n: int = 16) -> None:
    """The first `n` real training images and the first `n` synthetic images of each variation setting
    in the table: exactly what the runs of seed `seed` start training on."""
    from .datasets import RenderStream
    from .report import samples_sheet

    step = max(1, len(train) // n)
    rows = [("real (train)", [train[i][0].numpy() for i in range(0, step * n, step)])]
    first = {}  # each variation setting once, named by the first row that uses it
    for spec in specs:
        if spec.ratio != "1:0":
            label = spec.name if spec.ratio == "0:1" else f"synthetic ({spec.variations})"
            if spec.backgrounds and spec.ratio != "0:1":
                label = f"synthetic ({spec.variations}, {spec.backgrounds})"
            if spec.step is not None:
                label = spec.name
            first.setdefault((spec.variations, spec.backgrounds, spec.step), (label, spec))
    for label, spec in first.values():
        stream = RenderStream(models, _render_config(spec, seed, backgrounds, render_base),
                              class_names=train.class_names, length=n)
        rows.append((label, [image.numpy() for image, _ in stream]))
    samples_sheet(path, rows)


def _write_table(table: str, data: str, scale: str, seeds: list[int], results: dict[str, list[float]],
                 out: Path, paper: PaperValues | None, details: dict[str, list[dict]], paper_label: str,
                 gaps: dict[str, dict]) -> str:
    from renderer.export import atomic_write_text

    from .report import plot_table, write_summary

    text = aggregate(results, paper, details, paper_label, gaps)
    (out / table).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / table / "table.md", f"# {table} on {data}, scale {scale}, seeds {seeds}\n\n{text}")
    write_summary(out / table / "results.json", {"table": table, "data": data, "scale": scale, "seeds": seeds,
                                                 "test_acc_at_best_val": results, "paper": paper or {},
                                                 "paper_label": paper_label,
                                                 "kid": {k: v["kid"] for k, v in gaps.items()}})
    plot_table(out / table / "table.png", results, f"{table} on {data}, scale {scale}", paper)
    return text
