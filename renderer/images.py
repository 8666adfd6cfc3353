"""Image sets for the texture and background variations: a user's folder, or the embedded ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def load_image_folder(folder: Path, size: int, on_skip=None, limit: int = 256) -> np.ndarray:
    """(N, size, size, 4) uint8 sRGB: each image centre-cropped to a square and resized.

    Unreadable files are reported and skipped; an empty folder is an error.
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)[:limit]
    out = []
    for p in files:
        try:
            with Image.open(p) as im:
                im = im.convert("RGBA")
                w, h = im.size
                side = min(w, h)
                left, top = (w - side) // 2, (h - side) // 2
                im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
                out.append(np.asarray(im, dtype=np.uint8)[::-1])  # GL rows go bottom-up
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            if on_skip:
                on_skip(f"skipped {p}: unreadable image ({exc})")
    if not out:
        raise FileNotFoundError(f"{folder}: no readable images ({', '.join(IMAGE_EXTENSIONS)})")
    return np.stack(out)
