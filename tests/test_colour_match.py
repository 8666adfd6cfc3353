"""Photo statistics (train/colour_match.py): renders mapped onto the photos' per-row colour statistics."""

from __future__ import annotations

import pytest
import torch

from train.colour_match import PhotoStats


def _renders_and_photos(tiny_real, default_models):
    from renderer import RenderConfig
    from train.datasets import RealDataset, RenderStream

    photos = RealDataset.from_split(tiny_real, "train")
    stream = RenderStream(default_models, RenderConfig(size=32, seed=3), class_names=photos.class_names, length=256,
                          block=128)
    renders = torch.cat([x for x, _ in stream])
    return renders, photos.images


def test_mapped_renders_take_the_photos_row_statistics(tiny_real, default_models, tmp_path):
    renders, photos = _renders_and_photos(tiny_real, default_models)
    stats = PhotoStats.fit(renders, photos)
    out = stats.s2r(renders)
    assert out.dtype == torch.uint8 and out.shape == renders.shape
    mean = lambda x: x.double().mean(dim=(0, 3))  # noqa: E731
    std = lambda x: x.double().std(dim=(0, 3))  # noqa: E731
    before = (mean(renders) - mean(photos)).abs().mean()
    assert before > 3  # renders and photos do differ row by row
    # after: the photos' mean and spread in every row and channel, up to rounding and clipping at 0 / 255
    assert (mean(out) - mean(photos)).abs().mean() < 0.1 * before
    assert (std(out) / std(photos) - 1).abs().median() < 0.05
    assert torch.equal(stats.s2r(renders[:7]), out[:7])  # image by image: batching changes nothing
    stats.save(tmp_path / "stats.json")
    assert torch.equal(PhotoStats.load(tmp_path / "stats.json").s2r(renders), out)


def test_bad_input_is_refused_in_one_line(tmp_path):
    a = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="differ in size"):
        PhotoStats.fit(a, torch.zeros(4, 3, 16, 16, dtype=torch.uint8))
    stats = PhotoStats.fit(a, a)
    with pytest.raises(ValueError, match="these statistics are for"):
        stats.s2r(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    for text in ("{not json", '{"kind": "something else"}', '{"kind": "mixreal photo statistics", "gain": [1]}'):
        (tmp_path / "s.json").write_text(text)
        with pytest.raises(ValueError, match=str(tmp_path / "s.json")) as e:
            PhotoStats.load(tmp_path / "s.json")
        assert "\n" not in str(e.value)
