"""Rendering a dataset with several processes (CPU cores or GPUs) on one machine.

Each worker is a spawned process with its own EGL context (on GPU w mod n_gpus when GPUs are
visible) that renders one sub-shard of this machine's shard — PNG blocks, or with --format webdataset whole
tars — ; the parent shows one progress bar and merges the workers' manifests (or writes _info.json).
Spawned rather than forked: Mesa's state is not fork-safe. Several workers on one GPU are how a GPU is kept
busy: one process is bound by its CPU work (JPEG, framing, PNG), not by the GPU (docs/RESULTS.md, "GPU
figures": 12 processes on one H200 render about 10x what one does).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
import traceback
from dataclasses import replace
from pathlib import Path

from .core import batch_capacity
from .export import (
    RenderSummary,
    check_settings,
    in_shard,
    merge_manifests,
    os_error_line,
    remove_stale_temps,
    render_dataset,
    settings_of,
)
from .indexing import SampleIndex
from .platform import gpu_count
from .shards import shard_chunks, write_info


class _Stopped(Exception):
    """The parent asked this worker to stop (another worker failed, or Ctrl-C reached the parent alone)."""


def _worker(models_root: Path, classes: list[str], config, out: Path, counts: tuple[int | None, int | None],
            shard: tuple[int, int], q, gpus: int, shard_size: int | None, stop) -> None:
    def report(n: int) -> None:  # after each batch (or tar) is on disk: the place to stop cleanly
        q.put(("progress", n))
        if stop.is_set():
            raise _Stopped

    try:
        from .core import Renderer
        from .library import ModelLibrary

        if gpus > 1 and config.device is None:
            config = replace(config, device=shard[0] % gpus)
        library = ModelLibrary.load(models_root, on_skip=lambda m: None, classes=classes)  # the parent's classes
        renderer = Renderer(library, config)
        if shard_size is None:
            s = render_dataset(renderer, out, counts[0], models_root, progress=False, shard=shard,
                               on_progress=report, merge=False, per_class=counts[1])
        else:
            from .shards import render_shards

            s = render_shards(renderer, out, counts[0], models_root, shard_size, progress=False, shard=shard,
                              per_class=counts[1], on_progress=report, info=False)
        q.put(("done", (s.rendered, s.already_done, s.total)))
    except _Stopped:
        q.put(("stopped",))
    except BaseException as exc:  # reported to the parent as one line; the traceback for debugging
        line = os_error_line(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}".splitlines()[0]
        q.put(("error", line, traceback.format_exc()))


def _stop_workers(procs: list, q, stop, grace: float = 60.0) -> None:
    """Ask the other workers to stop after the batch they are writing (what they finished stays on disk and is
    skipped by the next run); terminated only past `grace` seconds. The queue is drained meanwhile: a process
    with unsent queue data cannot exit."""
    stop.set()
    deadline = time.perf_counter() + grace
    while any(p.is_alive() for p in procs) and time.perf_counter() < deadline:
        try:
            q.get(timeout=0.2)
        except queue.Empty:
            pass
    for p in procs:
        if p.is_alive():
            p.terminate()


def render_parallel(library, config, out: Path, per_model: int | None, models_root: Path, workers: int,
                    shard: tuple[int, int] = (0, 1), progress: bool = True,
                    per_class: int | None = None, shard_size: int | None = None) -> RenderSummary:
    """This machine's shard rendered by `workers` processes; sub-shard w is (k + n w, n W). With
    `shard_size`, as WebDataset tars of that many samples (tar t to the worker whose sub-shard holds it)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = settings_of(config, models_root)
    if shard_size is not None:
        settings = {**settings, "format": "webdataset", "shard_size": shard_size}
    check_settings(out, settings)  # before the workers race to write it
    k, n = shard
    if n == 1:  # the whole job is this machine's: a killed run's temp files go before the workers start
        remove_stale_temps(out)
    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    gpus = gpu_count()
    classes = sorted({m.label for m in library.models})
    index = SampleIndex([m.label for m in library.models])
    specs = list(index.specs(per_model, per_class))  # the job, for the bar and the shards' index
    procs = [ctx.Process(target=_worker, args=(models_root, classes, config, out, (per_model, per_class),
                                               (k + n * w, n * workers), q, gpus, shard_size, stop), daemon=True)
             for w in range(workers)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    bar = None
    if progress:
        from tqdm import tqdm

        if shard_size is None:
            block = batch_capacity(config)
            total = sum(1 for s in specs if in_shard(index.global_index(s), block, shard))
        else:
            total = sum(len(c) for t, c in enumerate(shard_chunks(specs, shard_size)) if t % n == k)
        bar = tqdm(total=total, unit="img", desc=f"render x{workers}", dynamic_ncols=True, smoothing=0.1)
    summary = RenderSummary(skipped_models=[(str(p), r) for p, r in library.skipped])
    finished, error = 0, None
    try:
        while finished < workers and error is None:
            try:
                msg = q.get(timeout=1.0)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    error = ("a render worker died (exit code "
                             f"{next(p.exitcode for p in procs if p.exitcode not in (None, 0))})", "")
                continue
            if msg[0] == "progress" and bar is not None:
                bar.update(msg[1])
            elif msg[0] == "done":
                finished += 1
                summary.rendered += msg[1][0]
                summary.already_done += msg[1][1]
                summary.total += msg[1][2]
            elif msg[0] == "error":
                error = (msg[1], msg[2])
    except KeyboardInterrupt:  # Ctrl-C: the workers finish the files they are writing, then the parent exits
        if bar is not None:
            bar.close()
        _stop_workers(procs, q, stop)
        raise
    if bar is not None:
        bar.close()
    if error is not None:
        _stop_workers(procs, q, stop)
    for p in procs:
        p.join()
    summary.seconds = time.perf_counter() - start
    if error is not None:
        raise RuntimeError(error[0])
    if shard_size is not None:
        write_info(out, shard_chunks(specs, shard_size), classes)  # once every tar of the job is on disk
    elif n == 1:
        merge_manifests(out, remove_shards=True)
    return summary
