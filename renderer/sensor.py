"""Camera effects on the final image: white balance, Gaussian softness, sensor noise and JPEG.

Applied on the CPU to the anti-aliased uint8 images, each image from its own parameters (sampling._sensor),
so an image stays a pure function of (seed, model, index): the noise field comes from a generator seeded by
the sample's hash, and JPEG coding (libjpeg through Pillow) is deterministic for the same input and quality.
"""

from __future__ import annotations

import io

import numpy as np

from .sampling import ParamTable


def apply_sensor(images: np.ndarray, t: ParamTable) -> np.ndarray:
    """(N, H, W, 3) uint8 -> the same images through each one's camera; untouched where every effect is off."""
    if "sensor_wb" not in t:
        return images
    wb, blur, noise, jpeg = t["sensor_wb"], t["sensor_blur"], t["sensor_noise"], t["sensor_jpeg"]
    active = (np.abs(wb - 1.0).max(axis=1) > 0) | (blur > 0) | (noise > 0) | (jpeg > 0)
    if not active.any():
        return images
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    out = images.copy()
    idx = np.nonzero(active)[0]
    # white balance for every active image at once, uint8 times float32 straight into float32: the same
    # products as converting first, without the converted copy
    x_all = np.multiply(images[idx], wb[idx].astype(np.float32)[:, None, None, :], dtype=np.float32)
    for j, i in enumerate(idx):
        x = x_all[j]
        if blur[i] > 0.05:
            x = gaussian_filter(x, sigma=(blur[i], blur[i], 0.0), mode="nearest", truncate=3.0)
        if noise[i] > 0:
            rng = np.random.default_rng(int(t["sensor_seed"][i]))
            x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(255.0 * noise[i])
        x_all[j] = x
    coded = np.clip(x_all + 0.5, 0, 255).astype(np.uint8)
    for j, i in enumerate(idx):
        if jpeg[i] > 0:
            coded[j] = _jpeg(coded[j], int(jpeg[i]), Image)
    out[idx] = coded
    return out


def _jpeg(img: np.ndarray, quality: int, Image) -> np.ndarray:
    """Through libjpeg (Pillow) at `quality` and back; decoded straight from the stream (frombytes), which
    skips the file-format parsing of Image.open and gives the same pixels."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    h, w = img.shape[:2]
    return np.asarray(Image.frombytes("RGB", (w, h), buf.getvalue(), "jpeg", "RGB", ""))
