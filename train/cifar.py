"""Reading CIFAR-10 / CIFAR-100 from the files a user has: python releases, binary releases, .npz.

The python release is a pickle. It is read with an unpickler that may construct only the few numpy
types those files contain, so a tampered file cannot run code; anything else is refused with a
one-line error naming the file.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renderer.mesh_cache import NPZ_ERRORS

IMAGE_BYTES = 32 * 32 * 3


class CifarFormatError(ValueError):
    """A CIFAR file that is missing, truncated, tampered with or of the wrong kind (one line)."""


@dataclass
class Split:
    images: np.ndarray  # (N, 32, 32, 3) uint8, RGB, HWC
    labels: np.ndarray  # (N,) int64: indices into names
    names: list[str]  # label names of the source (CIFAR-10: 10, CIFAR-100: 100 fine labels)

    def __len__(self) -> int:
        return len(self.labels)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Constructs numpy arrays and nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 2 pickles carry byte strings
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused: the pickle asks to construct {module}.{name}")


def safe_unpickle(path: Path) -> dict:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CifarFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("refused"):
            raise CifarFormatError(f"{path}: {exc}; not a CIFAR python-release file") from None
        raise CifarFormatError(f"{path}: truncated or corrupt pickle ({exc})") from None
    except (EOFError, ValueError, IndexError, KeyError, TypeError, AttributeError, MemoryError) as exc:
        raise CifarFormatError(f"{path}: truncated or corrupt ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise CifarFormatError(f"{path}: not a CIFAR batch (a pickled {type(obj).__name__}, not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _decode(names) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _images(path: Path, data) -> np.ndarray:
    a = np.asarray(data)
    if a.dtype != np.uint8 or a.ndim != 2 or a.shape[1] != IMAGE_BYTES:
        raise CifarFormatError(f"{path}: 'data' is {a.dtype} {a.shape}, expected uint8 (N, {IMAGE_BYTES})")
    return a.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


def _python_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = safe_unpickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise CifarFormatError(f"{path}: no '{key}' entry; is this the right CIFAR release?")
    images = _images(path, d["data"])
    labels = np.asarray(d[label_key], dtype=np.int64)
    if len(labels) != len(images):
        raise CifarFormatError(f"{path}: {len(images)} images but {len(labels)} labels")
    return images, labels


def _binary_batch(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise CifarFormatError(f"{path}: cannot read ({exc})") from None
    record = label_bytes + IMAGE_BYTES
    if raw.size == 0 or raw.size % record:
        raise CifarFormatError(f"{path}: {raw.size} bytes is not a whole number of {record}-byte records "
                               "(truncated?)")
    rows = raw.reshape(-1, record)
    images = rows[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return images, rows[:, label_bytes - 1].astype(np.int64)  # CIFAR-100: the fine label comes second


def _find(root: Path, names: tuple[str, ...]) -> Path | None:
    if root.name in names:
        return root
    for n in names:
        if (root / n).is_dir():
            return root / n
    return None


def load_cifar(root: Path, which: str) -> dict[str, Split]:
    """{'train': Split, 'test': Split (when the source has it)} for which = 'cifar10' | 'cifar100'.

    `root` may be the release folder, a folder holding it (as torchvision downloads), or an .npz with
    arrays images, labels, label_names (a train-split subset).
    """
    root = Path(root)
    if which not in ("cifar10", "cifar100"):
        raise ValueError(f"unknown CIFAR {which!r}")
    if not root.exists():
        raise CifarFormatError(f"{root}: not found")
    if root.suffix == ".npz":
        return {"train": _load_npz(root)}
    py = _find(root, ("cifar-10-batches-py",) if which == "cifar10" else ("cifar-100-python",))
    if py is not None:
        return _load_python(py, which)
    binary = _find(root, ("cifar-10-batches-bin",) if which == "cifar10" else ("cifar-100-binary",))
    if binary is not None:
        return _load_binary(binary, which)
    npz = sorted(root.glob("*.npz"))
    if npz:
        return {"train": _load_npz(npz[0])}
    expected = "cifar-10-batches-py/ or cifar-10-batches-bin/" if which == "cifar10" else \
        "cifar-100-python/ or cifar-100-binary/"
    raise CifarFormatError(f"{root}: no {which} release found (expected {expected} or an .npz)")


def _load_python(folder: Path, which: str) -> dict[str, Split]:
    if which == "cifar10":
        meta = safe_unpickle(folder / "batches.meta")
        names = _decode(meta.get("label_names", []))
        parts = [_python_batch(folder / f"data_batch_{i}", "labels") for i in range(1, 6)]
        train = Split(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), names)
        test = Split(*_python_batch(folder / "test_batch", "labels"), names)
    else:
        meta = safe_unpickle(folder / "meta")
        names = _decode(meta.get("fine_label_names", []))
        train = Split(*_python_batch(folder / "train", "fine_labels"), names)
        test = Split(*_python_batch(folder / "test", "fine_labels"), names)
    for split in (train, test):
        _check_labels(folder, split)
    return {"train": train, "test": test}


def _load_binary(folder: Path, which: str) -> dict[str, Split]:
    if which == "cifar10":
        names = _names_txt(folder / "batches.meta.txt")
        parts = [_binary_batch(folder / f"data_batch_{i}.bin", 1) for i in range(1, 6)]
        train = Split(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), names)
        test = Split(*_binary_batch(folder / "test_batch.bin", 1), names)
    else:
        names = _names_txt(folder / "fine_label_names.txt")
        train = Split(*_binary_batch(folder / "train.bin", 2), names)
        test = Split(*_binary_batch(folder / "test.bin", 2), names)
    for split in (train, test):
        _check_labels(folder, split)
    return {"train": train, "test": test}


def _names_txt(path: Path) -> list[str]:
    if not path.is_file():
        raise CifarFormatError(f"{path}: label names file missing")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _load_npz(path: Path) -> Split:
    try:
        with np.load(path, allow_pickle=False) as d:
            images, labels, names = d["images"], d["labels"].astype(np.int64), [str(n) for n in d["label_names"]]
    except NPZ_ERRORS as exc:
        raise CifarFormatError(f"{path}: not a CIFAR .npz (images, labels, label_names): {exc}") from None
    if images.dtype != np.uint8 or images.shape[1:] != (32, 32, 3) or len(images) != len(labels):
        raise CifarFormatError(f"{path}: images must be uint8 (N, 32, 32, 3) with one label each")
    split = Split(images, labels, names)
    _check_labels(path, split)
    return split


def _check_labels(where: Path, split: Split) -> None:
    if len(split) and (split.labels.min() < 0 or split.labels.max() >= len(split.names)):
        raise CifarFormatError(f"{where}: labels outside 0..{len(split.names) - 1}")
