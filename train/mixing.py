"""Minibatches with an exact real : synthetic ratio.

Every batch of `batch_size` images holds exactly batch_size * r / (r + s) real images and the rest
synthetic (ratio 1:7 at 128 -> 16 real + 112 synthetic, every batch). An epoch is one pass over the
real training set, in a new order each epoch; the synthetic source is reshuffled each time it is used
up (on-disk set) or simply continues (a RenderStream). The last, partial batch follows `last`:
"keep" (fewer real images, synthetic cut to keep the ratio) or "drop". Real-only and synthetic-only
training are the ratios 1:0 and 0:1 of the same loader.

What an epoch sees depends only on (seed, epoch): every batch consumes one whole block of synthetic
images (the short last batch uses the front of its block), so after e epochs exactly the first
e * len(self) blocks of the synthetic sequence are used, and a resumed run (`start_epoch`) starts the
synthetic source right there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler


@dataclass(frozen=True)
class Ratio:
    real: int
    synthetic: int

    @classmethod
    def parse(cls, text: str) -> Ratio:
        parts = str(text).strip().split(":")
        try:
            real, syn = (int(p) for p in parts)
        except ValueError:
            raise ValueError(f"ratio {text!r}: expected REAL:SYNTHETIC with whole numbers, such as 1:7") from None
        if real < 0 or syn < 0 or real + syn == 0:
            raise ValueError(f"ratio {text!r}: both parts must be >= 0 and not both 0")
        return cls(real, syn)

    def split(self, batch_size: int) -> tuple[int, int]:
        """(real, synthetic) images per batch; refuses a batch size the ratio does not divide."""
        total = self.real + self.synthetic
        if batch_size % total:
            raise ValueError(f"batch {batch_size} cannot be split {self} exactly: use a multiple of {total}")
        n_real = batch_size * self.real // total
        return n_real, batch_size - n_real

    def __str__(self) -> str:
        return f"{self.real}:{self.synthetic}"


def batches_per_epoch(real_images: int, ratio: Ratio, batch_size: int, last: str = "keep") -> int:
    """One pass over `real_images` real images (or, synthetic only, that many synthetic ones)."""
    n_real, _ = ratio.split(batch_size)
    per_batch = n_real or batch_size
    return math.ceil(real_images / per_batch) if last == "keep" else real_images // per_batch


class _Reshuffling(Sampler):
    """Endless indices: a fresh seeded permutation of the dataset each pass, from position `offset`. With
    `part` (rank, world), the stream is cut into blocks of `block` positions and this rank yields its
    world-th of each, so ranks draw disjoint images and together the same ones one process would."""

    def __init__(self, n: int, seed: int, offset: int = 0, block: int = 1, part: tuple[int, int] = (0, 1)):
        self.n, self.seed, self.offset = n, seed, offset
        self.block, self.part = block, part

    def __iter__(self) -> Iterator[int]:
        rank, world = self.part
        share = self.block // world
        p, skip = divmod(self.offset, self.n)
        j = self.offset
        while True:
            for i in np.random.default_rng([self.seed, p]).permutation(self.n)[skip:].tolist():
                if world == 1 or (j % self.block) // share == rank:
                    yield i
                j += 1
            p, skip = p + 1, 0


class MixedBatches:
    """Iterate over one epoch of (images uint8 (B, 3, H, W), labels (B,), is_real (B,) bool)."""

    def __init__(self, real: Dataset | None, synthetic: Dataset | IterableDataset | None, ratio: Ratio | str,
                 batch_size: int = 128, seed: int = 0, last: str = "keep", workers: int = 0,
                 epoch_batches: int | None = None, start_epoch: int = 0, rank: int = 0, world: int = 1):
        self.ratio = Ratio.parse(ratio) if isinstance(ratio, str) else ratio
        # distributed: every rank takes 1/world of each global batch, real and synthetic alike
        self.rank, self.world = rank, world
        self.g_real, self.g_syn = self.ratio.split(batch_size)
        if self.g_real % world or self.g_syn % world:
            raise ValueError(f"batch {batch_size} at {self.ratio} ({self.g_real} real + {self.g_syn} synthetic) does "
                             f"not split evenly over {world} ranks; choose a batch size that does")
        self.n_real, self.n_syn = self.g_real // world, self.g_syn // world
        if self.n_real and real is None:
            raise ValueError(f"ratio {self.ratio} needs a real dataset")
        if self.n_syn and synthetic is None:
            raise ValueError(f"ratio {self.ratio} needs a synthetic source")
        if last not in ("keep", "drop"):
            raise ValueError(f"last={last!r}: 'keep' or 'drop'")
        self.real, self.synthetic = real, synthetic
        self.batch_size, self.seed, self.last = batch_size, seed, last
        self.epoch = start_epoch
        self._start_epoch = start_epoch
        self._epoch_batches = epoch_batches
        self._syn_iter: Iterator | None = None
        self.skipped = 0  # unreadable synthetic images replaced by readable ones (RenderedDataset.load)
        self._workers = workers
        if self.n_real:
            self._real_images, self._real_labels = _as_tensors(real)

    def __len__(self) -> int:
        if self._epoch_batches is not None:
            return self._epoch_batches
        # an epoch is one pass over the real set; synthetic only without one: a pass over the synthetic set
        n = len(self.real) if self.real is not None else len(self.synthetic)
        return batches_per_epoch(n, self.ratio, self.batch_size, self.last)

    def _synthetic_blocks(self) -> Iterator:
        """Blocks of n_syn synthetic images, from where `start_epoch` left off."""
        if self._syn_iter is None:
            syn, offset = self.synthetic, self._start_epoch * len(self) * self.g_syn
            if isinstance(syn, IterableDataset):
                import copy

                stream = copy.copy(syn)
                stream.start, stream.length, stream.block = syn.start + offset, None, self.n_syn
                stream.with_index = False
                loader = stream_loader(stream, batch_size=None, workers=self._workers)
            else:
                if hasattr(syn, "load"):  # a dataset that can tell an image it skipped: count them
                    syn = _Flagged(syn)
                sampler = _Reshuffling(len(syn), self.seed + 1, offset, self.g_syn, (self.rank, self.world))
                loader = DataLoader(syn, batch_size=self.n_syn, sampler=sampler,
                                    num_workers=self._workers)
            # a DataLoader draws its workers' seeds from the global RNG: shield it, so that dropout and
            # the rest of training see the same random numbers whether or not a run was resumed
            with torch.random.fork_rng(devices=[]):
                self._syn_iter = iter(loader)
        return self._syn_iter

    def close(self) -> None:
        """Stop the synthetic source's worker processes now rather than whenever garbage collection runs."""
        it, self._syn_iter = self._syn_iter, None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        order = torch.from_numpy(rng.permutation(len(self.real))) if self.n_real else None
        for b in range(len(self)):
            if self.n_real:
                idx = order[b * self.g_real:(b + 1) * self.g_real]
                idx = idx[self.rank * len(idx) // self.world:(self.rank + 1) * len(idx) // self.world]
                n_real = len(idx)
                # a short last batch keeps the ratio: synthetic count scaled down with it
                n_syn = self.n_syn if n_real == self.n_real else n_real * self.ratio.synthetic // self.ratio.real
                real_x, real_y = self._real_images[idx], self._real_labels[idx]
            else:
                n_real, n_syn = 0, self.n_syn
                real_x = real_y = None
            parts_x, parts_y = ([real_x], [real_y]) if n_real else ([], [])
            if self.n_syn:
                block = next(self._synthetic_blocks())  # a whole block, always: see the module doc
                sx, sy = block[:2]
                if len(block) > 2 and block[2].dtype == torch.bool:
                    self.skipped += int((~block[2][:n_syn]).sum())
                parts_x.append(sx[:n_syn])
                parts_y.append(sy[:n_syn])
            images, labels = torch.cat(parts_x), torch.cat(parts_y)
            is_real = torch.zeros(len(labels), dtype=torch.bool)
            is_real[:n_real] = True
            yield images, labels, is_real


class _Flagged(Dataset):
    """(image, label, read) items of a dataset with a `load` method."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return self.ds.load(i)


def stream_loader(stream: IterableDataset, batch_size: int | None, workers: int = 0, **kwargs) -> DataLoader:
    """A DataLoader for a RenderStream. Workers are spawned, not forked: a forked child would inherit
    the parent's GL driver state (Mesa is not fork-safe); each worker opens its own EGL context."""
    if workers:
        kwargs.setdefault("multiprocessing_context", "spawn")
        kwargs.setdefault("persistent_workers", True)
    return DataLoader(stream, batch_size=batch_size, num_workers=workers, **kwargs)


def _as_tensors(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The real set is small (hundreds to thousands of 32 px images): hold it as two tensors."""
    if hasattr(ds, "images") and hasattr(ds, "labels") and isinstance(ds.images, torch.Tensor):
        return ds.images, ds.labels
    xs, ys = zip(*(ds[i] for i in range(len(ds))), strict=True)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)
