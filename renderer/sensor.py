"""Camera effects on the final image: white balance, Gaussian softness, sensor noise and JPEG.

White balance, blur and noise run on the GPU, in the two passes of shaders/camera.frag that also apply the
anti-aliasing filter (the drawn atlas is read back at output size, 1/supersample^2 of the pixels); this
module packs their per-sample values. JPEG coding stays on the CPU (libjpeg through Pillow) for the images
that get it. Every value comes from the sample's own parameters (sampling._sensor), so an image stays a pure
function of (seed, model, index): the grain is an integer hash of the sample's seed and pixel, and JPEG
coding is deterministic for the same input and quality.
"""

from __future__ import annotations

import io

import numpy as np

from .sampling import ParamTable

CAMERA_FLOATS = 12  # per sample: cell, blur, noise, 0 | white balance rgb, 0 | seed in three 16-bit parts, 0


def camera_rows(t: ParamTable, cells: np.ndarray) -> np.ndarray:
    """(B, CAMERA_FLOATS) float32 instance rows of the camera pass; effects absent from `t` are off."""
    b = len(cells)
    rows = np.zeros((b, CAMERA_FLOATS), np.float32)
    rows[:, 0] = cells
    rows[:, 4:7] = 1.0
    if "sensor_wb" in t:
        rows[:, 1] = t["sensor_blur"]
        rows[:, 2] = t["sensor_noise"]
        rows[:, 4:7] = t["sensor_wb"]
        seed = t["sensor_seed"].astype(np.int64)
        for j in range(3):  # integers below 2^16: exact in a float32, and rebuilt exactly by the shader
            rows[:, 8 + j] = (seed >> (16 * j)) & 0xFFFF
    return rows


def apply_jpeg(images: np.ndarray, t: ParamTable) -> np.ndarray:
    """(N, H, W, 3) uint8 -> the same images, each with `sensor_jpeg` > 0 through JPEG at that quality."""
    if "sensor_jpeg" not in t or not (t["sensor_jpeg"] > 0).any():
        return images
    import torch
    from torchvision.io import decode_jpeg, encode_jpeg

    # libjpeg-turbo through torchvision: the same bytes as Pillow's encoder at the same quality (4:2:0, the
    # same tables; checked on renders in tests/test_realism.py) at about 60 % of its per-image cost, which
    # is mostly Pillow's Python wrapping at 32 px
    out = images.copy()
    chw = torch.from_numpy(out).permute(0, 3, 1, 2)
    for i in np.nonzero(t["sensor_jpeg"] > 0)[0]:
        coded = encode_jpeg(chw[i].contiguous(), quality=int(t["sensor_jpeg"][i]))
        chw[i] = decode_jpeg(coded)
    return out


def jpeg_pillow(img: np.ndarray, quality: int) -> np.ndarray:
    """One (H, W, 3) uint8 image through Pillow's libjpeg at `quality` and back: the reference that
    apply_jpeg must match byte for byte."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    h, w = img.shape[:2]
    return np.asarray(Image.frombytes("RGB", (w, h), buf.getvalue(), "jpeg", "RGB", ""))
