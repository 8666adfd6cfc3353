"""`mixreal refine`: a dataset passed through a trained MrGAN run (or, with no network, moved onto a photo set's
colour statistics: train/colour_match.py), written in the layout it came in.

A rendered folder (OUT/<class>/*.png + manifest.jsonl) stays one: same paths, labels and latent parameters,
each manifest entry gaining `refined` (run, stage, direction). A CIFAR-DA folder (train/val/test .npz) stays
one too. Images are written atomically; a killed job skips what is on disk when run again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .mrgan import Refiner

REFINE_FILE = "refine.json"
CHUNK = 256


def input_kind(folder: Path) -> str:
    from renderer.export import MANIFEST

    if (folder / MANIFEST).is_file():
        return "rendered"
    if any((folder / f"{s}.npz").is_file() for s in ("train", "val", "test")):
        return "cifar-da"
    raise ValueError(f"{folder}: neither a rendered folder (manifest.jsonl) nor a CIFAR-DA folder "
                     "(train/val/test .npz)")


def _check_settings(out: Path, settings: dict) -> None:
    from renderer.export import atomic_write_text

    path = out / REFINE_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        if old != settings:
            changed = sorted(k for k in settings if old.get(k) != settings[k])
            raise ValueError(f"{out}: already holds images refined with other settings ({', '.join(changed)}); "
                             "use another --out")
    else:
        atomic_write_text(path, json.dumps(settings, indent=2) + "\n")


FIT_IMAGES = 20_000  # renders the photo-statistics map is fitted on (evenly spaced over a larger folder)
STATS_FILE = "photo-stats.json"


def match_folder(photos: Path, src: Path, out: Path, progress: bool = True) -> dict:
    """Renders of `src` moved onto the colour statistics of the photo folder's train split, row by row; the
    fitted map is kept in OUT/photo-stats.json, so a resumed job maps the rest with the same numbers."""
    from .colour_match import PhotoStats
    from .datasets import RealDataset

    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve():
        raise ValueError(f"{out}: the output folder must differ from the input")
    kind = input_kind(src)
    settings = {"photo_stats": str(Path(photos).resolve()), "direction": "s2r", "input": str(src.resolve())}
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    if (out / STATS_FILE).is_file():
        stats = PhotoStats.load(out / STATS_FILE)
    else:
        real = RealDataset.from_split(photos, "train").images
        renders = _sample_images(src, kind, FIT_IMAGES)
        if renders.shape[1:] != real.shape[1:]:
            raise ValueError(f"{src}: images of {renders.shape[-1]} px, the photos in {photos} are "
                             f"{real.shape[-1]} px: render at the photos' size")
        stats = PhotoStats.fit(renders, real)
        stats.save(out / STATS_FILE)
    return _write_copy(stats.s2r, kind, src, out, settings, progress)


def _sample_images(src: Path, kind: str, n: int) -> torch.Tensor:
    """Up to n images of a folder, evenly spaced, uint8 (N, 3, H, W)."""
    if kind == "cifar-da":
        from .cifar_da import read_split_arrays

        x = read_split_arrays(src / "train.npz")["images"]
        idx = np.linspace(0, len(x) - 1, min(n, len(x))).astype(int)
        return torch.from_numpy(np.ascontiguousarray(x[idx])).permute(0, 3, 1, 2).contiguous()
    from renderer.export import MANIFEST, read_manifest

    entries = read_manifest(src / MANIFEST)
    if not entries:
        raise ValueError(f"{src / MANIFEST}: empty manifest")
    idx = np.linspace(0, len(entries) - 1, min(n, len(entries))).astype(int)
    return torch.from_numpy(np.stack([_read_rgb(src / entries[i]["path"]) for i in idx])).permute(0, 3, 1, 2)


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise ValueError(f"{path}: unreadable image ({exc})") from None


def refine_folder(run: Path, src: Path, out: Path, direction: str, stage: int | None = None,
                  device: str | torch.device = "cpu", progress: bool = True) -> dict:
    """Refine every image of `src` into `out`; returns what refine.json records."""
    if direction not in ("s2r", "r2s"):
        raise ValueError(f"direction {direction!r}: s2r (synthetic to real) or r2s")
    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve():
        raise ValueError(f"{out}: the output folder must differ from the input")
    ref = Refiner.load(run, stage, device)
    fn = ref.s2r if direction == "s2r" else ref.r2s
    kind = input_kind(src)
    settings = {"run": str(Path(run).resolve()), "stage": ref.stages, "direction": direction,
                "input": str(src.resolve()), "mapping": ref.mapping}
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    return _write_copy(fn, kind, src, out, settings, progress)


def _write_copy(fn, kind: str, src: Path, out: Path, settings: dict, progress: bool) -> dict:
    """Every image of src through fn into out, in src's layout; what refine.json records, with the count."""
    count = (_refine_rendered if kind == "rendered" else _refine_cifar_da)(fn, src, out, settings, progress)
    return {**settings, "kind": kind, "images": count}


def _chunks(n: int, progress: bool, what: str):
    starts = range(0, n, CHUNK)
    if progress:
        from tqdm import tqdm

        return tqdm(starts, desc=f"refining {what}", unit="chunk", dynamic_ncols=True)
    return starts


def _refine_rendered(fn, src: Path, out: Path, settings: dict, progress: bool) -> int:
    import shutil

    from renderer.export import MANIFEST, SETTINGS, atomic_write_text, read_manifest, save_png

    entries = read_manifest(src / MANIFEST)
    if not entries:
        raise ValueError(f"{src / MANIFEST}: empty manifest")
    todo = [e for e in entries if not (out / e["path"]).is_file()]
    for lo in _chunks(len(todo), progress, str(src)):
        part = todo[lo:lo + CHUNK]
        images = [_read_rgb(src / e["path"]) for e in part]
        refined = fn(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous())
        for e, image in zip(part, refined.permute(0, 2, 3, 1).numpy(), strict=True):
            (out / e["path"]).parent.mkdir(parents=True, exist_ok=True)
            save_png(out / e["path"], np.ascontiguousarray(image))
    tag = {k: settings[k] for k in ("run", "stage", "photo_stats", "direction") if k in settings}
    atomic_write_text(out / MANIFEST, "".join(json.dumps({**e, "refined": tag}) + "\n" for e in entries))
    if (src / SETTINGS).is_file() and not (out / SETTINGS).is_file():
        shutil.copyfile(src / SETTINGS, out / SETTINGS)
    return len(entries)


def _refine_cifar_da(fn, src: Path, out: Path, settings: dict, progress: bool) -> int:
    from renderer.export import atomic_write_text

    from .cifar_da import _atomic_savez, read_split_arrays

    total = 0
    for split in ("train", "val", "test"):
        path = src / f"{split}.npz"
        if not path.is_file():
            continue
        arrays = read_split_arrays(path)
        total += len(arrays["images"])
        if (out / f"{split}.npz").is_file():
            continue  # written whole (atomically) by an earlier run
        x = torch.from_numpy(arrays["images"]).permute(0, 3, 1, 2).contiguous()
        refined = torch.cat([fn(x[lo:lo + CHUNK]) for lo in _chunks(len(x), progress, f"{src.name}/{split}")])
        arrays["images"] = np.ascontiguousarray(refined.permute(0, 2, 3, 1).numpy())
        _atomic_savez(out / f"{split}.npz", **arrays)
    info = json.loads((src / "dataset.json").read_text()) if (src / "dataset.json").is_file() else {}
    atomic_write_text(out / "dataset.json", json.dumps({**info, "refined": settings}, indent=2) + "\n")
    return total
