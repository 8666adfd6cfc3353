"""The domain-gap meter: KID / FID in a real-trained classifier's features, and `mixreal gap`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli import main
from train import gap as meter
from train.models import build_model


def _net(classes=("a", "b")) -> meter.FeatureNet:
    torch.manual_seed(0)
    return meter.FeatureNet(build_model("resnet20", len(classes)), list(classes), 32, "test")


def _photos(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth, photo-like images: blurred colour fields, two classes that differ in hue."""
    rng = np.random.default_rng(seed)
    base = rng.random((n, 3, 4, 4)) * 0.5
    labels = np.arange(n) % 2
    base[labels == 1, 0] += 0.5
    img = torch.nn.functional.interpolate(torch.from_numpy(base), size=32, mode="bilinear", align_corners=False)
    return (img * 255).clamp(0, 255).to(torch.uint8), torch.from_numpy(labels)


def test_identical_sets_have_no_gap_and_noise_a_large_one():
    net = _net()
    real, labels = _photos(200, 0)
    same_f, _ = net.features_and_logits(real)
    k_same, _, f_same = meter.kid_fid(same_f, same_f.clone())
    other, _ = _photos(200, 1)  # more of the same kind of image
    noise = torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8)
    k_other, _, f_other = meter.kid_fid(same_f, net.features_and_logits(other)[0])
    k_noise, _, f_noise = meter.kid_fid(same_f, net.features_and_logits(noise)[0])
    # unbiased KID of a set with itself is zero up to its random subsets; FID exactly zero
    assert abs(k_same) < 0.02 * k_noise and f_same < 1e-6 * f_noise
    assert k_noise > 10 * abs(k_other) and f_noise > 10 * f_other


def test_measure_reports_per_class_and_accuracy():
    net = _net()
    real, labels = _photos(120, 0)
    syn, syn_labels = _photos(80, 5)
    report, feats = meter.measure(net, real, labels, syn, syn_labels, ["a", "b"])
    assert set(report.per_class) == {"a", "b"} and report.n_synthetic == 80
    assert 0.0 <= report.accuracy <= 1.0 and feats["synthetic"].shape == (80, 64)
    with pytest.raises(ValueError, match="trained on classes"):
        meter.measure(net, real, labels, syn, syn_labels, ["b", "a"])


def test_spearman():
    assert meter.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert meter.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(meter.spearman([1, 1, 1], [1, 2, 3]))


def _real_folder(tmp_path):
    from train.cifar_da import RealSplit, write

    rng = np.random.default_rng(0)
    splits = {}
    for name, n in (("train", 40), ("val", 8), ("test", 8)):
        labels = np.arange(n) % 2
        images = (rng.random((n, 32, 32, 3)) * 255).astype(np.uint8)
        splits[name] = RealSplit(images, labels, ["car", "truck"], np.array(["test"] * n), np.arange(n),
                                 np.array(["x"] * n))
    write(tmp_path / "real", splits, {"variant": "test"})
    return tmp_path / "real"


def test_gap_command_end_to_end(tmp_path, default_models):
    """`mixreal gap` on a stream of the embedded models, with a given feature run; a bad checkpoint is one
    clear line."""
    real = _real_folder(tmp_path)
    run = tmp_path / "features"
    r = CliRunner().invoke(main, ["train", "classify", "--real", str(real), "--ratio", "1:0", "--epochs", "1",
                                  "--workers", "0", "--quiet", "--out", str(run)])
    assert r.exit_code == 0, r.output
    out = tmp_path / "gap"
    r = CliRunner().invoke(main, ["gap", "--real", str(real), "--stream", str(default_models), "--count", "32",
                                  "--features", str(run), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "overall" in r.output and "KID" in r.output
    result = json.loads((out / "gap.json").read_text())
    assert set(result["per_class"]) == {"car", "truck"} and result["n_synthetic"] == 32
    assert (out / "gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    r = CliRunner().invoke(main, ["gap", "--real", str(real), "--stream", str(default_models), "--features", str(bad)])
    assert r.exit_code != 0 and "bad.pt: unreadable checkpoint" in r.output and "Traceback" not in r.output
    # a folder that is not a render is reported before the feature network's first (minutes-long) training
    r = CliRunner().invoke(main, ["gap", "--real", str(real), "--synthetic", str(tmp_path / "gap"), "--quiet"])
    assert r.exit_code == 1 and "no manifest and no shards" in r.output, r.output
    assert "training the feature network" not in r.output and not (real / "gap-features").exists()


def test_coverage_sees_a_set_without_variety_that_kid_scores_well():
    """A synthetic set of the same kind of point as the real one covers it (coverage and recall near 1); one
    that is a few points repeated (one canonical view per model) has high precision but covers little of the
    real class, and a far-away set nothing at all."""
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 16, generator=g)
    alike = meter.manifold_scores(real, torch.randn(400, 16, generator=g))
    assert alike["coverage"] > 0.8 and alike["recall"] > 0.8 and alike["precision"] > 0.8
    few = real[:6].repeat_interleave(50, dim=0) + 0.01 * torch.randn(300, 16, generator=g)
    narrow = meter.manifold_scores(real, few)
    assert narrow["precision"] > 0.9  # every synthetic point looks real...
    assert narrow["coverage"] < 0.1 and narrow["recall"] < 0.1  # ...but stands for a few real ones
    far = meter.manifold_scores(real, torch.randn(400, 16, generator=g) + 20)
    assert far["coverage"] == far["recall"] == far["precision"] == far["density"] == 0.0
    with pytest.raises(ValueError, match="more than k"):
        meter.manifold_scores(real, real[:3])


def test_measure_reports_coverage_per_class_and_overall():
    net = _net()
    real, labels = _photos(120, 0)
    syn, syn_labels = _photos(120, 1)
    report, _ = meter.measure(net, real, labels, syn, syn_labels, ["a", "b"])
    for c in ("a", "b"):
        assert 0.0 <= report.per_class[c]["coverage"] <= 1.0
    assert report.coverage == pytest.approx(np.mean([report.per_class[c]["coverage"] for c in ("a", "b")]))
    assert "coverage" in report.table() and report.to_dict()["meter_version"] == meter.METER_VERSION
