"""Photo statistics: renders moved onto the photos' colour statistics, row by row, with no network.

The baseline a GAN refiner has to beat. At quick scale the stage-1 CycleGAN mostly learns a regional colour
correction (docs/RESULTS.md, "What stage 1 changes in the renders"): the renders are darker, lower in
contrast and bluer at the bottom than the photos. This does that correction directly: for every image row y
and channel c, an affine map that gives the render set the photo set's mean and standard deviation there,

    out[c, y, x] = (in[c, y, x] - mean_renders[c, y]) / std_renders[c, y] * std_photos[c, y] + mean_photos[c, y]

Rows, not single pixels, so the map is the same across a row (translation along x stays free) while the sky /
ground structure of the photos is kept; it is fitted once on a set of renders and a set of photos of the
same size and stored as JSON (a few hundred numbers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

KIND = "mixreal photo statistics"


def _row_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 3, H, W) -> per channel and row, mean and std over images and columns (3, H), float64."""
    x = images.to(torch.float64)
    return x.mean(dim=(0, 3)), x.std(dim=(0, 3)).clamp_min(1.0)  # a flat row (std 0) is left as it is


@dataclass(frozen=True)
class PhotoStats:
    """The per-row affine map from renders to photos: out = in * gain + offset, gain and offset (3, H)."""

    gain: torch.Tensor
    offset: torch.Tensor

    @classmethod
    def fit(cls, renders: torch.Tensor, photos: torch.Tensor) -> PhotoStats:
        """renders, photos: uint8 (N, 3, H, W) of the same H (their counts may differ)."""
        if renders.shape[1:] != photos.shape[1:]:
            raise ValueError(f"renders {tuple(renders.shape[1:])} and photos {tuple(photos.shape[1:])} differ in size")
        m_s, s_s = _row_stats(renders)
        m_r, s_r = _row_stats(photos)
        gain = s_r / s_s
        return cls(gain, m_r - m_s * gain)

    def s2r(self, images: torch.Tensor, batch: int = 4096) -> torch.Tensor:
        """uint8 (N, 3, H, W) renders -> uint8 images with the photos' row statistics."""
        if images.shape[1:3] != self.gain.shape:
            raise ValueError(f"images of {tuple(images.shape[1:3])} (channels, rows); these statistics are for "
                             f"{tuple(self.gain.shape)}")
        g, b = self.gain[None, :, :, None], self.offset[None, :, :, None]
        out = [(images[i:i + batch].to(torch.float64) * g + b).round_().clamp_(0, 255).to(torch.uint8)
               for i in range(0, len(images), batch)]
        return torch.cat(out) if out else images.clone()

    def to_dict(self) -> dict:
        return {"kind": KIND, "gain": self.gain.tolist(), "offset": self.offset.tolist()}

    def save(self, path: Path) -> None:
        from renderer.export import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: Path) -> PhotoStats:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
            if d.get("kind") != KIND:
                raise ValueError("not a mixreal photo-statistics file")
            gain = torch.tensor(d["gain"], dtype=torch.float64)
            offset = torch.tensor(d["offset"], dtype=torch.float64)
            if gain.ndim != 2 or gain.shape != offset.shape or gain.shape[0] != 3:
                raise ValueError("gain and offset are not two (3, rows) arrays")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{path}: {e}") from None
        return cls(gain, offset)


__all__ = ["PhotoStats"]
