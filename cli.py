"""The `mixreal` command line."""

from __future__ import annotations

import io
import os
import sys
from dataclasses import replace
from pathlib import Path

import click


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _count(n: int, noun: str) -> str:
    """'1 file', '4 files': summaries read as sentences."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}{'es' if noun.endswith('s') else 's'}"


def _or_fail(load, *args):
    """`load(*args)`, or the one-line error of the ValueError it raises (a bad file names itself)."""
    try:
        return load(*args)
    except ValueError as exc:
        _fail(str(exc))


def _models_root(models: Path | None) -> Path:
    if models is not None:
        return models
    from assets import build_default_models

    return build_default_models()


def _load_library(models: Path | None, classes: str | None, on_skip=None):
    from renderer import ModelLibrary, ModelLoadError
    from renderer.library import report

    root = _models_root(models)
    wanted = [c.strip() for c in classes.split(",")] if classes else None
    try:
        return root, ModelLibrary.load(root, on_skip=on_skip or report, classes=wanted, progress=True,
                                       workers=os.cpu_count() or 1)
    except (ModelLoadError, FileNotFoundError) as exc:
        _fail(str(exc))


def _given(name: str) -> bool:
    """Whether the user set option `name` (on the command line or through its environment variable)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


def _render_config(size, variations, seed, batch_size, msaa, device, textures, backgrounds, lod, supersample=2,
                   config_file: Path | None = None, force: tuple[str, ...] = ()):
    """The render settings: the defaults, then the --config file, then the options given on the command line
    (and those in `force`, which the caller decides, such as the classifier's image size)."""
    from renderer import RenderConfig
    from renderer.config_file import ConfigError, load_config
    from renderer.variations import parse_names

    try:
        base = load_config(config_file) if config_file is not None else RenderConfig()
        wins = (lambda name: True) if config_file is None else (lambda name: name in force or _given(name))
        var = base.variations
        if wins("variations"):
            var = var.only(parse_names(variations))
        if textures is not None:
            var = replace(var, texture=replace(var.texture, image_dir=textures))
        if backgrounds is not None:
            var = replace(var, background=replace(var.background, image_dir=backgrounds))
        given = dict(size=size, seed=seed, batch_size=batch_size, msaa=msaa, lod=lod, supersample=supersample)
        top = {k: v for k, v in given.items() if wins(k)}
        return replace(base, variations=var, device=device, **top)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected K/N such as 0/4") from None
    if n < 1 or not 0 <= k < n:
        raise click.BadParameter(f"{text!r}: need 0 <= K < N")
    return k, n


def render_options(f):
    """Options shared by every command that renders."""
    opts = [
        click.option("--models", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                     help="Models folder: MODELS/<class>/<model file or folder>. Default: the embedded set."),
        click.option("--classes", default=None, help="Comma list of classes to use (default: all)."),
        click.option("--variations", default="all", show_default=True,
                     help="all | none | comma list of texture,lighting,background,camera,occlusion,augment2d"),
        click.option("--size", default=64, show_default=True, type=click.IntRange(16, 1024), help="Image side, px."),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1, 256),
                     help="Images per draw and per read-back."),
        click.option("--supersample", default=2, show_default=True, type=click.IntRange(1, 4),
                     help="Anti-aliasing: each image drawn at N x size and box-filtered down (1: off, hard edges)."),
        click.option("--msaa", default=0, show_default=True, type=click.Choice(["0", "2", "4", "8"]),
                     callback=lambda c, p, v: int(v), help="Multisample anti-aliasing samples, on top."),
        click.option("--device", default=None, type=int, help="GPU to render on, as CUDA numbers it in this process "
                     "(CUDA_VISIBLE_DEVICES respected; mapped to its EGL device)."),
        click.option("--textures", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                     help="Folder of images for the texture variation (default: embedded procedural ones)."),
        click.option("--backgrounds", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                     help="Folder of images for background crops (default: embedded procedural ones)."),
        click.option("--lod/--no-lod", default=True, show_default=True,
                     help="Use simplified meshes when the output is too small to show full detail."),
        click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     default=None, help="TOML file of render settings and variation ranges (`mixreal config show` "
                                        "prints one); options given here override it."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def data_options(real_help: str):
    """--real, --synthetic and --stream: the real set, and a synthetic folder or a models folder to render from."""
    def wrap(f):
        folder = click.Path(exists=True, file_okay=False, path_type=Path)
        f = click.option("--stream", type=folder, default=None,
                         help="A models folder to render from on the fly (with the render options).")(f)
        f = click.option("--synthetic", type=folder, default=None, help="A `mixreal render` output folder.")(f)
        return click.option("--real", "real_dir", required=True, type=folder, help=real_help)(f)
    return wrap


def stream_options(f):
    """How --stream renders: --variations, --backgrounds, --textures, --supersample."""
    folder = click.Path(exists=True, file_okay=False, path_type=Path)
    f = click.option("--supersample", default=2, show_default=True, type=click.IntRange(1, 4),
                     help="Anti-aliasing for --stream: drawn at N x size, box-filtered down.")(f)
    f = click.option("--textures", type=folder, default=None,
                     help="Folder of images for the texture variation (--stream).")(f)
    f = click.option("--backgrounds", type=folder, default=None,
                     help="Folder of photos for background crops (--stream), e.g. scenes without your classes.")(f)
    f = click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     default=None, help="TOML render settings for --stream (see mixreal config show).")(f)
    return click.option("--variations", default="all", show_default=True, help="Latent variations for --stream.")(f)


class _Main(click.Group):
    """The system refusing a read or write (disk full, no permission, a read-only or vanished mount) is one line
    naming the file, like every other bad input, not a traceback; MIXREAL_TRACEBACK=1 shows the traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if os.environ.get("MIXREAL_TRACEBACK"):
                raise
            from renderer.export import os_error_line

            raise click.ClickException(os_error_line(exc)) from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mixreal")
def main() -> None:
    """mixreal: train image classifiers from a little real data and a lot of rendered data."""


@main.command("models")
@click.option("--models", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Models folder: MODELS/<class>/<model file or folder>. Default: the embedded set.")
@click.option("--classes", default=None, help="Comma list of classes to look at (default: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
def models_command(models, classes, as_json):
    """Check a models folder before rendering it: the classes mixreal sees in it (ShapeNet's synset folders by
    name), models and faces per class, and every file it skips, with the reason. Parses each model once into
    the mesh cache, so the first render of the folder starts at once."""
    import json

    notes: list[str] = []  # skipped files and warnings, in the order the load met them
    root, library = _load_library(models, classes, on_skip=notes.append)
    table = library.class_table()
    if as_json:
        skipped = [{"path": str(p), "reason": r} for p, r in library.skipped]
        warnings = [n.removeprefix("warning ") for n in notes if n.startswith("warning ")]
        click.echo(json.dumps({"models_folder": str(root), "classes": table, "skipped": skipped,
                               "warnings": warnings}, indent=2))
        return
    click.echo(f"{root}: {_count(len(library.models), 'model')} in {_count(len(table), 'class')}, "
               f"{_count(len(library.skipped), 'file')} skipped")
    click.echo(f"{'class':<16} {'models':>7} {'faces (median)':>15} {'faces (max)':>12}  folders")
    for row in table:
        folders = ", ".join(row["folders"]) if row["folders"] != [row["class"]] else ""
        click.echo(f"{row['class']:<16} {row['models']:>7,} {row['faces_median']:>15,} {row['faces_max']:>12,}  "
                   f"{folders}")
    for line in notes:
        click.echo(line)


@main.command()
@render_options
@click.option("--per-model", default=None, type=click.IntRange(1), help="Images per model (default 10).")
@click.option("--per-class", default=None, type=click.IntRange(1),
              help="Images per class instead, shared evenly by its models: a class-balanced set.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Render processes on this machine (each its own GL context; GPU w mod #GPUs). On a GPU use "
                   "several per GPU, up to about the CPU cores: one process is CPU-bound.")
@click.option("--shard", default="0/1", show_default=True, callback=lambda c, p, v: _parse_shard(v),
              help="K/N: render only shard K (0-based) of N, e.g. one per machine into a shared OUT; "
                   "then run once without --shard to merge the manifests.")
@click.option("--format", "fmt", default="png", show_default=True, type=click.Choice(["png", "webdataset"]),
              help="png: OUT/<class>/*.png + manifest.jsonl; webdataset: tar shards + _info.json (for clusters).")
@click.option("--shard-size", default=1000, show_default=True, type=click.IntRange(1),
              help="Images per tar with --format webdataset.")
@click.option("--ray", "ray_address", default=None, metavar="local|auto|ADDRESS",
              help="Render on a Ray cluster: local starts one here, auto joins the running cluster, or its "
                   "address. Actors share each GPU (default: the cluster's CPUs per GPU) or take a CPU slot each; "
                   "--workers N sets the count. OUT must be storage "
                   "every node sees. Needs pip install 'mixreal[ray]'.")
def render(models, classes, variations, size, seed, batch_size, supersample, msaa, device, textures, backgrounds, lod,
           config_file, per_model, per_class, out, quiet, workers, shard, fmt, shard_size, ray_address):
    """Render a labelled dataset: OUT/<class>/<model>_<index>.png + OUT/manifest.jsonl, or WebDataset shards
    (OUT/mixreal-NNNNNN.tar with .png, .cls and .json per image, and OUT/_info.json).

    Re-running the same command resumes where it stopped. Every image depends only on (seed, model,
    index), so shards, workers and resumed runs give the same files.
    """
    from renderer import PlatformError, Renderer
    from renderer.export import OutputMismatch, render_dataset
    from renderer.parallel import render_parallel

    if per_model is not None and per_class is not None:
        _fail("give --per-model or --per-class, not both")
    if per_model is None and per_class is None:
        per_model = 10
    root, library = _load_library(models, classes)
    config = _render_config(size, variations, seed, batch_size, msaa, device, textures, backgrounds, lod, supersample,
                            config_file)
    try:
        if ray_address is not None:
            from renderer.cluster import render_ray

            if shard != (0, 1):
                _fail("--ray renders the whole job: the cluster takes the place of --shard")
            summary = render_ray(library, config, out, per_model, root, ray_address,
                                 actors=workers if workers > 1 else None, progress=not quiet, per_class=per_class,
                                 fmt=fmt, shard_size=shard_size)
        elif workers > 1:
            summary = render_parallel(library, config, out, per_model, root, workers, shard, progress=not quiet,
                                      per_class=per_class, shard_size=shard_size if fmt == "webdataset" else None)
        elif fmt == "webdataset":
            from renderer.shards import render_shards

            summary = render_shards(Renderer(library, config), out, per_model, root, shard_size,
                                    progress=not quiet, shard=shard, per_class=per_class)
        else:
            renderer = Renderer(library, config)
            summary = render_dataset(renderer, out, per_model, models_root=root, progress=not quiet, shard=shard,
                                     per_class=per_class)
    except (PlatformError, OutputMismatch, FileNotFoundError, RuntimeError) as exc:
        _fail(str(exc))
    click.echo(
        f"{summary.rendered} images rendered, {summary.already_done} already there, "
        f"{_count(len(library.models), 'model')} in {_count(len(library.classes), 'class')}, "
        f"{_count(len(summary.skipped_models), 'file')} skipped; "
        f"{summary.images_per_second:.0f} images/s -> {out}"
    )


@main.command()
@render_options
@click.option("--per-row", default=8, show_default=True, type=click.IntRange(1, 64), help="Images per row.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG to write.")
def preview(models, classes, variations, size, seed, batch_size, supersample, msaa, device, textures, backgrounds,
            lod, config_file, per_row, out):
    """Contact sheet: one row per variation switched on alone, plus one with all on."""
    from renderer import PlatformError
    from renderer.export import atomic_write_bytes
    from renderer.preview import contact_sheet

    _, library = _load_library(models, classes)
    config = _render_config(size, variations, seed, batch_size, msaa, device, textures, backgrounds, lod,
                            supersample, config_file)
    try:
        sheet = contact_sheet(library, config, per_row=per_row)
    except PlatformError as exc:
        _fail(str(exc))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue())
    click.echo(f"preview of {len(library.models)} models ({', '.join(library.classes)}) -> {out}")


@main.group("config")
def config_group() -> None:
    """Render settings as TOML files (`mixreal render --config FILE`)."""


@config_group.command("show")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A config file to read (default: mixreal's defaults).")
def config_show(config_file):
    """Print the effective render settings as TOML: every variation range, weight and setting, to start a file
    from (`mixreal config show > my.toml`)."""
    from renderer import RenderConfig
    from renderer.config_file import ConfigError, load_config, to_toml

    try:
        cfg = load_config(config_file) if config_file is not None else RenderConfig()
    except ConfigError as exc:
        _fail(str(exc))
    click.echo(to_toml(cfg), nl=False)


@main.command("studio")
@click.option("--models", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Models folder (default: the embedded models).")
@click.option("--classes", default=None, help="Comma list of classes to load (default: all).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from these settings (a TOML file, see mixreal config show).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to serve on; anything but the loopback requires the printed token.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option("--save-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Where 'save config' writes its TOML files.")
@click.option("--no-browser", is_flag=True, help="Only serve; do not open a browser.")
def studio(models, classes, config_file, host, port, save_dir, no_browser):
    """The renderer's GUI in the browser: pick models, switch variations and set their ranges, see a live grid
    of sample renders with their latent parameters and histograms, save the settings as a TOML config."""
    from renderer import RenderConfig
    from renderer.config_file import ConfigError, load_config

    try:
        from renderer.studio import Studio, serve
    except ImportError as exc:
        _fail(f"the studio needs Starlette and uvicorn ({exc}): pip install starlette uvicorn")
    root, library = _load_library(models, classes)
    try:
        base = load_config(config_file) if config_file is not None else RenderConfig()
    except ConfigError as exc:
        _fail(str(exc))
    # a port in use is bind_socket's one-line OSError, printed by _Main like any other
    serve(Studio(library, root, base, save_dir), host=host, port=port, open_browser=not no_browser, log=click.echo)


@main.group()
def data() -> None:
    """Build real datasets."""


@data.command("cifar-da")
@click.option("--variant", default="c10-da4", show_default=True,
              help="da9 | da4 | c10-da4, or a JSON/TOML class map {class: [\"cifar10:label\", ...]}.")
@click.option("--cifar10", type=click.Path(exists=True, path_type=Path), default=None,
              help="CIFAR-10: cifar-10-batches-py/ or -bin/ (or the folder holding it), or an .npz subset.")
@click.option("--cifar100", type=click.Path(exists=True, path_type=Path), default=None,
              help="CIFAR-100: cifar-100-python/ or cifar-100-binary/ (or the folder holding it).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--counts", default="500,50,50", show_default=True, help="Images per class: train,val,test.")
@click.option("--download", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Download the CIFAR releases needed into this folder first (needs internet).")
def cifar_da(variant, cifar10, cifar100, out, seed, counts, download):
    """Build CIFAR-DA splits (train/val/test .npz, dataset.json, preview.png)."""
    from train.cifar import CifarFormatError, load_cifar
    from train.cifar_da import Counts, build, write
    from train.classes import load_class_map

    try:
        class_map = load_class_map(variant)
        n = Counts.parse(counts)
    except ValueError as exc:
        _fail(str(exc))
    needed = sorted({s.split(":", 1)[0] for srcs in class_map.values() for s in srcs})
    given = {"cifar10": cifar10, "cifar100": cifar100}
    if download is not None:
        given = _download(download, needed, given)
    sources = {}
    try:
        for which in needed:
            if given[which] is None:
                _fail(f"variant {variant} needs {which}: pass --{which} DIR (or --download DIR)")
            sources[which] = load_cifar(given[which], which)
        splits, notes = build(class_map, sources, n, seed)
    except (CifarFormatError, ValueError) as exc:
        _fail(str(exc))
    info = {"variant": str(variant), "seed": seed, "class_map": class_map,
            "inputs": {k: str(v) for k, v in given.items() if v is not None}, **notes}
    write(out, splits, info)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
    click.echo(f"CIFAR-DA {variant}: {len(splits['train'].class_names)} classes; {sizes} images -> {out}")
    if notes["test_drawn_from_train"]:
        click.echo("note: no CIFAR test split given for " + "; ".join(notes["test_drawn_from_train"])
                   + ": test images drawn from the train split (disjoint from train and val)")


@data.command("photos")
@click.argument("photos", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", default=32, show_default=True, type=click.IntRange(8, 1024),
              help="Output side in px (32 for resnet20; the classifiers resize anything else to their input).")
@click.option("--fit", default="crop", show_default=True, type=click.Choice(["crop", "pad", "stretch"]),
              help="crop: shorter side to --size, centre crop; pad: the whole photo, padded white; stretch.")
@click.option("--split", "split_text", default="0.7,0.1,0.2", show_default=True,
              help="Shares of each class for train,val,test (a pre-split folder: for a split it lacks).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workers", default=None, type=click.IntRange(1, 64), help="Decoding processes (default: cores).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_photos(photos, out, size, fit, split_text, seed, workers, quiet):
    """Build train/val/test splits from your own photos: PHOTOS/<class>/*.jpg (or PHOTOS/{train,val,test}/<class>/).

    Writes what `mixreal data cifar-da` writes (train/val/test .npz, dataset.json, preview.png), so --real takes
    it. Unreadable and tiny files are reported and skipped, exact duplicates kept once (no test image has a copy
    in train); the split is seeded and stratified per class."""
    import json

    from train.cifar_da import write
    from train.photos import Fractions, build_from_folder

    try:
        fractions = Fractions.parse(split_text)
    except ValueError as exc:
        _fail(str(exc))
    settings = {"kind": "photos", "root": str(photos.resolve()), "size": size, "fit": fit, "seed": seed,
                "fractions": {"train": fractions.train, "val": fractions.val, "test": fractions.test}}
    old = out / "dataset.json"
    if old.is_file():  # runs trained on that split would no longer match it
        try:
            prev = json.loads(old.read_text())
        except ValueError:
            prev = {}
        changed = [k for k, v in settings.items() if prev.get(k) != v]
        if changed:
            _fail(f"{out}: holds a dataset built with other settings ({', '.join(changed)}); "
                  "choose another --out or remove it")
    try:
        splits, info = build_from_folder(photos, size, fractions, seed, fit, workers, progress=not quiet,
                                         on_skip=lambda m: click.echo(m, err=True))
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    write(out, splits, info)
    counts = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
    names = splits["train"].class_names
    click.echo(f"photos: {_count(len(names), 'class')} ({', '.join(names)}); "
               f"{counts} images at {size} px; {_count(info['skipped'], 'file')} skipped, "
               f"{_count(info['duplicates_removed'], 'duplicate')} removed -> {out}")
    if len(names) < 2:
        click.echo(f"warning: one class only: train classify needs at least 2 (add {photos}/<class>/ folders)",
                   err=True)
    for s in ("val", "test"):
        empty = [c for i, c in enumerate(splits[s].class_names) if not (splits[s].labels == i).any()]
        if empty:
            click.echo(f"warning: no {s} image for {', '.join(empty)}", err=True)


def _download(folder: Path, needed: list[str], given: dict) -> dict:
    from torchvision.datasets import CIFAR10, CIFAR100

    out = dict(given)
    for which in needed:
        if out[which] is not None:
            continue
        try:
            (CIFAR10 if which == "cifar10" else CIFAR100)(str(folder), download=True)
        except Exception as exc:  # network errors come in many types
            _fail(f"downloading {which} into {folder} failed: {str(exc).splitlines()[0] if str(exc) else exc}")
        out[which] = folder
    return out


@main.group("train")
def train_group() -> None:
    """Train classifiers."""


AUTO_RATIOS = ("1:1", "1:3", "1:7", "1:15")


@train_group.command("classify")
@data_options("Real dataset folder (train/val/test .npz from `mixreal data photos` or `data cifar-da`).")
@click.option("--ratio", default="1:7", show_default=True,
              help="real:synthetic per minibatch (1:0 real only, 0:1 synthetic only), or auto (picks among "
                   "1:1, 1:3, 1:7, 1:15 by validation accuracy).")
@click.option("--model", default="resnet20", show_default=True, type=click.Choice(["resnet20", "alexnet"]))
@click.option("--scale", default="paper", show_default=True, type=click.Choice(["paper", "quick"]),
              help="paper: the paper's schedule; quick: the same shape on a CPU budget.")
@click.option("--epochs", type=int, default=None, help="Override the preset's epochs.")
@click.option("--lr", type=float, default=None, help="Override the preset's learning rate.")
@click.option("--batch-size", type=int, default=None, help="Override the preset's batch size (128).")
@click.option("--augment/--no-augment", default=False, show_default=True,
              help="Random crop (4 px padding) + horizontal flip.")
@stream_options
@click.option("--refiner", type=click.Path(exists=True, path_type=Path), default=None,
              help="A `mixreal train mrgan` run, or a photo-stats.json written by `mixreal refine --match-photos`: "
                   "every synthetic batch is refined by it on the fly (s2r).")
@click.option("--refiner-stage", type=click.IntRange(1), default=None,
              help="Refine through this stage of --refiner (default: its last; 1 is a plain CycleGAN).")
@click.option("--refine-real", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A MrGAN run that moves the real train/val/test images into its refined images' domain "
                   "(rr-* mappings: the paper's refined-real test).")
@click.option("--init", "init_from", type=click.Path(exists=True, path_type=Path), default=None,
              help="Start from another run's weights (its folder: best.pt, or a .pt file), e.g. pre-train "
                   "synthetic only (--ratio 0:1), then fine-tune on real images (--ratio 1:0 --init THAT_RUN).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workers", default=None, type=click.IntRange(0, 64),
              help="DataLoader workers rendering or reading the synthetic images (default: 2 on a CPU; on a GPU "
                   "the CPU cores less 2, at most 8: one rendering process cannot feed a GPU).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder.")
@click.option("--quiet", is_flag=True)
def train_classify(real_dir, synthetic, stream, ratio, model, scale, epochs, lr, batch_size, augment, variations,
                   config_file, backgrounds, textures, supersample, refiner, refiner_stage, refine_real, init_from,
                   seed, workers, device, out, quiet):
    """Train a classifier on real + synthetic minibatches; evaluate on real images every epoch.

    Writes RUN/metrics.csv, RUN/accuracy.png, TensorBoard events, RUN/best.pt (best validation), RUN/last.pt
    and RUN/summary.json (test accuracy at the best validation epoch, with the exact config). Running the same
    command again resumes after the last completed epoch.
    """
    from train.config import preset
    from train.loop import RunMismatch, checkpoint_path, choose_ratio, train_classifier
    from train.mixing import Ratio

    ratios = AUTO_RATIOS if ratio == "auto" else (ratio,)
    try:
        parsed = [Ratio.parse(r) for r in ratios]
    except ValueError as exc:
        _fail(str(exc))
    if synthetic is not None and stream is not None:
        _fail("give --synthetic or --stream, not both")
    needs_synthetic = any(r.synthetic for r in parsed)
    if needs_synthetic and synthetic is None and stream is None:
        _fail(f"ratio {ratio} needs synthetic images: --synthetic DIR or --stream MODELS")
    real_only = all(r.synthetic == 0 for r in parsed)
    if refiner is not None and not needs_synthetic:
        _fail("--refiner refines synthetic images: give a ratio with synthetic images")
    try:
        train, val, test = (_real_split(real_dir, s) for s in ("train", "val", "test"))
        classes = train.class_names
        if len(classes) < 2:  # would train to a meaningless 100 %
            _fail(f"{real_dir}: {_count(len(classes), 'class')} ({', '.join(classes)}): a classifier needs at "
                  "least 2 (add PHOTOS/<class>/ folders and build it again)")
        render = dict(variations=variations, backgrounds=backgrounds, textures=textures, supersample=supersample,
                      config_file=config_file)
        size = int(train.images.shape[-1])  # the model resizes both to its own input (AlexNet: 224 px)
        syn = _synthetic_source(synthetic, stream, classes, seed, size, **render) if needs_synthetic else None
        transform, notes = None, {}
        if refiner is not None or refine_real is not None:
            from train.loop import pick_device

            gan_device = pick_device(device)  # the generators run where the classifier trains
        if refiner is not None and refiner.is_file():  # photo statistics: no network, no stages
            from train.colour_match import PhotoStats

            if refiner_stage is not None:
                _fail(f"{refiner}: photo statistics have no stages (--refiner-stage)")
            transform, notes["refiner"] = PhotoStats.load(refiner).s2r, str(refiner.resolve())
        elif refiner is not None:
            from train.mrgan import Refiner

            ref = Refiner.load(refiner, refiner_stage, gan_device)
            transform, notes["refiner"] = ref.s2r, ref.source
        if refine_real is not None:
            train, val, test, notes["refine_real"] = _refined_real(refine_real, gan_device, train, val, test)
        results = {}
        for r in ratios:
            cfg = preset(model, scale, real_only=real_only, epochs=epochs, lr=lr, batch_size=batch_size,
                         augment=augment, seed=seed, workers=workers, device=device, ratio=r,
                         init=str(checkpoint_path(init_from)) if init_from is not None else None, **notes)
            Ratio.parse(cfg.ratio).split(cfg.batch_size)
            run = out if len(ratios) == 1 else out / f"ratio-{r.replace(':', '-')}"
            results[r] = train_classifier(cfg, train, val, test, syn, run, classes, progress=not quiet,
                                          log=click.echo, synthetic_transform=transform)
    except (RunMismatch, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if len(ratios) > 1:
        from train.report import write_summary

        best = choose_ratio(results)
        keys = ("best_val_acc", "best_val_loss", "test_acc_at_best_val")
        write_summary(out / "summary.json", {"chosen_ratio": best, **results[best],
                                             "by_ratio": {k: {key: v[key] for key in keys if key in v}
                                                          for k, v in results.items()}})
        click.echo(f"ratio auto: chose {best} by validation accuracy (ties: the lower validation loss)")
        summary = results[best]
    else:
        summary = results[ratios[0]]
    import os

    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        click.echo(f"test accuracy at the best validation epoch ({summary['best_epoch']}): "
                   f"{100 * summary['test_acc_at_best_val']:.2f}% -> {out / 'summary.json'}")


@train_group.command("mrgan")
@data_options("Real dataset folder (`mixreal data photos` or `data cifar-da`): its train split is the real domain.")
@stream_options
@click.option("--stages", default=2, show_default=True, type=click.IntRange(1, 8),
              help="CycleGANs stacked (1: a plain CycleGAN).")
@click.option("--mapping", default="rr-rs", show_default=True, type=click.Choice(["rr-rs", "r-rs", "rr-s"]),
              help="What stage 2 (and later) maps: refined real <-> refined synthetic, real <-> refined "
                   "synthetic, or refined real <-> synthetic.")
@click.option("--scale", default="paper", show_default=True, type=click.Choice(["paper", "quick"]),
              help="paper: the appendix as written (a GPU's work); quick: one stage in 15-35 min on 2 CPU cores, "
                   "with the recipe that worked at that length (README).")
@click.option("--iterations", type=click.IntRange(1), default=None, help="Override the iterations per stage.")
@click.option("--batch-size", type=click.IntRange(2), default=None, help="Override the batch size.")
@click.option("--pretrain", default=None, metavar="G,D",
              help="Override the pre-training steps before each stage: generators (L1 to the input), "
                   "discriminators (e.g. 1000,500 as in the appendix).")
@click.option("--blocks", "residual_blocks", type=click.IntRange(1), default=None,
              help="Override the generator's residual blocks (appendix: 9).")
@click.option("--identity-skip/--no-identity-skip", default=None,
              help="Generators output tanh(atanh(input) + network), starting as the identity (not in the "
                   "appendix; quick's default); norm scales then start around 1 (the reference code's init) and "
                   "the generators' pre-training is skipped unless --pretrain says otherwise. --no-identity-skip: "
                   "the appendix's generators, learning the identity in pre-training.")
@click.option("--gan-config", "gan_config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="TOML file of recipe overrides on the --scale preset (keys: iterations, batch_size, "
              "g_updates, pretrain_g, pretrain_d, lr_g, lr_d, keep, residual_blocks, identity_skip, "
              "norm_scale_mean); the options here override it.")
@click.option("--lr-g", type=click.FloatRange(0, min_open=True), default=None,
              help="Override the generators' learning rate (appendix: 2e-4).")
@click.option("--lr-d", type=click.FloatRange(0, min_open=True), default=None,
              help="Override the discriminators' learning rate (appendix: 1e-5; quick: 2e-4).")
@click.option("--keep", type=click.Choice(["last", "best"]), default=None,
              help="Which generators each stage hands on: the last (the appendix; paper's default) or those with the "
                   "lowest KID to the stage's target among the gap measurements (cuts back a stage that drifts; "
                   "quick's default, 'last' there when --gap-every is 0).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--gap-every", type=click.IntRange(0), default=None,
              help="Measure KID (refined synthetic vs real) every N iterations (0: never).")
@click.option("--sample-every", type=click.IntRange(0), default=None, help="A sample sheet every N steps.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=None, help="A checkpoint every N steps.")
@click.option("--features", "features_run", type=click.Path(exists=True, path_type=Path), default=None,
              help="Classifier run for the KID features (default: the cached real-only one of REAL).")
@click.option("--compile/--no-compile", "compile_", default=None,
              help="torch.compile the training steps (default: on; a minute of compiling per stage).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder.")
@click.option("--quiet", is_flag=True)
def train_mrgan_cmd(real_dir, synthetic, stream, variations, config_file, backgrounds, textures, supersample, stages,
                    mapping, scale, iterations, batch_size, pretrain, residual_blocks, identity_skip, gan_config, lr_g,
                    lr_d, keep, seed, gap_every, sample_every, checkpoint_every, features_run, compile_, device, out,
                    quiet):
    """Train MrGAN: CycleGANs in stages mapping synthetic <-> real images (class-aligned batches).

    Writes RUN/mrgan.json and RUN/stage-K/ (checkpoint.pt, generators.pt, metrics.csv, losses.png, TensorBoard
    events, samples-*.png). Running the same command again resumes where it stopped."""
    from train import gap as meter
    from train.loop import RunMismatch
    from train.mrgan import load_gan_recipe, mrgan_preset, train_mrgan

    if (synthetic is None) == (stream is None):
        _fail("give --synthetic DIR or --stream MODELS (one of them)")
    pre_g = pre_d = None
    if pretrain is not None:
        try:
            pre_g, pre_d = (int(x) for x in pretrain.split(","))
        except ValueError:
            _fail(f"--pretrain {pretrain!r}: expected two step counts G,D such as 1000,500")
    try:
        real = _real_split(real_dir, "train")
        classes = real.class_names
        render = dict(variations=variations, backgrounds=backgrounds, textures=textures, supersample=supersample,
                      config_file=config_file)
        syn = _synthetic_source(synthetic, stream, classes, seed, int(real.images.shape[-1]), **render)
        if syn.missing_classes:
            _fail(f"no synthetic images for {', '.join(syn.missing_classes)}: batches cannot be class-aligned")
        size = int(real.images.shape[-1])
        given = dict(iterations=iterations, batch_size=batch_size, pretrain_g=pre_g, pretrain_d=pre_d,
                     residual_blocks=residual_blocks, identity_skip=identity_skip, lr_g=lr_g, lr_d=lr_d,
                     keep=keep)
        recipe = {**(load_gan_recipe(gan_config) if gan_config else {}),
                  **{k: v for k, v in given.items() if v is not None}}
        cfg = mrgan_preset(scale, image_size=size, stages=stages, mapping=mapping, **recipe, seed=seed,
                           gap_every=gap_every,
                           sample_every=sample_every, checkpoint_every=checkpoint_every, device=device,
                           compile=compile_)
        net = None
        if cfg.gap_every:
            net = (meter.load_feature_net(features_run) if features_run is not None
                   else meter.cached_feature_net(real_dir, progress=not quiet, log=click.echo))
        train_mrgan(cfg, real, syn, out, feature_net=net, progress=not quiet, log=click.echo)
    except (RunMismatch, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    click.echo(f"{stages} stage(s) trained -> {out}")


@main.command("refine")
@click.option("--run", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A `mixreal train mrgan` run.")
@click.option("--match-photos", "photos", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Instead of a run: a CIFAR-DA photo folder whose train split's colour statistics the renders "
                   "are moved onto, row by row, with no network (the baseline a GAN has to beat).")
@click.option("--input", "src", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A `mixreal render` folder or a CIFAR-DA folder.")
@click.option("--direction", default="s2r", show_default=True, type=click.Choice(["s2r", "r2s"]),
              help="s2r: synthetic toward real; r2s: real toward synthetic.")
@click.option("--stage", type=click.IntRange(1), default=None, help="Through this stage (default: the last).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--quiet", is_flag=True)
def refine(run, photos, src, direction, stage, device, out, quiet):
    """Write a refined copy of a dataset, in the layout it came in (labels, manifest, latent parameters kept;
    the refining run and stage, or the photo folder, recorded). Running it again finishes an interrupted job."""
    from train.loop import pick_device
    from train.refine import match_folder, refine_folder

    if (run is None) == (photos is None):
        _fail("give one of --run RUN (a trained MrGAN) or --match-photos DATA (colour statistics, no network)")
    if photos is not None and (direction != "s2r" or stage is not None):
        _fail("--match-photos maps renders toward the photos: no --direction r2s or --stage")
    try:
        if photos is not None:
            info = match_folder(photos, src, out, progress=not quiet)
        else:
            info = refine_folder(run, src, out, direction, stage, pick_device(device), progress=not quiet)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    how = f"photo statistics of {photos}" if photos is not None else f"{info['mapping']} stage {info['stage']}"
    click.echo(f"{info['images']} images refined ({direction}, {how}) -> {out}")


def _real_split(folder: Path, split: str):
    from train.datasets import RealDataset

    return RealDataset.from_split(folder, split)


def _refined_real(run: Path, device, *splits):
    """The real splits moved into a MrGAN run's refined-image domain, and what to record of it."""
    from train.mrgan import Refiner

    ref = Refiner.load(run, device=device)
    if not ref.moves_real():
        click.echo(f"note: {run} maps {ref.mapping}: its refined images aim at the real images themselves; "
                   "--refine-real leaves them unchanged", err=True)
    return (*(s.mapped(ref.real_domain) for s in splits), f"{ref.source} real side")


def _synthetic_source(synthetic: Path | None, stream: Path | None, classes: list[str], seed: int, size: int,
                      variations: str = "all", backgrounds: Path | None = None, textures: Path | None = None,
                      supersample: int = 2, config_file: Path | None = None):
    """The synthetic set at the real images' `size` (real and synthetic images share every batch), labelled with
    the real set's classes; warns about classes it lacks."""
    import numpy as np

    from train.datasets import RenderedDataset, RenderStream

    if synthetic is not None:
        src = RenderedDataset(synthetic, class_names=classes)
        if len(src) == 0:
            _fail(f"{synthetic}: no synthetic image of any real class ({', '.join(classes)})")
        side = int(src[0][0].shape[-1])
        if side != size:
            _fail(f"{synthetic}: images are {side} px, the real images {size} px: render with --size {size}, or "
                  f"build the real set at {side} px (mixreal data photos --size {side})")
        counts = {classes[k]: int(n) for k, n in enumerate(np.bincount(src.labels, minlength=len(classes))) if n}
        if max(counts.values()) > 1.5 * min(counts.values()):  # batches would follow this mix
            mix = ", ".join(f"{c} {n}" for c, n in sorted(counts.items(), key=lambda kv: -kv[1]))
            click.echo(f"warning: {synthetic}: synthetic classes are unbalanced ({mix}); "
                       "`mixreal render --per-class N` renders a balanced set", err=True)
    else:
        cfg = _render_config(size, variations, seed, 256, 0, None, textures, backgrounds, True, supersample,
                             config_file, force=("size", "batch_size"))
        try:
            src = RenderStream(stream, cfg, class_names=classes)
        except ValueError as exc:
            _fail(f"{exc} (the real classes)")
    if src.missing_classes:
        click.echo(f"warning: no synthetic images for {', '.join(src.missing_classes)}: those classes train on "
                   "real images only", err=True)
    return src


@main.command("predict")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--run", required=True, type=click.Path(exists=True, path_type=Path),
              help="A `mixreal train classify` run folder (its best.pt) or a .pt checkpoint.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for predictions.csv (and evaluation.json + confusion.png for labelled photos); "
                   "default: the CSV on standard output.")
@click.option("--top", default=1, show_default=True, type=click.IntRange(1, 20), help="Classes listed per photo.")
@click.option("--fit", default="crop", show_default=True, type=click.Choice(["crop", "pad", "stretch"]),
              help="How a photo is brought to the run's image size (as `mixreal data photos --fit`).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--workers", default=None, type=click.IntRange(1, 64), help="Decoding processes (default: cores).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def predict(inputs, run, out, top, fit, device, workers, quiet):
    """Classify photos (files or folders) with a trained run; photos in folders named like its classes
    (FOLDER/<class>/..., or a class's folder or photo given alone) are scored as well: accuracy with its 95 %
    interval, per class, confusion matrix."""
    import csv
    import io
    import json

    import numpy as np
    import torch

    from renderer.export import atomic_write_text
    from train.loop import pick_device
    from train.photos import load_all
    from train.predict import Classifier, confusion, image_paths, plot_confusion, score, true_label

    try:
        clf = Classifier.load(run, pick_device(device))
        files = image_paths(list(inputs))
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    except RuntimeError as exc:  # a --device this machine does not have
        _fail(f"--device {device}: {str(exc).splitlines()[0]}")
    if not files:
        _fail(f"{', '.join(map(str, inputs))}: no image files")
    loaded = load_all([p for p, _ in files], clf.image_size, fit, workers, progress=not quiet)
    rows, images, truth = [], [], []
    for (path, root), (img, reason) in zip(files, loaded, strict=True):
        if img is None:
            click.echo(f"skipped {path}: {reason}", err=True)
            continue
        rows.append(path)
        images.append(img)
        truth.append(true_label(path, root, clf.class_names))
    if not images:
        _fail("no readable photo among the inputs")
    probs = clf.probabilities(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2))
    k = min(top, len(clf.class_names))
    p_top, i_top = probs.topk(k, 1)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", *[f"{name}{j + 1}" for j in range(k) for name in ("class", "p")], "true"])
    for n, path in enumerate(rows):
        pairs = [v for j in range(k) for v in (clf.class_names[int(i_top[n, j])], f"{float(p_top[n, j]):.4f}")]
        w.writerow([str(path), *pairs, "" if truth[n] is None else clf.class_names[truth[n]]])
    labelled = np.array([t is not None for t in truth])
    report = None
    if labelled.any():
        t = np.array([x for x in truth if x is not None])
        pred = i_top[:, 0].numpy()[labelled]
        report = score(t, pred, clf.class_names)
        report["confusion"] = confusion(t, pred, len(clf.class_names)).tolist()
        report.update(run=clf.source, classes=clf.class_names, photos=len(rows), image_size=clf.image_size, fit=fit)
    if out is None:
        click.echo(buf.getvalue(), nl=False)
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "predictions.csv", buf.getvalue())
        if report is not None:
            atomic_write_text(out / "evaluation.json", json.dumps(report, indent=2) + "\n")
            plot_confusion(out / "confusion.png", np.array(report["confusion"]), clf.class_names,
                           f"{clf.source}\n{report['n']} labelled photos, accuracy {100 * report['accuracy']:.1f}%")
    counts = np.bincount(i_top[:, 0].numpy(), minlength=len(clf.class_names))
    spread = ", ".join(f"{c} {n}" for c, n in zip(clf.class_names, counts, strict=True))
    click.echo(f"{_count(len(rows), 'photo')} classified ({spread})"
               + (f"; {len(files) - len(rows)} skipped" if len(files) > len(rows) else "")
               + (f" -> {out / 'predictions.csv'}" if out is not None else ""), err=True)
    if report is not None:
        lo, hi = report["interval95"]
        per = ", ".join(f"{c} {100 * v['accuracy']:.1f}%" for c, v in report["per_class"].items())
        click.echo(f"{report['n']} labelled: accuracy {100 * report['accuracy']:.2f}% "
                   f"(95 % {100 * lo:.1f}–{100 * hi:.1f}); {per}", err=True)


@main.command("gap")
@data_options("Real dataset folder (`mixreal data photos` or `data cifar-da`): the photos to compare against.")
@stream_options
@click.option("--size", default=32, show_default=True, type=click.IntRange(16, 1024),
              help="Image side for --stream, px (the feature network's input size).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--count", default=2000, show_default=True, type=click.IntRange(8),
              help="Synthetic images to measure (class-balanced from the stream; the first N of a folder).")
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "val", "test"]),
              help="Real split to compare against.")
@click.option("--features", "features_run", type=click.Path(exists=True, path_type=Path), default=None,
              help="A `mixreal train classify` run whose best.pt gives the features (default: a real-only "
                   "ResNet-20 trained once and cached in REAL/gap-features).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for gap.json and gap.png (nearest real neighbours, per-class KID).")
@click.option("--quiet", is_flag=True)
def gap(real_dir, synthetic, stream, variations, config_file, backgrounds, textures, supersample, size, seed, count,
        split, features_run, out, quiet):
    """How far synthetic images are from the real photos: KID and FID in the features of a real-trained
    ResNet-20, and that classifier's accuracy on the synthetic images, per class and overall."""
    import json

    from train import gap as meter
    from train.datasets import RenderedDataset, RenderStream

    if (synthetic is None) == (stream is None):
        _fail("give --synthetic DIR or --stream MODELS (one of them)")
    try:
        real = _real_split(real_dir, split)
        classes = real.class_names
        # both sources opened before the feature network, whose first training takes minutes: a wrong folder
        # is reported at once
        if synthetic is not None:
            src = RenderedDataset(synthetic, class_names=classes)
        else:
            cfg = _render_config(size, variations, seed, 256, 0, None, textures, backgrounds, True, supersample,
                                 config_file, force=("size",))
            src = RenderStream(stream, cfg, class_names=classes, length=count)
        if getattr(src, "missing_classes", None):
            click.echo(f"warning: no synthetic images for {', '.join(src.missing_classes)}", err=True)
        net = (meter.load_feature_net(features_run) if features_run is not None
               else meter.cached_feature_net(real_dir, progress=not quiet, log=click.echo))
        syn_images, syn_labels = meter.collect(src, count)
        report, feats = meter.measure(net, real.images, real.labels, syn_images, syn_labels, classes)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    click.echo(f"real: {real_dir} ({split}, {len(real)} images); synthetic: {synthetic or stream} "
               f"({len(syn_images)} images); features: {net.source}")
    click.echo(report.table())
    if out is not None:
        from renderer.export import atomic_write_text

        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "gap.json", json.dumps({"real": str(real_dir), "split": split,
                                                        "synthetic": str(synthetic or stream),
                                                        "variations": variations if stream else None,
                                                        **report.to_dict()}, indent=2) + "\n")
        meter.neighbours_sheet(out / "gap.png", report, feats, real.images, real.labels, syn_images, syn_labels,
                               classes)
        click.echo(f"-> {out / 'gap.json'}, {out / 'gap.png'}")


@main.command("experiment")
@click.argument("table", type=click.Choice(["table1", "table2", "table3", "realism"]))
@click.option("--data", "variant", default="c10-da4", show_default=True, type=click.Choice(["c10-da4", "da4", "da9"]))
@click.option("--scale", default="quick", show_default=True, type=click.Choice(["paper", "quick"]))
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma list of seeds.")
@click.option("--cifar10", type=click.Path(exists=True, path_type=Path), default=None,
              help="CIFAR-10 (default: $MIXREAL_DATA/cifar/cifar10-train-subset.npz).")
@click.option("--cifar100", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--models", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Models folder (default: $MIXREAL_DATA/meshes); classes it lacks use the embedded models.")
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--epochs", type=int, default=None, help="Override the epochs of every run.")
@click.option("--counts", default="500,50,1000", show_default=True,
              help="Real images per class: train,val,test. The default test split of 1,000 per class resolves a "
                   "few points; the table also gives the paper's 50 per class (the first 50 of each class).")
@click.option("--backgrounds", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Real photos for the real-photo-background rows (default: $MIXREAL_DATA/backgrounds; the rows "
                   "are skipped when there is none).")
@click.option("--paper", "paper_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help='JSON of other figures for the paper column: {"table2": {"c10-da4": {"real only": 61.5, ...}}} '
                   "(test accuracy %, keyed by this table's row names). Default: the paper's own tables, shipped "
                   "in train/paper_figures.json and labelled with the paper's dataset.")
@click.option("--gap-images", default=2000, show_default=True, type=click.IntRange(0),
              help="Synthetic images the domain-gap meter measures per synthetic configuration (0: no meter).")
@click.option("--rows", default=None, help="Only the rows whose name contains one of these comma-separated "
              "texts, e.g. --rows 'real only,1:7'; '=NAME' is that row alone, e.g. --rows '=real + synthetic "
              "1:15,=real only, 4x epochs' (a comma followed by a space belongs to the name); table3 trains "
              "only the GAN stages the chosen rows need. Default: every row.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="TOML render settings (see mixreal config show) every synthetic row starts from; each row "
                   "still switches its own variations on and off, and renders at the real images' size with the "
                   "run's seed. Recorded in OUT/<table>/render.json: another config needs another --out.")
@click.option("--identity-skip/--no-identity-skip", default=None, help="table3: MrGAN generators that start as "
              "the identity or not (`train mrgan --identity-skip`; not in the appendix; quick's default). Recorded "
              "in OUT/table3/gan.json: a folder holds one GAN recipe, and another is refused, naming the settings "
              "that differ.")
@click.option("--gan-config", "gan_config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="table3: a TOML file of MrGAN recipe overrides (as `train mrgan --gan-config`), "
              "e.g. lr_d = 2e-4. Recorded in OUT/table3/gan.json like --identity-skip.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True)
def experiment(table, variant, scale, seeds, cifar10, cifar100, models, workers, epochs, counts, backgrounds,
               paper_file, gap_images, rows, config_file, identity_skip, gan_config, out, quiet):
    """Reproduce a paper table (table1: variation ablation, table2: mixing ratio, table3: CycleGAN and MrGAN
    refinement; realism: the renderer's realism changes one at a time, not in the paper); prints ours beside
    the paper's, with each synthetic set's domain gap.

    Every configuration x seed is a resumable run under OUT/<table>/; run the command again to continue.
    """
    from train.experiments import load_paper_values, parse_rows, run_table

    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        _fail(f"--seeds {seeds!r}: expected a comma list of integers")
    row_list = parse_rows(rows) if rows else None
    if (identity_skip is not None or gan_config) and table != "table3":
        flag = "gan-config" if gan_config else "identity-skip" if identity_skip else "no-identity-skip"
        _fail(f"--{flag}: {table} trains no GAN (table3 does)")
    from renderer.config_file import load_config
    from train.mrgan import load_gan_recipe

    gan_overrides = _or_fail(load_gan_recipe, gan_config) if gan_config is not None else None
    if identity_skip is not None:
        gan_overrides = {**(gan_overrides or {}), "identity_skip": identity_skip}
    paper, paper_label = None, None
    if paper_file is not None:
        paper = _or_fail(load_paper_values, paper_file, table, variant)
        paper_label = f"from {paper_file}"
    render_base = _or_fail(load_config, config_file) if config_file is not None else None
    if backgrounds is None and (_data_root() / "backgrounds").is_dir():
        backgrounds = _data_root() / "backgrounds"
    real_dir = _experiment_data(variant, cifar10, cifar100, out, counts)
    model_dir = _experiment_models(models, real_dir, out / f"models-{variant}")
    try:
        if table == "table3":
            from train.table3 import run_table3

            text = run_table3(variant, real_dir, model_dir, out, scale, seed_list, epochs=epochs, log=click.echo,
                              progress=not quiet, gap_images=gap_images, paper=paper, paper_label=paper_label,
                              render_base=render_base, rows=row_list,
                              gan_overrides=gan_overrides)
        else:
            text = run_table(table, variant, real_dir, model_dir, out, scale, seed_list, workers=workers,
                             epochs=epochs, paper=paper, log=click.echo, progress=not quiet, backgrounds=backgrounds,
                             paper_label=paper_label, gap_images=gap_images, rows=row_list, render_base=render_base)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    click.echo(f"\n{table} on {variant} ({scale}, seeds {seed_list}):\n\n{text}\n-> {out / table / 'table.md'}")


def _data_root() -> Path:
    import os

    return Path(os.environ.get("MIXREAL_DATA", Path(__file__).resolve().parent.parent / "shared" / "data"))


def _experiment_data(variant: str, cifar10, cifar100, out: Path, counts: str) -> Path:
    """OUT/data/<variant>-<counts>: built once from the CIFAR files given (or the shared subset)."""
    from train.cifar import CifarFormatError, load_cifar
    from train.cifar_da import Counts, build, write
    from train.classes import load_class_map

    folder = out / "data" / f"{variant}-{counts.replace(',', '-')}"
    if (folder / "test.npz").is_file():
        return folder
    given = {"cifar10": cifar10 or _data_root() / "cifar" / "cifar10-train-subset.npz", "cifar100": cifar100}
    class_map = load_class_map(variant)
    needed = sorted({s.split(":")[0] for v in class_map.values() for s in v})
    if cifar10 is None and "cifar10" in needed and not Path(given["cifar10"]).exists():
        _fail(f"{given['cifar10']}: no such file (the default CIFAR-10 under $MIXREAL_DATA): "
              "pass --cifar10 PATH or set MIXREAL_DATA")
    try:
        sources = {w: load_cifar(given[w], w) for w in needed if given[w] is not None and Path(given[w]).exists()}
        splits, notes = build(class_map, sources, Counts.parse(counts), seed=0)
    except (CifarFormatError, ValueError) as exc:
        _fail(str(exc))
    write(folder, splits, {"variant": variant, "seed": 0, "class_map": class_map, **notes})
    return folder


def _experiment_models(models: Path | None, real_dir: Path, folder: Path) -> Path:
    """A models folder for the real classes: the user's (or shared) models, the embedded ones where a class has none."""
    from assets import build_default_models
    from train.cifar_da import load_split
    from train.classes import canonical

    classes = load_split(real_dir, "val").class_names
    sources = [p for p in (models or _data_root() / "meshes", build_default_models()) if p and Path(p).is_dir()]
    folder.mkdir(parents=True, exist_ok=True)
    for cls in classes:
        link = folder / cls
        if link.exists() or link.is_symlink():
            continue
        for src in sources:
            match = [d for d in sorted(Path(src).iterdir()) if d.is_dir() and canonical(d.name) == cls]
            if match:
                link.symlink_to(match[0].resolve())
                break
        else:
            click.echo(f"warning: no models of class {cls} anywhere: it trains on real images only", err=True)
    return folder


if __name__ == "__main__":
    sys.exit(main())
