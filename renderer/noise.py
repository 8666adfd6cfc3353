"""A tileable 3D fractal value-noise texture, so shaders pay one trilinear fetch instead of
evaluating hash-based noise (24 hashes a pixel) on a CPU rasteriser."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SIDE = 64
PERIOD = 8.0  # noise cells spanned by one texture repeat: shaders divide coordinates by this


@lru_cache(maxsize=1)
def noise_volume(side: int = SIDE, seed: int = 7) -> np.ndarray:
    """(side, side, side) uint8, periodic in every axis, roughly uniform over 0..255."""
    from scipy.ndimage import zoom

    rng = np.random.default_rng(seed)
    out = np.zeros((side, side, side))
    for lattice, weight in ((8, 0.55), (16, 0.3), (32, 0.15)):
        grid = rng.random((lattice, lattice, lattice))
        out += weight * zoom(grid, side / lattice, order=3, mode="grid-wrap")
    # equalise, so thresholds in the shaders cut predictable fractions
    ranks = np.argsort(np.argsort(out.reshape(-1)))
    return (ranks * (256.0 / ranks.size)).astype(np.uint8).reshape(side, side, side)
