"""A rendered dataset as WebDataset shards: OUT/mixreal-000000.tar, ... and OUT/_info.json.

Millions of small PNGs are what cluster file systems handle worst; a few hundred tar files are what they
handle best. Shard k holds samples k*N .. k*N + N - 1 of the job's global-index order, each as three
members sharing a key: `<key>.png` (the image), `<key>.cls` (the class index, as text, into the sorted class
list in _info.json) and `<key>.json` (class, model, index, seed and the latent parameters, as the folder
manifest has them). A shard is built in memory and written atomically, its tar headers fixed (mtime 0, uid
0), so the same job gives the same bytes; a re-run skips the shards on disk. _info.json follows timm's
WebDataset reader (`splits.train.filenames / shard_lengths / num_samples`) and is written once every
shard of the job exists.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .export import (
    RenderSummary,
    atomic_write_bytes,
    atomic_write_text,
    check_settings,
    progress_bar,
    record_device,
    remove_stale_temps,
    settings_of,
)
from .png import encode_png

INFO = "_info.json"
PREFIX = "mixreal"


def shard_name(k: int) -> str:
    return f"{PREFIX}-{k:06d}.tar"


def sample_key(label: str, model_name: str, index: int) -> str:
    """A WebDataset key: no dots (the reader splits a member name at its first dot) and no slashes."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{label}_{model_name}_{index}")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
    tar.addfile(info, io.BytesIO(data))


def render_shards(renderer, out: Path, per_model: int | None, models_root: Path, shard_size: int = 1000,
                  progress: bool = True, shard: tuple[int, int] = (0, 1), per_class: int | None = None,
                  on_progress=None, info: bool = True) -> RenderSummary:
    """Render this job's shards not yet on disk (every shard_size samples one tar; with `shard` K/N, tar k
    when k mod N == K) into `out`; then, with `info`, _info.json if every tar of the job is there."""
    if shard_size < 1:
        raise ValueError(f"shard size {shard_size}: at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, {**settings_of(renderer.config, models_root), "format": "webdataset",
                         "shard_size": shard_size})
    record_device(out, shard, renderer.ctx.extra.get("device", "unknown") if isinstance(renderer.ctx.extra, dict)
                  else "unknown")
    if shard[1] == 1:  # a worker's or another machine's temp tar is one being written
        remove_stale_temps(out)
    specs = list(renderer.sample_index.specs(per_model, per_class))
    classes = sorted({m.label for m in renderer.models})
    chunks = shard_chunks(specs, shard_size)
    mine = [k for k in range(len(chunks)) if k % shard[1] == shard[0]]
    todo = [k for k in mine if not (out / shard_name(k)).is_file()]
    summary = RenderSummary(already_done=sum(len(chunks[k]) for k in mine if k not in todo),
                            total=sum(len(chunks[k]) for k in mine),
                            skipped_models=[(str(p), r) for p, r in renderer.library.skipped])
    bar = progress_bar(summary, "render (shards)", progress)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for k in todo:
            def done(n: int) -> None:
                summary.rendered += n
                if bar is not None:
                    bar.update(n)
                if on_progress is not None:
                    on_progress(n)

            atomic_write_bytes(out / shard_name(k), build_shard(renderer, chunks[k], classes, pool.map, done))
    summary.seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    if info:
        write_info(out, chunks, classes)
    return summary


def shard_chunks(specs: list, shard_size: int) -> list[list]:
    """The job's samples (global-index order) cut into shards."""
    return [specs[i:i + shard_size] for i in range(0, len(specs), shard_size)]


def build_shard(renderer, chunk: list, classes: list[str], map_=map, done=None) -> bytes:
    """One shard's tar, in memory: every sample's .png, .cls and .json, in the chunk's order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(0, len(chunk), renderer.batch_capacity):
            batch = chunk[i:i + renderer.batch_capacity]
            params = renderer.params(batch)
            images = renderer.render(batch, params=params)
            pngs = list(map_(encode_png, images))
            rows = params.rows()
            for j, spec in enumerate(batch):
                model = renderer.models[spec.model]
                key = sample_key(model.label, model.ref.name, spec.index)
                meta = {"class": model.label, "model": model.key, "model_file": str(model.ref.path),
                        "seed": renderer.config.seed, "index": spec.index, "params": rows[j]}
                _add(tar, f"{key}.png", pngs[j])
                _add(tar, f"{key}.cls", str(classes.index(model.label)).encode())
                _add(tar, f"{key}.json", json.dumps(meta).encode())
            if done is not None:
                done(len(batch))
    return buf.getvalue()


def write_info(out: Path, chunks: list[list], classes: list[str]) -> None:
    """_info.json, once every shard of the job is on disk."""
    if all((out / shard_name(k)).is_file() for k in range(len(chunks))):
        atomic_write_text(out / INFO, json.dumps({
            "name": out.name, "classes": classes,
            "splits": {"train": {"name": "train", "num_samples": sum(len(c) for c in chunks),
                                 "filenames": [shard_name(k) for k in range(len(chunks))],
                                 "shard_lengths": [len(c) for c in chunks]}},
        }, indent=2) + "\n")


def index_shards(root: Path, warn=print) -> list[dict]:
    """Every sample of the shards under `root` (in _info.json's order, else sorted by name) as a manifest
    entry, plus where its PNG lies (tar file, byte offset, size). A damaged tar is reported once and the
    samples before the damage are kept."""
    root = Path(root)
    info = root / INFO
    if info.is_file():
        names = json.loads(info.read_text())["splits"]["train"]["filenames"]
    else:
        names = sorted(p.name for p in root.glob("*.tar"))
    entries = []
    for name in names:
        path = root / name
        samples: dict[str, dict] = {}
        try:
            with tarfile.open(path, mode="r:") as tar:
                for m in tar:
                    if not m.isfile() or "." not in m.name:
                        continue
                    key, ext = m.name.split(".", 1)
                    s = samples.setdefault(key, {})
                    if ext == "png":
                        s["_png"] = (m.offset_data, m.size)
                    elif ext == "json":
                        s["meta"] = json.loads(tar.extractfile(m).read())
        except (OSError, tarfile.TarError, ValueError) as exc:
            warn(f"warning: {path}: damaged shard ({exc}); using the samples before the damage")
        for key, s in samples.items():
            if "_png" in s and "meta" in s:
                m = s["meta"]
                entries.append({"path": f"{name}#{key}.png", "class": m["class"], "model": m.get("model"),
                                "index": m.get("index"), "params": m.get("params", {}), "_tar": name,
                                "_png": s["_png"]})
    return entries
