"""Writing a rendered dataset to disk: OUT/<class>/<model>_<index>.png and OUT/manifest.jsonl.

Every PNG is written to a temporary name and renamed, so a killed job never leaves a partial
image; the manifest is appended per batch and rewritten (sorted, atomically) at the end. Running
the same job again skips every image already on disk and listed in the manifest.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core import Renderer, SampleSpec

MANIFEST = "manifest.jsonl"
SETTINGS = "render.json"


class OutputMismatch(ValueError):
    """OUT already holds a render made with other settings."""


@dataclass
class RenderSummary:
    rendered: int = 0
    already_done: int = 0
    total: int = 0
    seconds: float = 0.0
    skipped_models: list[tuple[str, str]] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0


# The process's umask, read once at import: os.umask can only be read by setting it, so it is set and put back
# at once (a file another thread created in between would get 022, not worth a lock).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def default_mode(directory: bool = False) -> int:
    """The permissions open() and mkdir() would give a new file or folder. mkstemp and mkdtemp create theirs
    private (0600 / 0700) whatever the umask: renamed into place as they are, a dataset or run on shared
    storage would be unreadable to the colleagues, cluster jobs and servers it is written for."""
    return (0o777 if directory else 0o666) & ~_UMASK


def atomic_temp(path: Path) -> tuple[int, str]:
    """A temporary file beside PATH (same file system, so os.replace is atomic), with PATH's default mode."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_mode())
    except OSError:  # mounts that refuse chmod (some SMB / object-store FUSE): a private file beats no file
        pass
    return fd, tmp


def remove_stale_temps(out: Path) -> None:
    """Delete the temp files a killed job left under OUT (SIGKILL skips cleanup). Only the process that owns
    the whole job may: any other writer's temp file is work in progress (a worker's tar, another machine's
    shard)."""
    for stale in Path(out).rglob(".*.tmp"):
        stale.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = atomic_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:  # a failed write names no file: name PATH
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def os_error_line(exc: OSError) -> str:
    """An OSError as a user reads it: the file, then what the system said ("out/car/x.png: No space left on
    device"); whatever the error carries where it names no file."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_png(path: Path, image: np.ndarray) -> None:
    from .png import encode_png

    atomic_write_bytes(path, encode_png(image))


def image_name(label: str, model_name: str, index: int) -> str:
    return f"{label}/{model_name}_{index}.png"


def read_manifest(path: Path) -> list[dict]:
    """Manifest lines; a torn last line (a job killed mid-write) is dropped."""
    entries = []
    if not path.is_file():
        return entries
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return entries


def settings_of(c, models_root: Path) -> dict:
    """What a resumed or sharded render must share with the one that started the folder."""
    return {
        "models": str(models_root),
        "size": c.size,
        "seed": c.seed,
        "msaa": c.msaa,
        "supersample": c.supersample,
        "variations": c.variations.describe(),
    }


def shard_manifest(shard: tuple[int, int]) -> str:
    k, n = shard
    return MANIFEST if n == 1 else f"manifest.shard-{k}-of-{n}.jsonl"


RECORDS = ("rendered_on",)  # kept in render.json, not settings: they may differ between shards and resumes


def with_new_defaults(previous: dict) -> dict:
    """A render.json written before a variation setting existed holds no value for it: it was made with the
    setting's default (a new setting defaults to the renderer's earlier behaviour, pixel for pixel)."""
    from .variations import VariationConfig

    if isinstance(previous.get("variations"), dict):
        merged = {}
        for section, values in VariationConfig().describe().items():
            given = previous["variations"].get(section)
            merged[section] = {**values, **given} if isinstance(given, dict) else (values if given is None else given)
        previous = {**previous, "variations": {**previous["variations"], **merged}}
    return previous


def check_settings(out: Path, settings: dict) -> None:
    """Write OUT/render.json on first use; refuse a folder rendered with other settings."""
    settings_path = out / SETTINGS
    if settings_path.is_file():
        previous = with_new_defaults({k: v for k, v in json.loads(settings_path.read_text()).items()
                                       if k not in RECORDS})
        if previous != settings:
            changed = sorted(k for k in settings if previous.get(k) != settings[k])
            raise OutputMismatch(
                f"{out}: already holds a render made with other settings ({', '.join(changed)}); "
                "use another --out or the same settings to resume"
            )
    else:
        atomic_write_text(settings_path, json.dumps(settings, indent=2) + "\n")


def record_device(out: Path, shard: tuple[int, int], device: str) -> None:
    """render.json's `rendered_on`: which device (GPU or llvmpipe, and how it was chosen) rendered each shard.
    Shards of one job may write at the same time: a lost update here loses a note, never an image."""
    path = out / SETTINGS
    data = json.loads(path.read_text())
    data.setdefault("rendered_on", {})[f"{shard[0]}/{shard[1]}"] = device
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def done_entries(out: Path) -> dict[str, dict]:
    """Manifest entries of every shard whose image is on disk."""
    done = {}
    for path in [out / MANIFEST, *sorted(out.glob("manifest.shard-*.jsonl"))]:
        for e in read_manifest(path):
            if (out / e.get("path", "")).is_file():
                done[e["path"]] = e
    return done


# the head of a manifest line as render_batch writes it: what merging needs, without parsing the parameters
_STR = r'"(?:[^"\\]|\\.)*"'
_HEAD = re.compile(rf'\{{"path": ({_STR}), "class": ({_STR}), "model": ({_STR}), "model_file": {_STR}, '
                   rf'"seed": -?\d+, "index": (-?\d+), ')


def _sort_key(line: str) -> tuple[str, tuple] | None:
    """(path, (class, model, index)) of one manifest line; None for a torn one. A whole line (one that ends in
    a newline: render_batch writes each with its newline) is read from its head alone, since parsing every
    image's parameters made merging cost as much as encoding the images (~100 µs a line)."""
    m = _HEAD.match(line) if line.endswith("\n") else None
    if m is not None:
        return json.loads(m[1]), (json.loads(m[2]), json.loads(m[3]), int(m[4]))
    try:
        e = json.loads(line)
        return e["path"], (e["class"], e["model"], e["index"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def merge_manifests(out: Path, remove_shards: bool) -> int:
    """One sorted OUT/manifest.jsonl from all shards' manifests (the lines as written, each image once, those
    whose image is on disk); returns its length."""
    lines: dict[str, tuple[tuple, str]] = {}
    for path in [out / MANIFEST, *sorted(out.glob("manifest.shard-*.jsonl"))]:
        if not path.is_file():
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                key = _sort_key(line)
                if key is not None and (out / key[0]).is_file():
                    lines[key[0]] = (key[1], line if line.endswith("\n") else line + "\n")
    ordered = sorted(lines.values(), key=lambda kv: kv[0])
    atomic_write_text(out / MANIFEST, "".join(line for _, line in ordered))
    if remove_shards:
        for path in out.glob("manifest.shard-*.jsonl"):
            path.unlink(missing_ok=True)
    return len(ordered)


def in_shard(global_index: int, block: int, shard: tuple[int, int]) -> bool:
    """Blocks of `block` consecutive global indices go to shards in turn (as RenderStream does)."""
    return (global_index // block) % shard[1] == shard[0]


def progress_bar(summary: RenderSummary, desc: str, progress: bool = True):
    """A tqdm bar over a job's images, starting at those already on disk; None without progress."""
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=summary.total, initial=summary.already_done, unit="img", desc=desc, dynamic_ncols=True,
                smoothing=0.1)


def render_batch(renderer: Renderer, specs: list[SampleSpec], out: Path, submit) -> tuple[list, list[str]]:
    """Render `specs` (at most one batch) and hand each PNG to `submit(save_png, path, image)`; returns what
    submit returned, and the manifest lines (to be written once the PNGs are on disk)."""
    params = renderer.params(specs)
    images = renderer.render(specs, params=params)
    files, lines = [], []
    rows = params.rows()
    for j, spec in enumerate(specs):
        model = renderer.models[spec.model]
        rel = image_name(model.label, model.ref.name, spec.index)
        files.append(submit(save_png, out / rel, images[j]))
        lines.append(json.dumps({
            "path": rel, "class": model.label, "model": model.key,
            "model_file": str(model.ref.path), "seed": renderer.config.seed, "index": spec.index,
            "params": rows[j],
        }))
    return files, lines


def render_dataset(
    renderer: Renderer,
    out: Path,
    per_model: int | None,
    models_root: Path,
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
    on_progress=None,
    merge: bool = True,
    per_class: int | None = None,
) -> RenderSummary:
    """Render this shard's images (per_model of every model, or per_class of every class) into `out`,
    skipping those already there.

    Images depend only on (seed, model, index), so any split into shards, workers or resumed runs gives
    the same files. An unsharded run also merges every shard's manifest into OUT/manifest.jsonl.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, settings_of(renderer.config, models_root))
    record_device(out, shard, renderer.ctx.extra.get("device", "unknown") if isinstance(renderer.ctx.extra, dict)
                  else "unknown")
    if shard[1] == 1:
        remove_stale_temps(out)
    manifest_path = out / shard_manifest(shard)
    done = done_entries(out)
    mine = [e for e in read_manifest(manifest_path) if e["path"] in done]
    # rewrite first so that appends never follow a torn line
    atomic_write_text(manifest_path, "".join(json.dumps(e) + "\n" for e in mine))

    block = renderer.batch_capacity
    todo: list[SampleSpec] = []
    total = 0
    # global-index order: consecutive samples fill distinct atlas cells
    for spec in renderer.sample_index.specs(per_model, per_class):
        if not in_shard(renderer.global_index(spec), block, shard):
            continue
        total += 1
        model = renderer.models[spec.model]
        if image_name(model.label, model.ref.name, spec.index) not in done:
            todo.append(spec)
    summary = RenderSummary(already_done=total - len(todo), total=total,
                            skipped_models=[(str(p), r) for p, r in renderer.library.skipped])
    bar = progress_bar(summary, "render", progress)
    start = time.perf_counter()
    batch = renderer.batch_capacity
    with ThreadPoolExecutor(max_workers=2) as pool, open(manifest_path, "a", encoding="utf-8") as manifest:
        previous: tuple[list, list[str]] | None = None

        def finish(batch_files: list, lines: list[str]) -> None:
            for f in batch_files:  # images first, then their manifest lines: a listed image exists
                f.result()
            manifest.write("\n".join(lines) + "\n")
            manifest.flush()
            summary.rendered += len(lines)
            if bar is not None:
                bar.update(len(lines))
            if on_progress is not None:
                on_progress(len(lines))

        for i in range(0, len(todo), batch):
            files, lines = render_batch(renderer, todo[i:i + batch], out, pool.submit)
            if previous is not None:  # the last batch's PNGs were encoded while this one rendered
                finish(*previous)
            previous = (files, lines)
        if previous is not None:
            finish(*previous)
    summary.seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    if merge and shard[1] == 1:
        merge_manifests(out, remove_shards=True)
    return summary
