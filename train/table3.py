"""The paper's Table 3 as a command: raw, CycleGAN-refined and MrGAN-refined synthetic images, synthetic only
and mixed with real images, every stage-2 mapping.

Per seed s, under OUT/table3/:
    gan/seed-s/rr-rs/       MrGAN, 2 stages; its stage 1 is the CycleGAN of the CycleGAN rows
    gan/seed-s/r-rs, rr-s/  stage 1 copied from rr-rs (stage 1 does not depend on the mapping), stage 2 trained
    pools/seed-s/stats.json the photo-statistics map of the "(no GAN)" rows, fitted on the raw pool and the
                            real train images (train/colour_match.py)
    pools/seed-s/<key>.npz  the synthetic images every classifier row of that seed draws from: the first
                            POOL_IMAGES images of the default render stream, raw or refined (refining a pool
                            once gives the pixels on-the-fly refinement gives, tested, at a fraction of the cost:
                            every synthetic row then sees the same images, only their refinement differs)
    <row>/seed-s/           a classifier run (a ratio sub-folder per candidate for mixed rows: the ratio is
                            cross-validated on the validation split, as the paper does)
Rows with "refined-real test" (rr-* mappings) move the real train/val/test images into the domain the
refined images aim at (stage-1 refined real: the paper's synthetic-only MrGAN row).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from renderer.mesh_cache import NPZ_ERRORS

POOL_IMAGES = 50_000
QUICK_RATIOS = ("1:1", "1:7")  # candidates of the mixed rows at quick scale (paper scale: 1:1, 1:3, 1:7, 1:15)
PAPER_RATIOS = ("1:1", "1:3", "1:7", "1:15")
MAPPINGS = ("rr-rs", "r-rs", "rr-s")


@dataclass(frozen=True)
class Row:
    name: str
    ratio: str  # "1:0", "0:1" or "auto"
    refiner: str | None = None  # None (raw), "stats" (colour_match, no GAN), "cyclegan", or a mapping (MrGAN)
    refine_real: bool = False
    epochs_factor: int = 1  # x the scale's epochs: the fine-tuning rows train as long as Table 2's
    init: str | None = None  # start from this row's classifier of the same seed (its best.pt)


TABLE3 = [
    Row("real only", "1:0"),
    Row("synthetic only: no refinement", "0:1"),
    Row("synthetic only: photo statistics (no GAN)", "0:1", "stats"),  # not in the paper: the GAN's baseline
    Row("synthetic only: CycleGAN-refined", "0:1", "cyclegan"),
    Row("synthetic only: MrGAN-refined", "0:1", "rr-rs", True),  # the paper's row: rr-rs, refined-real test
    Row("synthetic only: MrGAN r-rs", "0:1", "r-rs"),
    Row("synthetic only: MrGAN rr-s, refined-real test", "0:1", "rr-s", True),
    Row("real + synthetic (no refinement)", "auto"),
    Row("real + photo-statistics synthetic (no GAN)", "auto", "stats"),
    Row("real + CycleGAN-refined synthetic", "auto", "cyclegan"),
    Row("real + MrGAN-refined synthetic", "auto", "rr-rs", True),
    Row("real + MrGAN r-rs", "auto", "r-rs"),
    Row("real + MrGAN rr-s, refined real", "auto", "rr-s", True),
    # Not in the paper. Pre-training on renders, then fine-tuning on the photos, is the recipe that measured best
    # (Table 2's pre-training row): does refining the renders help it? Each row fine-tunes the synthetic-only
    # row's classifier of its seed on the real images for 4x the epochs, as Table 2 does; real only trained as
    # long is the baseline. The MrGAN row fine-tunes and tests on stage-1 refined real images, as its
    # synthetic-only row tests.
    Row("real only, 4x epochs", "1:0", epochs_factor=4),
    Row("fine-tuned on real from raw renders", "1:0", epochs_factor=4, init="synthetic only: no refinement"),
    Row("fine-tuned on real from photo-statistics renders", "1:0", epochs_factor=4,
        init="synthetic only: photo statistics (no GAN)"),
    Row("fine-tuned on real from CycleGAN renders", "1:0", epochs_factor=4, init="synthetic only: CycleGAN-refined"),
    Row("fine-tuned on real from MrGAN renders, refined real", "1:0", "rr-rs", True, epochs_factor=4,
        init="synthetic only: MrGAN-refined"),
]


class Pool(torch.utils.data.Dataset):
    """Synthetic images held in memory (uint8 (N, 3, H, W)) with their labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, class_names: list[str]):
        self.images, self.labels, self.class_names = images, labels, list(class_names)
        self.missing_classes: list[str] = []

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


def gan_runs(out: Path, seed: int, real, models: Path, scale: str, feature_net, progress: bool, log,
             overrides: dict | None = None, render_base=None, needed: set[str] | None = None) -> dict[str, Path]:
    """Train (or resume) the MrGAN of every mapping for one seed; rr-rs first, its stage 1 shared.
    needed: the refiner keys the rows to run use ("cyclegan" and mappings; default all): only their stages
    are trained (the CycleGAN alone is rr-rs's stage 1)."""
    from .datasets import RenderStream
    from .mrgan import GENERATORS, mrgan_preset, train_mrgan

    needed = {"cyclegan", *MAPPINGS} if needed is None else set(needed)
    root = out / "table3" / "gan" / f"seed-{seed}"
    runs: dict[str, Path] = {}
    if not needed:
        return runs
    stream = RenderStream(models, _render_config(seed, render_base), class_names=real.class_names)
    for mapping in MAPPINGS:
        run = root / mapping
        if mapping != MAPPINGS[0] and mapping not in needed:
            continue
        # stage 2 where a row needs it, or where it is trained already (then only checked, not retrained)
        stages = 2 if mapping in needed or (run / "stage-2" / GENERATORS).is_file() else 1
        first = root / MAPPINGS[0] / "stage-1"
        if mapping != MAPPINGS[0] and not (run / "stage-1" / GENERATORS).is_file():
            tmp = run / ".stage-1.copy"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(first, tmp)
            tmp.rename(run / "stage-1")
        cfg = mrgan_preset(scale, stages=stages, mapping=mapping, seed=seed, **(overrides or {}))
        log(f"table3 | MrGAN {mapping} | seed {seed}" + (" | stage 1 only" if stages == 1 else ""))
        train_mrgan(cfg, real, stream, run, feature_net=feature_net, progress=progress,
                    log=lambda m, k=mapping: log(f"  {k}: {m}"))
        runs[mapping] = run
    return runs


# mrgan_preset keywords that change how a GAN is logged or run, not what it learns
_NOT_RECIPE = {"gap_every", "gap_images", "sample_every", "checkpoint_every", "log_every", "compile", "device"}


def gan_recipe(scale: str, overrides: dict | None) -> dict:
    """What every GAN of a sweep learns with, resolved (the preset and its overrides, flattened; the seed,
    which differs between seeds, left out): two ways of asking for the same recipe give the same dict."""
    from .mrgan import mrgan_preset

    # gap_every stays: with the meter off, quick's keep = "best" falls back to "last"
    cfg = mrgan_preset(scale, **{k: v for k, v in (overrides or {}).items()
                                 if k not in _NOT_RECIPE or k == "gap_every"})
    return _flat(asdict(cfg.cyclegan))


def _flat(gan: dict) -> dict:
    def plain(v):  # JSON's form, so a recipe read back from gan.json compares equal
        return list(v) if isinstance(v, tuple) else v

    nets = gan.get("networks") or {}
    flat = {k: plain(v) for k, v in gan.items() if k not in ("networks", "seed")}
    return {**flat, **{f"networks.{k}": plain(v) for k, v in nets.items()}}


def _trained_recipe(folder: Path) -> dict | None:
    """The recipe the folder's GANs were trained with, read from their runs (the truth, whatever gan.json says
    or whichever preset was current then), or None before any GAN run."""
    from .mrgan import MrGanConfig

    for path in sorted(Path(folder).glob("gan/seed-*/*/mrgan.json")):
        try:
            return _flat(asdict(MrGanConfig.from_dict(json.loads(path.read_text())["config"]).cyclegan))
        except (ValueError, KeyError, TypeError):
            continue  # a damaged run file: the next one tells, or the stages' own checks will
    return None


def check_gan_overrides(folder: Path, overrides: dict | None, scale: str = "quick") -> None:
    """A sweep's folder holds one GAN recipe: its pools and rows are read as this sweep's, so a sweep with
    another recipe is refused in one line naming what differs. FOLDER/gan.json records the overrides and the
    resolved recipe on first use; the folder's trained runs, where there are any, say what was trained (so a
    changed preset is caught too, and a folder from before gan.json recorded the recipe still resumes)."""
    from renderer.export import atomic_write_text

    want = {k: v for k, v in sorted((overrides or {}).items()) if v is not None and k not in _NOT_RECIPE}
    recipe = gan_recipe(scale, overrides)
    path = Path(folder) / "gan.json"
    saved = None
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not the sweep's GAN settings (unreadable JSON: {exc}); restore or delete "
                             "it (the GAN runs beside it say what was trained)") from None
    have = _trained_recipe(folder)
    if have is None and isinstance(saved, dict) and isinstance(saved.get("recipe"), dict):
        have = saved["recipe"]
    if have is None and saved is not None:  # gan.json of the overrides alone (session 14), no run yet
        if saved != want:
            raise ValueError(f"{folder}: holds Table 3 runs of GAN settings {saved or '(the preset)'}, these are "
                             f"{want or '(the preset)'}: use another --out")
    elif have is not None and have != recipe:
        diff = ", ".join(f"{k} {have.get(k)} there, {recipe.get(k)} here"
                         for k in sorted(set(have) | set(recipe)) if have.get(k) != recipe.get(k))
        raise ValueError(f"{folder}: holds Table 3 runs of another GAN recipe ({diff}): use another --out")
    record = {"overrides": want, "recipe": recipe}
    if saved != record:  # seeds run side by side read this file: written once, or upgraded once
        Path(folder).mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def _render_config(seed: int, base=None):
    """`base` (a --config file; default: the defaults) at the real images' size and the run's seed."""
    from dataclasses import replace

    from renderer import RenderConfig

    return replace(base or RenderConfig(), size=32, seed=seed)


def pool(out: Path, seed: int, key: str, runs: dict[str, Path], models: Path, class_names: list[str],
         n: int = POOL_IMAGES, render_base=None, photos: torch.Tensor | None = None) -> Pool:
    """The seed's synthetic pool, raw (key None) or refined by a refiner key, cached as .npz. photos: the real
    train images (uint8 (N, 3, H, W)) the "stats" key fits its map to."""
    from .cifar_da import _atomic_savez
    from .datasets import RenderStream

    name = key or "raw"
    path = out / "table3" / "pools" / f"seed-{seed}" / f"{name}-{n}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as d:
                return Pool(torch.from_numpy(d["images"]), torch.from_numpy(d["labels"]), class_names)
        except NPZ_ERRORS:
            pass  # a cache the run wrote itself: a torn one is made again, not fatal hours into a table
    if key is None:
        stream = RenderStream(models, _render_config(seed, render_base), class_names=class_names, length=n,
                              block=256)
        images, labels = [], []
        for x, y in stream:
            images.append(x)
            labels.append(y)
        images, labels = torch.cat(images), torch.cat(labels)
        if (labels < 0).any():  # models outside the classes: RenderStream keeps them in block mode
            keep = labels >= 0
            images, labels = images[keep], labels[keep]
    elif key == "stats":
        from .colour_match import PhotoStats

        if photos is None:
            raise ValueError("the photo-statistics pool needs the real train images")
        raw = pool(out, seed, None, runs, models, class_names, n, render_base)
        stats = PhotoStats.fit(raw.images, photos)
        stats.save(path.parent / "stats.json")
        images, labels = stats.s2r(raw.images), raw.labels
    else:
        raw = pool(out, seed, None, runs, models, class_names, n, render_base)
        ref = _refiner(key, runs)
        images, labels = ref.s2r(raw.images), raw.labels
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_savez(path, images=images.numpy(), labels=labels.numpy())
    return Pool(images, labels, class_names)


def _refiner(key: str, runs: dict[str, Path]):
    """The generators of a row's refiner, on the device the classifiers train on."""
    from .loop import pick_device
    from .mrgan import Refiner

    device = pick_device("auto")
    if key == "cyclegan":
        return Refiner.load(runs[MAPPINGS[0]], stage=1, device=device)
    return Refiner.load(runs[key], device=device)


def run_table3(data: str, real_dir: Path, models: Path, out: Path, scale: str, seeds: list[int],
               epochs: int | None = None, log=print, progress: bool = True, gap_images: int = 2000,
               paper: dict[str, float] | None = None, paper_label: str | None = None,
               gan_overrides: dict | None = None, pool_images: int = POOL_IMAGES, render_base=None,
               rows: list[str] | None = None) -> str:
    """Every row of Table 3 for each seed, seed by seed (GANs first), rewriting table.md after every run.
    gan_overrides: mrgan_preset keywords (iterations, batch_size, ...) for every GAN; pool_images: the size of
    each seed's synthetic pool; render_base: the RenderConfig (a --config file) the synthetic images use;
    rows: only the rows --rows picks (as for the other tables) and the GAN stages they need; the table still
    shows every row's finished runs."""
    from .datasets import RealDataset
    from .experiments import _picks, _write_table, check_render_base, pretrained, row_names, shipped_paper_values, slug
    from .gap import cached_feature_net
    from .loop import train_classifier
    from .report import plot_kid_panels

    chosen = [row for row in TABLE3 if rows is None or any(_picks(r, row.name) for r in rows)]
    if not chosen:
        raise ValueError(f"--rows {','.join(rows or [])}: no row of table3 matches ({'; '.join(row_names('table3'))})")
    starts = {row.init for row in chosen if row.init is not None}  # a fine-tuning row's pre-training runs first
    chosen = [row for row in TABLE3 if row in chosen or row.name in starts]
    splits = {s: RealDataset.from_split(real_dir, s) for s in ("train", "val", "test")}
    classes = splits["train"].class_names
    if paper is None:
        paper, shipped_label = shipped_paper_values("table3", [row.name for row in TABLE3])
        paper_label = paper_label or shipped_label
    check_render_base(out / "table3", render_base, models)
    check_gan_overrides(out / "table3", gan_overrides, scale)
    net = cached_feature_net(real_dir, progress=progress, log=log)
    results: dict[str, list[float]] = {row.name: [] for row in TABLE3}
    details: dict[str, list[dict]] = {row.name: [] for row in TABLE3}
    gaps_by_seed: dict[str, list[dict]] = {}
    ratios = QUICK_RATIOS if scale == "quick" else PAPER_RATIOS

    def write() -> str:
        gaps = {name: {"kid": float(np.mean([g["kid"] for g in gs])),
                       "accuracy": float(np.mean([g["accuracy"] for g in gs]))}
                for name, gs in gaps_by_seed.items()}
        _write_ratios(out, details)
        return _write_table("table3", data, scale, seeds, results, out, paper, details, paper_label, gaps)

    text = ""
    for seed in seeds:
        runs = gan_runs(out, seed, splits["train"], models, scale, net, progress, log, gan_overrides,
                        render_base, needed={row.refiner for row in chosen if row.refiner not in (None, "stats")})
        panels = gan_gap_panels(out / "table3")  # redrawn as each seed's GANs finish, not after every row
        if panels:
            plot_kid_panels(out / "table3" / "gan_kid.png", panels, f"table3 on {data} ({scale}): the GANs' KID")
        unwritten = False
        for row in TABLE3:
            candidates = ratios if row.ratio == "auto" else (row.ratio,)
            folder = out / "table3" / slug(row.name) / f"seed-{seed}"
            ratio_runs = {ratio: folder / f"ratio-{ratio.replace(':', '-')}" if row.ratio == "auto" else folder
                          for ratio in candidates}
            done = all(_finished(run, _classifier_config(row, ratio, scale, seed, epochs).epochs)
                       for ratio, run in ratio_runs.items())
            # a finished row is read back from its records: mapping the real images through a refiner and
            # loading a pool (minutes each on a CPU) would only recompute what the records already hold
            reading = _reading(folder / "gap.json", net)
            measured = not gap_images or row.ratio == "1:0" or reading is not None
            if row not in chosen or (done and measured):  # not asked for: shown only as far as it has run
                if not done:
                    continue
                if reading is not None:
                    gaps_by_seed.setdefault(row.name, []).append(reading)
                elif (folder / "gap.json").is_file():
                    log(f"table3 | {row.name} | seed {seed}: its gap reading was taken in another network's "
                        f"features, left out of the KID column (--rows '={row.name}' measures it again)")
                _record(row, {r: json.loads((run / "summary.json").read_text()) for r, run in ratio_runs.items()},
                        results, details)
                unwritten = True  # drawn once the seed's rows are read, not once per row read
                continue
            start = None
            if row.init is not None:
                start, why = pretrained(out / "table3" / slug(row.init) / f"seed-{seed}", "table3", row.init)
                if start is None:
                    log(f"table3 | {row.name} | seed {seed}: {why}")
                    continue
            real = splits
            if row.refine_real:
                ref = _refiner(row.refiner, runs)
                real = {k: v.mapped(ref.real_domain) for k, v in splits.items()}
            syn = None if row.ratio == "1:0" else pool(out, seed, row.refiner, runs, models, classes, pool_images,
                                                       render_base, photos=splits["train"].images)
            if syn is not None and gap_images:
                gaps_by_seed.setdefault(row.name, []).append(
                    _gap(folder / "gap.json", net, real["train"], syn, gap_images))
            summaries = {}
            for ratio, run in ratio_runs.items():
                cfg = _classifier_config(row, ratio, scale, seed, epochs)
                cfg = replace(cfg, extra={"table": "table3", "data": data, "configuration": row.name},
                              init=None if start is None else str(start))
                if not _finished(run, cfg.epochs):
                    log(f"table3 | {row.name} | seed {seed} | ratio {ratio}")
                    train_classifier(cfg, real["train"], real["val"], real["test"], syn, run, classes,
                                     progress=progress, log=lambda m: log(m) if m.startswith("warning") else None)
                summaries[ratio] = json.loads((run / "summary.json").read_text())
            _record(row, summaries, results, details)
            text, unwritten = write(), False  # current after every run of a long sweep
        if unwritten:
            text = write()
    return text


def _classifier_config(row: Row, ratio: str, scale: str, seed: int, epochs: int | None):
    """The classifier settings of one run of `row` (refiners named, not loaded: the record says which)."""
    from .config import preset

    kwargs = dict(real_only=ratio == "1:0", ratio=ratio, seed=seed, workers=0,
                  refiner=None if row.refiner is None or ratio == "1:0" else f"table3 {row.refiner} seed {seed}",
                  refine_real=f"table3 {row.refiner} seed {seed}" if row.refine_real else None)
    return preset("resnet20", scale, epochs=epochs, epochs_factor=row.epochs_factor, **kwargs)


def _record(row: Row, summaries: dict[str, dict], results: dict, details: dict) -> None:
    """A row's result for one seed: its run, or for a mixed row the ratio the validation split chose."""
    from .loop import choose_ratio

    best = choose_ratio(summaries)
    results[row.name].append(summaries[best]["test_acc_at_best_val"])
    details[row.name].append({**summaries[best], "chosen_ratio": best})


def _finished(run: Path, epochs: int) -> bool:
    from .experiments import finished

    return finished(run, epochs)


def _gap(path: Path, net, real, syn: Pool, n: int) -> dict:
    """KID of a pool's first n images against the real train images the row tests against."""
    from renderer.export import atomic_write_text

    from .gap import measure

    reading = _reading(path, net)
    if reading is not None:
        return reading
    report, _ = measure(net, real.images, real.labels, syn.images[:n], syn.labels[:n], real.class_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(report.to_dict(), indent=2) + "\n")
    return report.to_dict()


def _reading(path: Path, net) -> dict | None:
    """The gap reading saved in `path` if it was taken in `net`'s features (the table compares its rows' KIDs
    with each other), else None."""
    from .gap import measured_by

    if not path.is_file():
        return None
    reading = json.loads(path.read_text())
    return reading if measured_by(reading, net) else None


_SIDE = {"s": "synthetic", "r": "real", "rs": "refined syn.", "rr": "refined real"}  # refined: by stage 1


def gan_gap_panels(folder: Path) -> dict[str, dict[str, dict]]:
    """The KID each GAN stage of a sweep measured while training, by step, one line per seed (report.py's
    plot_kid_panels shape): stage 1 once (every mapping shares rr-rs's), then stage 2 of each mapping trained.
    kept: the step of the generators a finished stage handed on (None while it trains). Stages that measured no
    KID (--gap-every 0) are left out."""
    from .loop import load_checkpoint
    from .mrgan import GENERATORS, stage_sides
    from .report import read_metrics

    panels: dict[str, dict[str, dict]] = {}
    seeds = sorted(Path(folder).glob("gan/seed-*"), key=lambda p: int(p.name.split("-")[1]))
    for mapping, stage in [(MAPPINGS[0], 1), *((m, 2) for m in MAPPINGS)]:
        syn, real = stage_sides(mapping, stage)
        name = (f"stage 1: {_SIDE[syn]} -> {_SIDE[real]}" if stage == 1 else
                f"stage 2 ({mapping}): {_SIDE[syn]} -> {_SIDE[real]}")
        for seed in seeds:
            run = seed / mapping
            rows = [r for r in read_metrics(run / f"stage-{stage}" / "metrics.csv") if "kid_to_target" in r]
            if not rows:
                continue
            done = run / f"stage-{stage}" / GENERATORS  # written when the stage ends: the step it kept
            kept = load_checkpoint(done).get("step") if done.is_file() else None
            panels.setdefault(name, {})[seed.name.replace("-", " ")] = {
                "steps": [r["step"] for r in rows], "kid": [r["kid_to_target"] for r in rows], "kept": kept}
    return panels


def _write_ratios(out: Path, details: dict[str, list[dict]]) -> None:
    from renderer.export import atomic_write_text

    chosen = {name: [d.get("chosen_ratio") for d in ds] for name, ds in details.items() if ds}
    atomic_write_text(out / "table3" / "chosen_ratios.json", json.dumps(chosen, indent=2) + "\n")
