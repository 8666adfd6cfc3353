"""Rendering a dataset on a Ray cluster: `mixreal render ... --ray local|auto|ADDRESS`.

Several actors per GPU, each with a fractional `num_gpus` (Ray sets its CUDA_VISIBLE_DEVICES, and
renderer.devices maps the actor's CUDA device 0 to its EGL device): one rendering process is bound by its
CPU work, not by the GPU (one process renders about a tenth of what twelve do on one H200: docs/RESULTS.md,
"GPU figures"), so by default a GPU gets as many actors as the cluster has CPUs per GPU. On a cluster
without GPUs, one actor per CPU slot. Each actor holds its GL
context and loaded models for its lifetime. The driver hands out blocks of consecutive global indices (one
renderer batch each); an actor renders a block, writes its PNGs atomically into OUT (which must be storage
every node sees) and returns the block's manifest lines, which only the driver writes. So the output is the
same bytes as a one-process `mixreal render` of the same command, whatever the cluster's size or the order
blocks finish in. A block whose actor dies is re-run by Ray (actors restart, tasks retry) with no half-written
file and no duplicate line; a re-run of the command skips every image on disk and listed.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path

from .export import (
    MANIFEST,
    RenderSummary,
    atomic_write_text,
    check_settings,
    done_entries,
    image_name,
    merge_manifests,
    progress_bar,
    remove_stale_temps,
    render_batch,
    settings_of,
)

FAIL_ONCE = "MIXREAL_RAY_FAIL_ONCE"  # tests: a marker path; the first actor to see it missing creates it and dies


class _Actor:
    def __init__(self, models_root: str, classes: list[str], config, out: str):
        from .core import Renderer
        from .library import ModelLibrary

        library = ModelLibrary.load(Path(models_root), on_skip=lambda m: None, classes=classes)
        self.renderer = Renderer(library, config)
        self.out = Path(out)

    def device(self) -> str:
        extra = self.renderer.ctx.extra
        return f"{os.uname().nodename}: {extra.get('device', 'unknown') if isinstance(extra, dict) else 'unknown'}"

    def render(self, block: list[tuple[int, int]]) -> list[str]:
        from .indexing import SampleSpec

        _fail_once()
        specs = [SampleSpec(m, i) for m, i in block]
        files, lines = render_batch(self.renderer, specs, self.out, lambda fn, *a: fn(*a))
        return lines

    def shard(self, k: int, chunk: list[tuple[int, int]], classes: list[str]) -> int:
        """WebDataset shard k, written whole (atomically); returns its sample count."""
        from .export import atomic_write_bytes
        from .indexing import SampleSpec
        from .shards import build_shard, shard_name

        _fail_once()
        specs = [SampleSpec(m, i) for m, i in chunk]
        atomic_write_bytes(self.out / shard_name(k), build_shard(self.renderer, specs, classes))
        return len(specs)


def _fail_once() -> None:
    marker = os.environ.get(FAIL_ONCE)
    if marker and not os.path.exists(marker):
        Path(marker).write_text("failed once\n")
        os._exit(1)  # as a node lost mid-block would: no cleanup, no reply


def actor_layout(gpus: int, cpus: int, actors: int | None) -> tuple[int, float]:
    """(number of actors, each one's share of a GPU; 0 on a cluster without GPUs). `actors` None: every
    CPU slot, shared evenly by the GPUs."""
    if gpus <= 0:
        return actors or cpus, 0.0
    per_gpu = -(-actors // gpus) if actors else max(1, cpus // gpus)
    # Ray counts GPU shares to 4 decimal places: round down so that per_gpu of them fit on one GPU
    return actors or gpus * per_gpu, math.floor(10_000 / per_gpu) / 10_000


def _connect(address: str):
    import ray

    if ray.is_initialized():
        return False
    if address == "local":
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    else:  # "auto" joins the running cluster as Ray's own tools do; anything else is an address
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    return True


def render_ray(library, config, out: Path, per_model: int | None, models_root: Path, address: str = "local",
               actors: int | None = None, progress: bool = True, per_class: int | None = None,
               fmt: str = "png", shard_size: int = 1000) -> RenderSummary:
    """The whole job rendered by Ray actors into `out` (shared storage), as PNGs + manifest or (fmt
    "webdataset") as tar shards, one shard per task; returns the summary."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install 'mixreal[ray]' (or pip install ray)") from None
    from .core import batch_capacity
    from .indexing import SampleIndex
    from .shards import shard_chunks, shard_name, write_info

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    settings = settings_of(config, models_root)
    if fmt == "webdataset":
        settings = {**settings, "format": "webdataset", "shard_size": shard_size}
    check_settings(out, settings)
    remove_stale_temps(out)  # the driver owns the whole job
    index = SampleIndex([m.label for m in library.models])
    specs = index.specs(per_model, per_class)
    classes = sorted({m.label for m in library.models})
    if fmt == "webdataset":
        chunks = shard_chunks(specs, shard_size)
        todo_shards = [k for k in range(len(chunks)) if not (out / shard_name(k)).is_file()]
        todo = [s for k in todo_shards for s in chunks[k]]
    else:
        done = done_entries(out)
        todo = [s for s in specs if image_name(library.models[s.model].label, library.models[s.model].ref.name,
                                               s.index) not in done]
        # rewrite first so that appends never follow a torn line
        atomic_write_text(out / MANIFEST, "".join(json.dumps(e) + "\n" for e in done.values()))
    summary = RenderSummary(already_done=len(specs) - len(todo), total=len(specs),
                            skipped_models=[(str(p), r) for p, r in library.skipped])
    started = _connect(address)
    try:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        n, share = actor_layout(gpus, cpus, actors)
        options = dict(max_restarts=3, max_task_retries=3)
        if gpus:
            options.update(num_gpus=share, num_cpus=1)
            config = replace(config, device=0)  # the actor's one visible GPU, mapped to its EGL device
        else:
            options.update(num_cpus=1)
        remote = ray.remote(**options)(_Actor)
        pool_actors = [remote.remote(str(models_root), classes, config, str(out)) for _ in range(n)]
        devices = ray.get([a.device.remote() for a in pool_actors])
        block = batch_capacity(config)
        blocks = [[(s.model, s.index) for s in todo[i:i + block]] for i in range(0, len(todo), block)]
        bar = progress_bar(summary, f"render (ray x{n})", progress)
        start = time.perf_counter()
        if fmt == "webdataset":
            tasks = [(k, [(s.model, s.index) for s in chunks[k]]) for k in todo_shards]
            for n_done in ActorPool(pool_actors).map_unordered(lambda a, t: a.shard.remote(t[0], t[1], classes),
                                                               tasks):
                summary.rendered += n_done
                if bar is not None:
                    bar.update(n_done)
            write_info(out, chunks, classes)
        else:
            with open(out / MANIFEST, "a", encoding="utf-8") as manifest:
                for lines in ActorPool(pool_actors).map_unordered(lambda a, b: a.render.remote(b), blocks):
                    manifest.write("\n".join(lines) + "\n")  # the block's PNGs are on disk: the actor returned
                    manifest.flush()
                    summary.rendered += len(lines)
                    if bar is not None:
                        bar.update(len(lines))
            merge_manifests(out, remove_shards=False)
        summary.seconds = time.perf_counter() - start
        if bar is not None:
            bar.close()
        data = json.loads((out / "render.json").read_text())
        data.setdefault("rendered_on", {})["ray"] = {"actors": n, "gpu_share": share,
                                                      "devices": sorted(set(devices))}
        atomic_write_text(out / "render.json", json.dumps(data, indent=2) + "\n")
    except ray.exceptions.RayTaskError as exc:
        # what failed in the actor, as it failed there (a full disk is the OSError naming the file), not Ray's
        # wrapper with the remote traceback
        cause = exc.cause
        if isinstance(cause, OSError):
            raise OSError(cause.errno, cause.strerror, cause.filename) from None
        raise RuntimeError(f"a Ray actor failed: {type(cause).__name__}: {cause}".splitlines()[0]) from None
    finally:
        if started:
            ray.shutdown()
    return summary

