"""CIFAR-DA: the paper's small real datasets, built from local CIFAR-10 / CIFAR-100.

For each class: `train` and `val` images drawn (seeded, without overlap) from the CIFAR train split,
`test` images from the CIFAR test split. A class with several sources (da9's person) takes an equal
share from each. Where a source has no test split (the .npz subsets this project's tests use hold only
CIFAR train images) the test images are drawn from the train split too, disjoint from train and val, and
`dataset.json` records it.

Output: OUT/train.npz, OUT/val.npz, OUT/test.npz (images uint8 NHWC, labels, class_names, source,
source_index, source_label), OUT/dataset.json and OUT/preview.png.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renderer.mesh_cache import NPZ_ERRORS

from .cifar import Split
from .classes import canonical

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Counts:
    train: int = 500
    val: int = 50
    test: int = 50

    @classmethod
    def parse(cls, text: str) -> Counts:
        try:
            a, b, c = (int(x) for x in text.split(","))
        except ValueError:
            raise ValueError(f"--counts {text!r}: expected three integers train,val,test such as 500,50,50") from None
        if min(a, b, c) < 0 or a == 0:
            raise ValueError(f"--counts {text!r}: counts must be >= 0 and train > 0")
        return cls(a, b, c)


@dataclass
class RealSplit:
    images: np.ndarray  # (N, 32, 32, 3) uint8
    labels: np.ndarray  # (N,) int64
    class_names: list[str]
    source: np.ndarray  # (N,) str: "cifar10:train" ...
    source_index: np.ndarray  # (N,) int64: index in that CIFAR split
    source_label: np.ndarray  # (N,) str

    def __len__(self) -> int:
        return len(self.labels)


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def build(class_map: dict[str, list[str]], sources: dict[str, dict[str, Split]], counts: Counts,
          seed: int) -> tuple[dict[str, RealSplit], dict]:
    """The three splits, and notes for dataset.json."""
    classes = sorted(canonical(c) for c in class_map)
    parts: dict[str, list[tuple]] = {s: [] for s in SPLITS}
    test_from_train: list[str] = []
    for ci, cls in enumerate(classes):
        srcs = next(v for k, v in class_map.items() if canonical(k) == cls)
        shares = {s: _shares(getattr(counts, s), len(srcs)) for s in SPLITS}
        for si, src in enumerate(srcs):
            which, label = src.split(":", 1)
            if which not in sources:
                raise ValueError(f"class {cls} needs {which} (pass --{which} DIR)")
            splits = sources[which]
            train = splits["train"]
            if label not in train.names:
                raise ValueError(f"class {cls}: {which} has no label {label!r}")
            lab = train.names.index(label)
            pool = np.flatnonzero(train.labels == lab)
            rng = np.random.default_rng([seed, ci, si, 0])
            pool = pool[rng.permutation(len(pool))]
            n_tr, n_va, n_te = shares["train"][si], shares["val"][si], shares["test"][si]
            has_test = "test" in splits
            need = n_tr + n_va + (0 if has_test else n_te)
            if len(pool) < need:
                raise ValueError(f"class {cls}: {which} train has {len(pool)} '{label}' images, {need} needed")
            parts["train"].append((cls, ci, which, "train", pool[:n_tr], train, label))
            parts["val"].append((cls, ci, which, "train", pool[n_tr:n_tr + n_va], train, label))
            if has_test:
                test = splits["test"]
                tpool = np.flatnonzero(test.labels == test.names.index(label))
                tpool = tpool[np.random.default_rng([seed, ci, si, 1]).permutation(len(tpool))]
                if len(tpool) < n_te:
                    raise ValueError(f"class {cls}: {which} test has {len(tpool)} '{label}' images, {n_te} needed")
                parts["test"].append((cls, ci, which, "test", tpool[:n_te], test, label))
            else:
                test_from_train.append(f"{cls} <- {src}")
                parts["test"].append((cls, ci, which, "train", pool[n_tr + n_va:need], train, label))
    out = {}
    for s in SPLITS:
        chunks = parts[s]
        out[s] = RealSplit(
            images=np.concatenate([c[5].images[c[4]] for c in chunks]),
            labels=np.concatenate([np.full(len(c[4]), c[1], np.int64) for c in chunks]),
            class_names=classes,
            source=np.concatenate([np.full(len(c[4]), f"{c[2]}:{c[3]}") for c in chunks]),
            source_index=np.concatenate([c[4].astype(np.int64) for c in chunks]),
            source_label=np.concatenate([np.full(len(c[4]), c[6]) for c in chunks]),
        )
    notes = {"test_drawn_from_train": test_from_train}
    return out, notes


def _atomic_savez(path: Path, **arrays) -> None:
    from renderer.export import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def write(out: Path, splits: dict[str, RealSplit], info: dict) -> None:
    from renderer.export import atomic_write_bytes, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, sp in splits.items():
        _atomic_savez(out / f"{name}.npz", images=sp.images, labels=sp.labels,
                      class_names=np.array(sp.class_names), source=sp.source.astype(str),
                      source_index=sp.source_index, source_label=sp.source_label.astype(str))
    counts = {name: {c: int((sp.labels == i).sum()) for i, c in enumerate(sp.class_names)}
              for name, sp in splits.items()}
    atomic_write_text(out / "dataset.json", json.dumps({**info, "counts": counts}, indent=2) + "\n")
    buf = io.BytesIO()
    preview(splits["train"]).save(buf, format="PNG")
    atomic_write_bytes(out / "preview.png", buf.getvalue())


def preview(split: RealSplit, per_class: int = 16, scale: int = 2):
    """One row of real images per class, labelled."""
    from PIL import Image, ImageDraw

    s = 32 * scale
    label_w = 90
    sheet = Image.new("RGB", (label_w + per_class * (s + 2), len(split.class_names) * (s + 2)), "white")
    draw = ImageDraw.Draw(sheet)
    for ci, name in enumerate(split.class_names):
        idx = np.flatnonzero(split.labels == ci)[:per_class]
        draw.text((4, ci * (s + 2) + s // 2 - 6), name, fill="black")
        for j, i in enumerate(idx):
            im = Image.fromarray(split.images[i]).resize((s, s), Image.NEAREST)
            sheet.paste(im, (label_w + j * (s + 2), ci * (s + 2)))
    return sheet


def load_split(folder: Path, split: str) -> RealSplit:
    """A split written by `write` (or `mixreal data cifar-da`)."""
    path = Path(folder) / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such split (build one with mixreal data photos or mixreal data cifar-da)")
    d = read_split_arrays(path, SPLIT_ARRAYS)
    return RealSplit(d["images"], d["labels"].astype(np.int64), [str(c) for c in d["class_names"]],
                     d["source"], d["source_index"], d["source_label"])


SPLIT_ARRAYS = ("images", "labels", "class_names", "source", "source_index", "source_label")


def read_split_arrays(path: Path, required: tuple[str, ...] = ("images",)) -> dict[str, np.ndarray]:
    """Every array of a split's .npz, or a one-line error naming the file (torn, foreign, not an .npz, or
    without one of the `required` arrays)."""
    try:
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
    except NPZ_ERRORS as exc:
        raise ValueError(f"{path}: not a CIFAR-DA split ({type(exc).__name__}: {exc})") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"{path}: not a CIFAR-DA split (no {', '.join(missing)})")
    return arrays
