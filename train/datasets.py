"""Torch datasets for the three kinds of data the trainers mix: real, rendered on disk, rendered on the fly.

Images come out as uint8 tensors (3, H, W), labels as class indices into a shared `class_names` list
(canonical names, see classes.py), so real and synthetic sets line up by name.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .classes import canonical

MAX_SKIP = 64  # unreadable images in a row before a folder is taken to be damaged
_REPORTED: set[str] = set()  # unreadable files already reported by this process


class RealDataset(Dataset):
    """A CIFAR-DA split (or any images/labels arrays) as uint8 tensors."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, class_names: list[str]):
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.class_names = [canonical(c) for c in class_names]

    @classmethod
    def from_split(cls, folder: Path, split: str) -> RealDataset:
        from .cifar_da import load_split

        s = load_split(folder, split)
        return cls(s.images, s.labels, s.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def mapped(self, fn) -> RealDataset:
        """The same labels with images passed through fn (uint8 (N, 3, H, W) -> same), e.g. a refiner."""
        out = RealDataset.__new__(RealDataset)
        out.images, out.labels, out.class_names = fn(self.images).contiguous(), self.labels, list(self.class_names)
        return out


class RenderedDataset(Dataset):
    """A folder written by `mixreal render`: OUT/<class>/*.png listed in OUT/manifest.jsonl, or WebDataset
    shards (OUT/*.tar with _info.json, `mixreal render --format webdataset`).

    `class_names` fixes the label indices (e.g. the real set's classes); images of other classes are
    left out. `params(i)` gives image i's latent parameters as the renderer recorded them.
    """

    def __init__(self, root: Path, class_names: list[str] | None = None):
        from renderer.export import MANIFEST, read_manifest
        from renderer.shards import INFO, index_shards

        self.root = Path(root)
        manifest = self.root / MANIFEST
        self._handles: dict[str, object] = {}
        if manifest.is_file():
            entries = read_manifest(manifest)
        elif (self.root / INFO).is_file() or any(self.root.glob("*.tar")):
            entries = index_shards(self.root, warn=lambda m: print(m, file=sys.stderr))
            manifest = self.root / INFO
        else:
            raise FileNotFoundError(f"{manifest}: no manifest and no shards (is {self.root} a `mixreal render` "
                                    "output?)")
        if not entries:
            raise ValueError(f"{manifest}: empty manifest")
        found = sorted({canonical(e["class"]) for e in entries})
        self.class_names = [canonical(c) for c in class_names] if class_names is not None else found
        index = {c: i for i, c in enumerate(self.class_names)}
        self.entries = [e for e in entries if canonical(e["class"]) in index]
        self.labels = np.array([index[canonical(e["class"])] for e in self.entries], dtype=np.int64)
        self.missing_classes = [c for c in self.class_names if c not in found]

    def __len__(self) -> int:
        return len(self.entries)

    def describe(self) -> dict:
        """What a training run records of its synthetic images (summary.json, checked on resume)."""
        return {"kind": "folder", "root": str(self.root.resolve()), "images": len(self.entries),
                "classes": list(self.class_names)}

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.load(i)[:2]

    def load(self, i: int) -> tuple[torch.Tensor, int, bool]:
        """(image, label, read): an unreadable image (corrupt, truncated, gone) is reported once by name and
        its place taken by the next readable one, so one bad file never ends a long run; `read` is False
        then, for the trainer's count of skipped images."""
        n = len(self.entries)
        for k in range(min(n, MAX_SKIP)):
            j = (i + k) % n
            try:
                return self._read(j), int(self.labels[j]), k == 0
            except OSError as exc:
                path = str(self.root / self.entries[j]["path"])
                if path not in _REPORTED:
                    _REPORTED.add(path)
                    print(f"warning: {path}: unreadable image ({exc}); skipped", file=sys.stderr, flush=True)
        raise OSError(f"{self.root}: {min(n, MAX_SKIP)} images in a row are unreadable; is the folder damaged?")

    def _read(self, i: int) -> torch.Tensor:
        import io

        from PIL import Image

        e = self.entries[i]
        if "_tar" in e:  # a WebDataset shard: the PNG's bytes at their offset in the tar
            f = self._handles.get(e["_tar"])
            if f is None:
                f = self._handles[e["_tar"]] = open(self.root / e["_tar"], "rb")  # noqa: SIM115 (kept open)
            offset, size = e["_png"]
            f.seek(offset)
            source = io.BytesIO(f.read(size))
        else:
            source = self.root / e["path"]
        with Image.open(source) as im:
            a = np.asarray(im.convert("RGB"))
        return torch.from_numpy(a.copy()).permute(2, 0, 1)

    def __getstate__(self) -> dict:  # open shard files stay with the process that opened them
        return {**self.__dict__, "_handles": {}}

    def params(self, i: int) -> dict:
        return self.entries[i]["params"]


def shard_info() -> tuple[int, int]:
    """(this process's shard, number of shards) over distributed ranks and DataLoader workers."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    info = get_worker_info()
    workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
    return rank * workers + worker, world * workers


def worker_device(shard: int, gpus: int, env) -> int | None:
    """The GPU a render worker uses: its rank's GPU under torchrun (LOCAL_RANK, where that rank trains), else
    shards spread over the GPUs in turn; None with fewer than two GPUs (the default device)."""
    if gpus < 2:
        return None
    if env.get("LOCAL_RANK") is not None and int(env.get("WORLD_SIZE", "1")) > 1:
        return int(env["LOCAL_RANK"]) % gpus
    return shard % gpus


class RenderStream(IterableDataset):
    """Images rendered on the fly: sample i is exactly the image `mixreal render` writes for it.

    Global index i is the renderer's `spec_at(i)`: class-balanced, see renderer.indexing. The
    index range [start, start + length) (endless when length is None) is cut into blocks of one batch;
    block b goes to shard b mod n_shards, a shard being one DataLoader worker of one rank. So no index
    is rendered twice or skipped, each worker renders whole batches, and each opens its own EGL context
    on its own GPU when several are visible.
    """

    def __init__(self, models: Path, config, class_names: list[str] | None = None, start: int = 0,
                 length: int | None = None, with_index: bool = False, block: int | None = None):
        from renderer import ModelLibrary, discover_models

        self.models_root = Path(models)
        self.config = config
        self.start, self.length, self.with_index = int(start), length, with_index
        # block: yield whole blocks of this many images (as batch tensors) instead of single images;
        # with a DataLoader over workers, blocks then arrive in index order (MixedBatches relies on it)
        self.block = block
        # with class_names, only models of those classes (matched through the alias table) are used,
        # as `mixreal render --classes` does: the global index runs over the models kept
        self.folder_classes = None
        if class_names is not None:
            wanted = {canonical(c) for c in class_names}
            refs, _ = discover_models(self.models_root)
            self.folder_classes = sorted({r.label for r in refs if canonical(r.label) in wanted})
            if not self.folder_classes:
                raise ValueError(f"{self.models_root}: no models of the classes {', '.join(sorted(wanted))}")
        library = ModelLibrary.load(self.models_root, on_skip=lambda m: None, classes=self.folder_classes)
        found = sorted({canonical(m.label) for m in library.models})
        self.class_names = [canonical(c) for c in class_names] if class_names is not None else found
        index = {c: i for i, c in enumerate(self.class_names)}
        self.model_labels = [index.get(canonical(m.label), -1) for m in library.models]
        self.missing_classes = [c for c in self.class_names if c not in found]
        self.n_models = len(library.models)

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("an endless RenderStream has no length")
        return self.length

    def describe(self) -> dict:
        """What a training run records of its synthetic images: the models and every render setting, as
        `mixreal render` writes them into render.json (summary.json, checked on resume)."""
        from renderer.export import settings_of

        return {"kind": "stream", **settings_of(self.config, self.models_root.resolve()),
                "classes": list(self.class_names), "start": self.start}

    def _renderer(self, shard: int):
        from renderer import ModelLibrary, Renderer
        from renderer.platform import gpu_count

        config = self.config
        device = worker_device(shard, gpu_count(), os.environ)
        if config.device is None and device is not None:
            config = replace(config, device=device)
        library = ModelLibrary.load(self.models_root, on_skip=lambda m: None, classes=self.folder_classes)
        return Renderer(library, config)

    def __iter__(self) -> Iterator:
        shard, shards = shard_info()
        renderer = self._renderer(shard)
        block = self.block or renderer.batch_capacity
        end = None if self.length is None else self.start + self.length
        b = shard
        try:
            while True:
                lo = self.start + b * block
                if end is not None and lo >= end:
                    return
                hi = lo + block if end is None else min(lo + block, end)
                indices = range(lo, hi)
                specs = [renderer.spec_at(i) for i in indices]
                images = renderer.render(specs)
                if self.block:
                    labels = torch.tensor([self.model_labels[s.model] for s in specs])
                    batch = torch.from_numpy(images).permute(0, 3, 1, 2)
                    yield (batch, labels, torch.tensor(list(indices))) if self.with_index else (batch, labels)
                    b += shards
                    continue
                for j, i in enumerate(indices):
                    label = self.model_labels[specs[j].model]
                    if label < 0:
                        continue  # a model of a class outside class_names
                    image = torch.from_numpy(images[j]).permute(2, 0, 1)
                    yield (image, label, i) if self.with_index else (image, label)
                b += shards
        finally:
            renderer.release()

