"""`mixreal refine`: a dataset passed through a trained MrGAN run, written in the layout it came in.

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

    from PIL import Image

    from renderer.export import MANIFEST, SETTINGS, atomic_write_text, read_manifest, save_png

    entries = read_manifest(src / MANIFEST)
    if not entries:
        raise ValueError(f"{src / MANIFEST}: empty manifest")
    todo = [e for e in entries if not (out / e["path"]).is_file()]
    for lo in _chunks(len(todo), progress, str(src)):
        part = todo[lo:lo + CHUNK]
        images = []
        for e in part:
            path = src / e["path"]
            try:
                with Image.open(path) as im:
                    images.append(np.asarray(im.convert("RGB")))
            except OSError as exc:
                raise ValueError(f"{path}: unreadable image ({exc})") from None
        refined = fn(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous())
        for e, image in zip(part, refined.permute(0, 2, 3, 1).numpy(), strict=True):
            (out / e["path"]).parent.mkdir(parents=True, exist_ok=True)
            save_png(out / e["path"], np.ascontiguousarray(image))
    tag = {"run": settings["run"], "stage": settings["stage"], "direction": settings["direction"]}
    atomic_write_text(out / MANIFEST, "".join(json.dumps({**e, "refined": tag}) + "\n" for e in entries))
    if (src / SETTINGS).is_file() and not (out / SETTINGS).is_file():
        shutil.copyfile(src / SETTINGS, out / SETTINGS)
    return len(entries)


def _refine_cifar_da(fn, src: Path, out: Path, settings: dict, progress: bool) -> int:
    from renderer.export import atomic_write_text

    from .cifar_da import _atomic_savez

    total = 0
    for split in ("train", "val", "test"):
        path = src / f"{split}.npz"
        if not path.is_file():
            continue
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
        if "images" not in arrays:
            raise ValueError(f"{path}: not a CIFAR-DA split (no images)")
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
