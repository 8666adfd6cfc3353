"""Rendered datasets on disk, the on-the-fly RenderStream, and exact-ratio mixed minibatches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cli import main
from renderer import ModelLibrary, RenderConfig, VariationConfig
from renderer.indexing import SampleIndex
from train.datasets import RealDataset, RenderedDataset, RenderStream
from train.mixing import MixedBatches, Ratio, stream_loader

SIZE = 32


@pytest.fixture(scope="module")
def rendered(default_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("rendered")
    r = CliRunner().invoke(main, ["render", "--models", str(default_models), "--per-model", "3", "--size",
                                  str(SIZE), "--seed", "11", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    return out


def test_rendered_dataset_reads_images_labels_and_params(rendered):
    ds = RenderedDataset(rendered, class_names=["truck", "Automobile", "bird"])
    assert ds.class_names == ["truck", "car", "bird"] and ds.missing_classes == ["bird"]
    assert len(ds) == 2 * 3 * 3  # car and truck: 3 models x 3 images each
    for i in range(len(ds)):
        image, label = ds[i]
        entry = ds.entries[i]
        assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.uint8
        assert ds.class_names[label] == entry["class"]
        png = np.asarray(Image.open(rendered / entry["path"]).convert("RGB"))
        np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), png)
        assert ds.params(i)["camera"]["fov"] > 0


def test_written_files_get_the_permissions_a_plain_write_would(rendered, tmp_path):
    """Atomic writes go through a private temporary file: renamed into place as it was, every image, manifest
    and checkpoint would be unreadable to anyone else on shared storage (mode 0600 whatever the umask)."""
    import stat

    from train.loop import save_checkpoint

    plain = tmp_path / "plain"
    plain.write_bytes(b"")  # what open() gives under this process's umask
    expected = stat.S_IMODE(plain.stat().st_mode)
    if expected == 0o600:
        pytest.skip("umask 077: private is what a plain write gives too, so nothing here could differ")
    written = [p for p in rendered.rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in written) and any(p.name == "manifest.jsonl" for p in written)
    save_checkpoint(tmp_path / "ckpt.pt", {"step": 1})
    for path in [*written, tmp_path / "ckpt.pt"]:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def _stream(default_models, **kw):
    cfg = RenderConfig(size=SIZE, seed=11, batch_size=8, variations=VariationConfig.parse("all"))
    return RenderStream(default_models, cfg, with_index=True, **kw)


def test_stream_matches_mixreal_render_with_any_number_of_workers(default_models, rendered):
    library = ModelLibrary.load(default_models)
    index = SampleIndex([m.label for m in library.models])
    pngs = {(e["model"], e["index"]): rendered / e["path"] for e in RenderedDataset(rendered).entries}
    n = len(pngs)  # 3 images of each of the 27 models, which are the first 81 indices (3 models per class)
    files = {}
    for i in range(n):
        spec = index.spec_at(i)
        files[i] = np.asarray(Image.open(pngs[(library.models[spec.model].key, spec.index)]).convert("RGB"))
    single = {int(i): x for x, _, i in _stream(default_models, length=n)}
    assert sorted(single) == list(range(n))
    for i, x in single.items():
        np.testing.assert_array_equal(x.permute(1, 2, 0).numpy(), files[i])
    seen = []
    for x, _y, i in stream_loader(_stream(default_models, length=n), batch_size=None, workers=2):
        seen.append(int(i))
        np.testing.assert_array_equal(x.numpy(), single[int(i)].numpy())
    assert sorted(seen) == list(range(n))  # every index once: none twice, none skipped


def test_stream_labels_follow_class_names(default_models):
    s = _stream(default_models, length=12, class_names=["truck", "automobile"])
    assert s.n_models == 6 and s.class_names == ["truck", "car"]  # only those classes' models are used
    got = [(y, i) for _, y, i in s]
    assert [i for _, i in got] == list(range(12))
    assert [y for y, _ in got] == [1, 0] * 6 and s.missing_classes == []  # classes in turn: car, truck
    with pytest.raises(ValueError, match="no models of the classes"):
        _stream(default_models, length=4, class_names=["bird"])


def _real(n_per_class=30, classes=3):
    labels = np.repeat(np.arange(classes), n_per_class)
    images = np.zeros((len(labels), SIZE, SIZE, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(len(labels)) % 256  # a fingerprint per image
    images[:, 0, 0, 1] = np.arange(len(labels)) // 256
    return RealDataset(images, labels, ["a", "b", "c"])


class _Synthetic(torch.utils.data.Dataset):
    def __len__(self):
        return 50

    def __getitem__(self, i):
        return torch.full((3, SIZE, SIZE), i, dtype=torch.uint8), i % 3


@pytest.mark.parametrize("ratio, batch, n_real", [("1:7", 128, 16), ("1:1", 16, 8), ("1:15", 32, 2), ("1:3", 8, 2)])
def test_every_batch_has_the_exact_ratio_and_each_real_image_once(ratio, batch, n_real):
    real = _real()
    mb = MixedBatches(real, _Synthetic(), ratio, batch_size=batch, seed=1)
    for _epoch in range(2):
        fingerprints = []
        for images, labels, is_real in mb:
            r = int(is_real.sum())
            if len(fingerprints) + r < len(real):
                assert r == n_real and len(labels) == batch
            else:  # the last, partial batch keeps the ratio
                a, s = Ratio.parse(ratio).real, Ratio.parse(ratio).synthetic
                assert (len(labels) - r) * a == r * s
            fp = images[is_real][:, 0, 0, 0].int() + 256 * images[is_real][:, 1, 0, 0].int()
            fingerprints += fp.tolist()
        assert sorted(fingerprints) == list(range(len(real)))


def test_epochs_reshuffle_and_last_batch_drop():
    real = _real()
    mb = MixedBatches(real, _Synthetic(), "1:1", batch_size=16, seed=3)
    first = [b[1][b[2]].tolist() for b in mb]
    second = [b[1][b[2]].tolist() for b in mb]
    assert first != second
    dropped = MixedBatches(real, _Synthetic(), "1:1", batch_size=16, last="drop")
    assert len(dropped) == 90 // 8 and all(len(b[1]) == 16 for b in dropped)


def test_real_only_and_synthetic_only_are_ratios_of_the_same_loader():
    real = _real()
    only_real = list(MixedBatches(real, None, "1:0", batch_size=16))
    assert all(b[2].all() for b in only_real) and sum(len(b[1]) for b in only_real) == len(real)
    only_syn = list(MixedBatches(real, _Synthetic(), "0:1", batch_size=16))
    assert all(not b[2].any() for b in only_syn) and sum(len(b[1]) for b in only_syn) >= len(real)


@pytest.mark.parametrize("text, message", [("1-7", "REAL:SYNTHETIC"), ("a:b", "whole numbers"), ("0:0", "not both 0"),
                                           ("-1:3", ">= 0")])
def test_bad_ratios_are_rejected(text, message):
    with pytest.raises(ValueError, match=message):
        Ratio.parse(text)


def test_batch_must_split_exactly():
    with pytest.raises(ValueError, match="multiple of 8"):
        MixedBatches(_real(), _Synthetic(), "1:7", batch_size=100)


def test_mixing_with_a_render_stream(default_models):
    stream = RenderStream(default_models, RenderConfig(size=SIZE, batch_size=32), class_names=["airplane", "car",
                                                                                                "horse"])
    real = _real()
    real.class_names = ["airplane", "car", "horse"]
    mb = MixedBatches(real, stream, "1:3", batch_size=32, epoch_batches=2)
    batches = list(mb)
    assert len(batches) == 2
    for images, labels, is_real in batches:
        assert images.shape == (32, 3, SIZE, SIZE) and int(is_real.sum()) == 8
        assert set(labels[~is_real].tolist()) <= {0, 1, 2}


def _epochs(mb, n):
    return [[(x.clone(), y.clone(), r.clone()) for x, y, r in mb] for _ in range(n)]


def test_a_resumed_epoch_sees_exactly_the_same_batches(default_models):
    real = _real(n_per_class=10)
    real.class_names = ["airplane", "car", "horse"]
    sources = {
        "disk": lambda: _Synthetic(),
        "stream": lambda: RenderStream(default_models, RenderConfig(size=SIZE, batch_size=64),
                                       class_names=["airplane", "car", "horse"]),
    }
    for name, make in sources.items():
        straight = _epochs(MixedBatches(real, make(), "1:3", batch_size=16, seed=5), 3)
        resumed = _epochs(MixedBatches(real, make(), "1:3", batch_size=16, seed=5, start_epoch=2), 1)
        assert len(straight[2]) == len(resumed[0]) == 8, name  # 30 real / 4 per batch, last one short
        for (xa, ya, ra), (xb, yb, rb) in zip(straight[2], resumed[0], strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ra, rb), name
        # and epochs differ from each other
        assert not torch.equal(straight[0][0][0], straight[1][0][0]), name
