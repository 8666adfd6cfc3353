"""Image sets for the texture and background variations: a user's folder, or the embedded ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MIN_SIDE = 8  # px: smaller images (icons, thumbnails of nothing) are skipped
MEMORY_BUDGET = 256 * 2**20  # bytes of RGBA texels for one folder, before mipmaps


def image_files(folder: Path, limit: int | None = None) -> list[Path]:
    """Every image file under `folder`, sorted; with `limit`, that many spread evenly over the whole sorted
    list (every sub-folder represented), never just the first ones."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if limit is not None and len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return files


def stored_side(n_images: int, size: int, native: int) -> int:
    """Side at which to keep each image: at most `size`, no more than the images' own resolution (a folder
    of 32 px photos is not blown up to 256), and within MEMORY_BUDGET for the whole folder."""
    side = 8
    while side * 2 <= min(size, max(native, 8)) and n_images * (side * 2) ** 2 * 4 <= MEMORY_BUDGET:
        side *= 2
    return side


def load_image_folder(folder: Path, size: int, on_skip=None, limit: int | None = None) -> np.ndarray:
    """(N, side, side, 4) uint8 sRGB, rows bottom-up: every image of the folder (or `limit` spread evenly
    over it), centre-cropped to a square, resized to a power-of-two side of at most `size` (see stored_side).

    Unreadable and tiny files are reported (one line each, naming the file) and skipped; a folder with no
    usable image is an error."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found")
    files = image_files(folder, limit)
    if not files:
        raise FileNotFoundError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    side = None
    out = []
    for p in files:
        try:
            with Image.open(p) as im:
                w, h = im.size
                if min(w, h) < MIN_SIDE:
                    if on_skip:
                        on_skip(f"skipped {p}: image too small ({w}x{h} px, at least {MIN_SIDE} needed)")
                    continue
                if side is None:  # the first usable image sets the resolution the folder is kept at
                    side = stored_side(len(files), size, min(w, h))
                im.draft("RGB", (side, side))  # JPEG: decode at a reduced scale, much faster for big photos
                im = im.convert("RGBA")
                w, h = im.size
                s = min(w, h)
                left, top = (w - s) // 2, (h - s) // 2
                im = im.crop((left, top, left + s, top + s)).resize((side, side), Image.BILINEAR)
                out.append(np.asarray(im, dtype=np.uint8)[::-1])  # GL rows go bottom-up
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            if on_skip:
                on_skip(f"skipped {p}: unreadable image ({exc})")
    if not out:
        raise FileNotFoundError(f"{folder}: no readable images ({', '.join(IMAGE_EXTENSIONS)})")
    return np.stack(out)
