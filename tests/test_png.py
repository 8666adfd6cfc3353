"""renderer/png.py: the dataset writer's PNGs decode to exactly the pixels given, in Pillow and in
torchvision's libpng reader, are the same bytes every time, and are about as small as Pillow's."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import decode_png

from renderer import RenderConfig, Renderer
from renderer.png import encode_png


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (32, 32, 3), (17, 3, 3), (9, 12, 4), (6, 6, 1)])
def test_every_reader_gets_the_pixels_back(shape):
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(image)
    assert data == encode_png(image.copy())  # a pure function of the pixels
    flat = image.reshape(image.shape[:2]) if image.ndim == 3 and image.shape[2] == 1 else image
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), flat)
    chw = decode_png(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    assert np.array_equal(chw.permute(1, 2, 0).numpy().reshape(image.shape), image)


def test_renders_come_out_about_as_small_as_pillows(shared_library, gl):
    r = Renderer(shared_library, RenderConfig(size=64, seed=5), ctx=gl)
    images = r.render([r.spec_at(i) for i in range(64)])
    ours = pillows = 0
    for im in images:
        data = encode_png(im)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), im)
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="PNG", compress_level=1)  # what mixreal wrote before
        ours, pillows = ours + len(data), pillows + len(buf.getvalue())
    assert ours < 1.1 * pillows


def test_what_is_not_an_image_is_refused():
    for bad in (np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4), np.uint8),
                np.zeros(4, np.uint8)):
        with pytest.raises(ValueError, match="PNG needs"):
            encode_png(bad)
