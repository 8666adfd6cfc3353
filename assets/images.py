"""Procedural images made by code: surface textures and backgrounds for the default variations.

Deterministic (fixed seeds), so the embedded default renders the same everywhere.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

N_IMAGES = 24
# the embedded backgrounds' kinds, in the order image i takes them (kind i % len(SCENE_KINDS))
SCENE_KINDS = ("sky over ground", "clouds", "room", "city", "foliage", "blobs")


def _fbm(rng: np.random.Generator, size: int, base: int = 4, octaves: int = 4) -> np.ndarray:
    """Sum of upsampled random grids: smooth noise in [0, 1]."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = base * (2 ** o)
        grid = rng.random((cells, cells)).astype(np.float32)
        layer = np.asarray(Image.fromarray(grid, mode="F").resize((size, size), Image.BICUBIC))
        out += amp * layer
        total += amp
        amp *= 0.5
    out /= total
    return np.clip((out - out.min()) / (np.ptp(out) + 1e-6), 0, 1)


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
    hue = rng.random()
    cols = []
    for i in range(n):
        h = (hue + i * rng.uniform(0.05, 0.4)) % 1.0
        s, v = rng.uniform(0.2, 0.9), rng.uniform(0.25, 1.0)
        cols.append(np.array(Image.new("HSV", (1, 1), (int(h * 255), int(s * 255), int(v * 255)))
                             .convert("RGB")).reshape(3) / 255.0)
    return np.array(cols, np.float32)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]


def _canvas(seed: int, colours: int, size: int):
    """A generator, a palette, pixel coordinates in [0, 1) and a noise field: what every image starts from."""
    rng = np.random.default_rng(seed)
    c = _palette(rng, colours)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return rng, c, y, x, _fbm(rng, size)


def _texture(i: int, size: int) -> np.ndarray:
    rng, c, y, x, n = _canvas(1000 + i, 3, size)
    kind = i % 8
    if kind == 0:  # marble
        t = 0.5 + 0.5 * np.sin((x + y) * rng.uniform(6, 14) + n * rng.uniform(4, 9))
    elif kind == 1:  # wood rings
        r = np.hypot(x - rng.random(), y - rng.random() * 3)
        t = np.abs(np.sin(r * rng.uniform(30, 60) + n * 4))
    elif kind == 2:  # bricks
        rows = int(rng.integers(6, 12))
        yy = y * rows
        xx = x * rows / 2 + 0.5 * (np.floor(yy) % 2)
        mortar = (np.abs(yy - np.round(yy)) < 0.06) | (np.abs(xx - np.round(xx)) < 0.04)
        t = np.where(mortar, 1.0, 0.3 * n)
    elif kind == 3:  # camouflage
        t = np.digitize(n, [0.4, 0.6]) / 2.0
    elif kind == 4:  # plaid
        f = rng.uniform(5, 12)
        t = 0.5 * ((np.sin(x * f * 6.28) > 0.3).astype(np.float32) + (np.sin(y * f * 6.28) > 0.3))
    elif kind == 5:  # speckle
        t = (_fbm(rng, size, base=32, octaves=2) > 0.6).astype(np.float32) * 0.8 + 0.2 * n
    elif kind == 6:  # tiles
        k = int(rng.integers(3, 9))
        t = ((np.floor(x * k) + np.floor(y * k)) % 2) * 0.8 + 0.2 * n
    else:  # fabric weave
        f = rng.uniform(20, 50)
        t = 0.5 + 0.25 * (np.sin(x * f) * np.sin(y * f)) + 0.25 * (n - 0.5)
    rgb = _mix(c[0], c[1], np.clip(t, 0, 1))
    rgb = rgb * (0.8 + 0.2 * n[..., None]) + 0.15 * c[2] * (n[..., None] > 0.8)
    return np.clip(rgb, 0, 1)


def _background(i: int, size: int) -> np.ndarray:
    rng, c, y, x, n = _canvas(2000 + i, 4, size)
    kind = i % len(SCENE_KINDS)
    if kind == 0:  # sky over ground
        horizon = rng.uniform(0.45, 0.8) + 0.05 * (n[0] - 0.5)
        sky = _mix(np.array([0.55, 0.75, 0.95]), np.array([0.9, 0.95, 1.0]), y)
        ground = _mix(c[0] * 0.6, c[1] * 0.8, n)
        rgb = np.where((y > horizon[None, :])[..., None], ground, sky)
    elif kind == 1:  # clouds
        rgb = _mix(np.array([0.35, 0.55, 0.9]), np.array([0.97, 0.97, 0.97]), np.clip(n * 1.6 - 0.4, 0, 1))
    elif kind == 2:  # room: wall and floor
        floor_at = rng.uniform(0.55, 0.8)
        rgb = np.where((y > floor_at)[..., None], _mix(c[0], c[0] * 0.5, n), _mix(c[1], c[1] * 0.8, y))
    elif kind == 3:  # city blocks
        im = Image.fromarray((np.ones((size, size, 3)) * c[2] * 255 * 0.7).astype(np.uint8))
        from PIL import ImageDraw

        d = ImageDraw.Draw(im)
        for _ in range(30):
            w, h = rng.integers(size // 16, size // 4), rng.integers(size // 8, size // 1.5)
            x0 = rng.integers(0, size)
            col = tuple(int(v) for v in (_palette(rng, 1)[0] * 200 + 30))
            d.rectangle([x0, size - h, x0 + w, size], fill=col)
        rgb = np.asarray(im, np.float32) / 255.0 * (0.85 + 0.15 * n[..., None])
    elif kind == 4:  # foliage
        leaves = _fbm(rng, size, base=16, octaves=3)
        rgb = _mix(np.array([0.1, 0.25, 0.08]), np.array([0.45, 0.7, 0.25]), leaves * 0.7 + 0.3 * n)
    else:  # blurred blobs
        im = Image.fromarray((np.ones((size, size, 3)) * c[0] * 255).astype(np.uint8))
        from PIL import ImageDraw

        d = ImageDraw.Draw(im)
        for _ in range(12):
            r = int(rng.integers(size // 10, size // 3))
            cx, cy = rng.integers(0, size, 2)
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(v) for v in _palette(rng, 1)[0] * 255))
        im = im.filter(ImageFilter.GaussianBlur(size / 40))
        rgb = np.asarray(im, np.float32) / 255.0
    return np.clip(rgb, 0, 1)


@lru_cache(maxsize=8)
def default_images(kind: str, size: int = 256) -> np.ndarray:
    """(N_IMAGES, size, size, 4) uint8 sRGB, rows bottom-up (as OpenGL wants them)."""
    make = {"textures": _texture, "backgrounds": _background}.get(kind)
    if make is None:
        raise ValueError(f"unknown image kind {kind!r}: textures or backgrounds")
    out = np.empty((N_IMAGES, size, size, 4), np.uint8)
    for i in range(N_IMAGES):
        rgb = make(i, size)
        out[i, ..., :3] = (rgb[::-1] * 255 + 0.5).astype(np.uint8)
        out[i, ..., 3] = 255
    out.setflags(write=False)
    return out
