"""Your own labelled photos as a real dataset: a folder of class folders -> train / val / test splits.

    PHOTOS/<class>/**/<image>                 one folder per class, any depth inside; split here, per class
    PHOTOS/{train,val,test}/<class>/**/...    already split (val/valid/validation, test/testing): kept as
                                              given; a missing val or test split is drawn from train
                                              (a `train/` folder beside class folders is the class train)

The first-level class folder's name is the label; it goes through the alias table (`classes.canonical`), so
`automobile/` meets the models' `car/`. Every image is read with Pillow (EXIF orientation applied; grey, palette,
CMYK and 16-bit images converted; transparency flattened onto white) and brought to `size` x `size`: by default
its shorter side is scaled to `size` and the centre cropped (`fit="crop"`, how CIFAR's photos are framed);
`"pad"` keeps the whole photo and pads it, `"stretch"` squeezes it. The output is what `mixreal data cifar-da`
writes (train/val/test .npz, dataset.json, preview.png), so every command that takes `--real` reads it; each
image's `source_label` is its path inside PHOTOS.

A serious photo set has problems; none of them stops the job or leaks into the test score:
- unreadable, truncated or tiny files are reported once by name and skipped (listed in dataset.json);
- exact duplicates (the same pixels after resizing: re-saved copies, the same photo in two folders) are kept
  once, so no test image has a copy in train; a duplicate filed under two classes is dropped from both.
The split is seeded per class (the same files and seed give the same split on any machine) and stratified.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renderer.images import IMAGE_EXTENSIONS, MIN_SIDE

from .cifar_da import SPLITS, RealSplit
from .classes import canonical

FITS = ("crop", "pad", "stretch")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}
PAD_COLOUR = (255, 255, 255)


@dataclass(frozen=True)
class Fractions:
    """Shares of each class's photos for train, val and test (a split-by-us folder, or a missing split)."""

    train: float = 0.7
    val: float = 0.1
    test: float = 0.2

    @classmethod
    def parse(cls, text: str) -> Fractions:
        try:
            a, b, c = (float(x) for x in text.split(","))
        except ValueError:
            raise ValueError(f"--split {text!r}: expected three fractions train,val,test such as 0.7,0.1,0.2") from None
        if min(a, b, c) < 0 or a <= 0 or abs(a + b + c - 1.0) > 1e-6:
            raise ValueError(f"--split {text!r}: fractions must be >= 0, train > 0, and add up to 1")
        return cls(a, b, c)


@dataclass
class Photo:
    path: Path  # inside the photo folder
    label: str  # canonical class name
    split: str | None  # as given by a pre-split folder, else None


def find_photos(root: Path) -> tuple[list[Photo], bool]:
    """Every image file under root with its class (and given split), sorted by path; and whether the folder
    is pre-split. Raises ValueError naming the folder when its layout gives no classes."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: photo folder not found")
    tops = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    # pre-split only when every top folder is a split and train/ holds class folders: `train/` next to `car/`
    # is the class train (the vehicle)
    presplit = bool(tops) and all(p.name.lower() in SPLIT_NAMES for p in tops) and any(
        c.is_dir() for t in tops if SPLIT_NAMES[t.name.lower()] == "train" for c in t.iterdir())
    if presplit:
        groups = [(SPLIT_NAMES[t.name.lower()], c) for t in tops for c in sorted(t.iterdir()) if c.is_dir()]
    else:
        groups = [(None, c) for c in tops]
    photos: list[Photo] = []
    folders: dict[tuple[str | None, str], Path] = {}
    for split, folder in groups:
        label = canonical(folder.name)
        seen = folders.setdefault((split, label), folder)
        if seen != folder:
            raise ValueError(f"{root}: folders {seen.name}/ and {folder.name}/ are the same class ({label}): "
                             "merge them into one")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        photos += [Photo(p, label, split) for p in files]
    if not photos:
        raise ValueError(f"{root}: no images in class folders (PHOTOS/<class>/*.jpg or PHOTOS/<split>/<class>/*.jpg; "
                         f"{', '.join(IMAGE_EXTENSIONS)})")
    return photos, presplit


def load_photo(path: Path, size: int, fit: str = "crop") -> np.ndarray:
    """(size, size, 3) uint8 sRGB. Raises ValueError with the reason when the file cannot be used."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            if min(w, h) < MIN_SIDE:
                raise ValueError(f"image too small ({w}x{h} px, at least {MIN_SIDE} needed)")
            # JPEG: decode at a reduced scale when the photo is far larger than the output (DCT scaling)
            im.draft("RGB", (2 * size, 2 * size))
            im = ImageOps.exif_transpose(im)
            im = _rgb(im)
            if fit == "crop":
                w, h = im.size
                side = min(w, h)
                box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
                im = im.resize((size, size), Image.LANCZOS, box=box, reducing_gap=3.0)
            elif fit == "pad":
                im = ImageOps.pad(im, (size, size), Image.LANCZOS, color=PAD_COLOUR)
            elif fit == "stretch":
                im = im.resize((size, size), Image.LANCZOS, reducing_gap=3.0)
            else:
                raise ValueError(f"unknown fit {fit!r} ({', '.join(FITS)})")
            return np.asarray(im, dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"unreadable image ({type(exc).__name__}: {exc})") from None


def _rgb(im):
    """Any Pillow mode -> RGB: transparency onto white, 16-bit and float scaled to 8 bits."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        scale = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a / scale * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, PAD_COLOUR + (255,))
        flat.alpha_composite(rgba)
        return flat.convert("RGB")
    return im.convert("RGB")


def _load(job: tuple[Path, int, str]) -> tuple[np.ndarray | None, str | None]:
    path, size, fit = job
    try:
        return load_photo(path, size, fit), None
    except ValueError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a malformed file can make a decoder raise anything
        return None, f"unreadable image ({type(exc).__name__}: {exc})"


def load_all(paths: list[Path], size: int, fit: str, workers: int | None = None, progress: bool = True):
    """(image or None, reason or None) per path, in order; `workers` processes share the decoding (default:
    the cores, at most 8)."""
    from tqdm import tqdm

    workers = workers if workers is not None else max(1, min(8, os.cpu_count() or 1))

    jobs = [(p, size, fit) for p in paths]
    bar = dict(total=len(jobs), unit="img", desc="photos", disable=not progress, dynamic_ncols=True)
    if workers <= 1 or len(jobs) < 64:
        return [_load(j) for j in tqdm(jobs, **bar)]
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        return list(tqdm(pool.map(_load, jobs, chunksize=32), **bar))


def _shares(n: int, fr: Fractions) -> tuple[int, int, int]:
    """(train, val, test) counts of n photos: val and test rounded, never taking train to zero."""
    # a split with a share gets at least one photo: best-epoch selection needs a validation image
    n_val = max(1, round(n * fr.val)) if fr.val > 0 else 0
    n_test = max(1, round(n * fr.test)) if fr.test > 0 else 0
    while n_val + n_test >= n and (n_val or n_test):  # keep at least one training photo
        if n_test >= n_val:
            n_test -= 1
        else:
            n_val -= 1
    return n - n_val - n_test, n_val, n_test


def build_from_folder(root: Path, size: int = 32, fractions: Fractions = Fractions(), seed: int = 0,
                      fit: str = "crop", workers: int | None = None, progress: bool = True,
                      on_skip=None) -> tuple[dict[str, RealSplit], dict]:
    """The three splits of a photo folder, and what dataset.json records (see the module doc)."""
    if fit not in FITS:
        raise ValueError(f"--fit {fit!r}: one of {', '.join(FITS)}")
    if not 8 <= size <= 1024:
        raise ValueError(f"--size {size}: between 8 and 1024 px")
    root = Path(root)
    photos, presplit = find_photos(root)
    loaded = load_all([p.path for p in photos], size, fit, workers, progress)
    skipped: list[dict] = []
    kept: list[tuple[Photo, np.ndarray]] = []
    for photo, (img, reason) in zip(photos, loaded, strict=True):
        if img is None:
            skipped.append({"file": str(photo.path.relative_to(root)), "reason": reason})
            if on_skip:
                on_skip(f"skipped {photo.path}: {reason}")
        else:
            kept.append((photo, img))
    kept, duplicates, conflicts = _deduplicate(kept, root)
    if on_skip and (duplicates or conflicts):
        on_skip(f"{root}: {duplicates} duplicate images kept once"
                + (f"; {len(conflicts)} filed under two classes dropped ({', '.join(conflicts[:3])}"
                   f"{', ...' if len(conflicts) > 3 else ''})" if conflicts else ""))
    classes = sorted({p.label for p, _ in kept})
    if not classes:
        raise ValueError(f"{root}: no usable image ({len(skipped)} skipped)")
    index = {c: i for i, c in enumerate(classes)}
    parts: dict[str, list[tuple[Photo, np.ndarray]]] = {s: [] for s in SPLITS}
    for cls in classes:
        mine = [(p, x) for p, x in kept if p.label == cls]
        given = {s: [(p, x) for p, x in mine if p.split == s] for s in SPLITS}
        pool = [(p, x) for p, x in mine if p.split in (None, "train")]
        rng = np.random.default_rng([seed, zlib.crc32(cls.encode())])  # by name: a new class moves no other
        pool = [pool[i] for i in rng.permutation(len(pool))]
        if len(pool) < 1 or (len(pool) < 3 and not presplit and (fractions.val or fractions.test)):
            raise ValueError(f"{root}: class {cls} has {len(pool)} usable training photos; at least 3 are needed "
                             "for train, val and test")
        # a split the folder gives is kept; the others are drawn from train at their share of the whole
        share = Fractions(fractions.train, 0.0 if given["val"] else fractions.val,
                          0.0 if given["test"] else fractions.test)
        n_tr, n_va, n_te = _shares(len(pool), share)
        parts["train"] += pool[:n_tr]
        parts["val"] += given["val"] + pool[n_tr:n_tr + n_va]
        parts["test"] += given["test"] + pool[n_tr + n_va:n_tr + n_va + n_te]
    splits = {}
    for s in SPLITS:
        rows = parts[s]
        splits[s] = RealSplit(
            images=np.stack([x for _, x in rows]) if rows else np.zeros((0, size, size, 3), np.uint8),
            labels=np.array([index[p.label] for p, _ in rows], np.int64),
            class_names=classes,
            source=np.full(len(rows), f"photos:{s}"),
            source_index=np.arange(len(rows), dtype=np.int64),
            source_label=np.array([str(p.path.relative_to(root)) for p, _ in rows], dtype=str),
        )
    info = {"kind": "photos", "root": str(root.resolve()), "size": size, "fit": fit, "seed": seed,
            "layout": "pre-split" if presplit else "class folders",
            "fractions": {"train": fractions.train, "val": fractions.val, "test": fractions.test},
            "images_found": len(photos), "skipped": len(skipped), "skipped_files": skipped[:1000],
            "duplicates_removed": duplicates, "conflicting_duplicates": conflicts[:1000]}
    return splits, info


def _deduplicate(kept: list[tuple[Photo, np.ndarray]], root: Path):
    """Keep the first of each set of identical images (after resizing); drop an image filed under two classes
    altogether (its label is unknown). Returns (kept, duplicates removed, files with conflicting labels)."""
    first: dict[bytes, tuple[int, str]] = {}
    labels_of: dict[bytes, set[str]] = {}
    keys = []
    for i, (p, x) in enumerate(kept):
        k = hashlib.blake2b(x.tobytes(), digest_size=16).digest()
        keys.append(k)
        first.setdefault(k, (i, p.label))
        labels_of.setdefault(k, set()).add(p.label)
    out, duplicates, conflicts = [], 0, []
    for i, ((p, x), k) in enumerate(zip(kept, keys, strict=True)):
        if len(labels_of[k]) > 1:
            conflicts.append(str(p.path.relative_to(root)))
        elif first[k][0] == i:
            out.append((p, x))
        else:
            duplicates += 1
    return out, duplicates, conflicts
