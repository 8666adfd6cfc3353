"""`mixreal train mrgan`, `mixreal refine` and refinement on the fly, as a user runs them (tiny schedules)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli import main
from train.datasets import RealDataset, RenderedDataset
from train.loop import refine_synthetic
from train.mrgan import Refiner


def _run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def gan_run(tiny_real, rendered32, tmp_path_factory):
    out = tmp_path_factory.mktemp("mrgan") / "run"
    recipe = out.parent / "recipe.toml"
    recipe.write_text("lr_d = 2e-4\nresidual_blocks = 2\n")  # --blocks below wins over the file
    r = _run("train", "mrgan", "--real", tiny_real, "--synthetic", rendered32, "--stages", "2", "--mapping", "rr-rs",
             "--scale", "quick", "--iterations", "3", "--pretrain", "2,1", "--blocks", "1", "--batch-size", "8",
             "--gan-config", recipe, "--gap-every", "0", "--sample-every", "3", "--no-compile", "--no-identity-skip",
             "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    return out


def test_train_mrgan_writes_every_stage(gan_run):
    cfg = json.loads((gan_run / "mrgan.json").read_text())
    assert cfg["stages_done"] == 2 and cfg["config"]["mapping"] == "rr-rs"
    gan = cfg["config"]["cyclegan"]
    assert gan["lr_d"] == 2e-4 and gan["lr_g"] == 2e-4 and gan["networks"]["residual_blocks"] == 1
    # --no-identity-skip: the appendix's generators (quick's default starts them as the identity); no gap
    # meter, so the last generators are kept
    assert not gan["networks"]["identity_skip"] and gan["networks"]["norm_scale_mean"] == 0.0
    assert gan["pretrain_g"] == 2 and gan["keep"] == "last"
    for k in (1, 2):
        names = {p.name for p in (gan_run / f"stage-{k}").iterdir()}
        assert {"generators.pt", "checkpoint.pt", "metrics.csv", "losses.png", "samples-000003.png"} <= names


def test_refine_a_rendered_folder_keeps_labels_and_is_resumable(gan_run, rendered32, tmp_path):
    out = tmp_path / "refined"
    r = _run("refine", "--run", gan_run, "--input", rendered32, "--direction", "s2r", "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    raw, ref = RenderedDataset(rendered32), RenderedDataset(out)
    assert [e["path"] for e in ref.entries] == [e["path"] for e in raw.entries]
    assert np.array_equal(ref.labels, raw.labels) and ref.class_names == raw.class_names
    assert ref.params(0) == raw.params(0)
    assert ref.entries[0]["refined"]["stage"] == 2 and ref.entries[0]["refined"]["direction"] == "s2r"
    assert not torch.equal(ref[0][0], raw[0][0])
    # a killed job: one image missing; running again writes it back, the same bytes
    victim = out / ref.entries[5]["path"]
    before = victim.read_bytes()
    victim.unlink()
    r = _run("refine", "--run", gan_run, "--input", rendered32, "--direction", "s2r", "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    assert victim.read_bytes() == before
    # other settings into the same folder are refused
    r = _run("refine", "--run", gan_run, "--input", rendered32, "--direction", "s2r", "--stage", "1", "--out", out)
    assert r.exit_code == 1 and "other settings (stage)" in r.output


def test_on_the_fly_refinement_gives_the_pixels_refine_writes(gan_run, rendered32, tmp_path):
    out = tmp_path / "refined"
    assert _run("refine", "--run", gan_run, "--input", rendered32, "--out", out, "--quiet").exit_code == 0
    raw, ref = RenderedDataset(rendered32), RenderedDataset(out)
    idx = list(range(3, 40, 3))
    batch = torch.stack([raw[i][0] for i in idx])
    is_real = torch.zeros(len(idx), dtype=torch.bool)
    is_real[:2] = True  # a mixed batch: its real images stay as they are
    on_the_fly = refine_synthetic(batch, is_real, Refiner.load(gan_run).s2r)
    assert torch.equal(on_the_fly[:2], batch[:2])
    assert torch.equal(on_the_fly[2:], torch.stack([ref[i][0] for i in idx[2:]]))


def test_refine_a_cifar_da_folder_and_train_on_refined_images(gan_run, tiny_real, rendered32, tmp_path):
    out = tmp_path / "real-r2s"
    r = _run("refine", "--run", gan_run, "--input", tiny_real, "--direction", "r2s", "--stage", "1", "--out", out,
             "--quiet")
    assert r.exit_code == 0, r.output
    a, b = RealDataset.from_split(tiny_real, "test"), RealDataset.from_split(out, "test")
    assert torch.equal(a.labels, b.labels) and a.class_names == b.class_names
    assert not torch.equal(a.images, b.images)
    assert json.loads((out / "dataset.json").read_text())["refined"]["direction"] == "r2s"
    # a classifier on real + refined synthetic, tested on real images moved into the refined domain
    run = tmp_path / "clf"
    r = _run("train", "classify", "--real", tiny_real, "--synthetic", rendered32, "--ratio", "1:1", "--epochs", "1",
             "--batch-size", "16", "--scale", "quick", "--workers", "0", "--refiner", gan_run, "--refine-real", gan_run,
             "--out", run, "--quiet")
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "summary.json").read_text())["config"]
    assert cfg["refiner"].endswith("stage 2") and cfg["refine_real"].endswith("real side")


def test_foreign_runs_are_refused_in_one_line(tiny_real, rendered32, tmp_path):
    r = _run("refine", "--run", tiny_real, "--input", rendered32, "--out", tmp_path / "x")
    assert r.exit_code == 1 and "not a MrGAN run" in r.output and len(r.output.strip().splitlines()) == 1
    r = _run("train", "classify", "--real", tiny_real, "--synthetic", rendered32, "--ratio", "1:1", "--refiner",
             tiny_real, "--out", tmp_path / "c", "--quiet")
    assert r.exit_code == 1 and "not a MrGAN run" in r.output


def test_bad_gan_recipes_are_refused_in_one_line(tiny_real, rendered32, tmp_path):
    recipe = tmp_path / "recipe.toml"
    for text, problem in (("lr_dd = 1e-4", "unknown key 'lr_dd' (did you mean 'lr_d'?)"),
                          ("iterations = 2.5", "iterations = 2.5: expected a positive integer"),
                          ("identity_skip = 1", "expected true or false")):
        recipe.write_text(text)
        r = _run("train", "mrgan", "--real", tiny_real, "--synthetic", rendered32, "--gan-config", recipe,
                 "--out", tmp_path / "g", "--quiet")
        assert r.exit_code == 1 and problem in r.output and str(recipe) in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "g").exists()
    recipe.write_text("lr_d = 2e-4")
    r = _run("experiment", "table1", "--gan-config", recipe, "--out", tmp_path / "t")
    assert r.exit_code == 1 and "table1 trains no GAN" in r.output
    r = _run("experiment", "table2", "--no-identity-skip", "--out", tmp_path / "t")
    assert r.exit_code == 1 and "--no-identity-skip: table2 trains no GAN" in r.output


def test_match_photos_refines_a_rendered_folder_with_no_network(tiny_real, rendered32, tmp_path):
    from train.colour_match import PhotoStats

    out = tmp_path / "matched"
    r = _run("refine", "--match-photos", tiny_real, "--input", rendered32, "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    raw, ref = RenderedDataset(rendered32), RenderedDataset(out)
    assert [e["path"] for e in ref.entries] == [e["path"] for e in raw.entries]
    assert np.array_equal(ref.labels, raw.labels) and ref.params(0) == raw.params(0)
    assert ref.entries[0]["refined"]["photo_stats"] == str(tiny_real.resolve())
    # every image is the fitted map of its render, the map kept beside them
    stats = PhotoStats.load(out / "photo-stats.json")
    assert torch.equal(ref[3][0], stats.s2r(raw[3][0][None])[0])
    photos = RealDataset.from_split(tiny_real, "train").images.double()
    rows = lambda x: x.mean(dim=(0, 3))  # noqa: E731
    matched = torch.stack([ref[i][0] for i in range(len(ref))]).double()
    rendered = torch.stack([raw[i][0] for i in range(len(raw))]).double()
    assert (rows(matched) - rows(photos)).abs().mean() < 0.2 * (rows(rendered) - rows(photos)).abs().mean()
    # resumable with the same map; another photo folder in the same --out is refused in one line
    victim = out / ref.entries[2]["path"]
    before = victim.read_bytes()
    victim.unlink()
    assert _run("refine", "--match-photos", tiny_real, "--input", rendered32, "--out", out, "--quiet").exit_code == 0
    assert victim.read_bytes() == before
    r = _run("refine", "--match-photos", rendered32.parent, "--input", rendered32, "--out", out, "--quiet")
    assert r.exit_code != 0 and "other settings" in r.output and "Traceback" not in r.output
    r = _run("refine", "--input", rendered32, "--out", tmp_path / "x", "--quiet")
    assert r.exit_code != 0 and "--match-photos" in r.output
    # on the fly: the kept map as --refiner gives the pixels the matched folder holds, and trains
    idx = [0, 1, 4, 7]
    batch = torch.stack([raw[i][0] for i in idx])
    is_real = torch.tensor([True, False, False, False])
    on_the_fly = refine_synthetic(batch, is_real, PhotoStats.load(out / "photo-stats.json").s2r)
    assert torch.equal(on_the_fly[0], batch[0])
    assert torch.equal(on_the_fly[1:], torch.stack([ref[i][0] for i in idx[1:]]))
    run = tmp_path / "clf"
    r = _run("train", "classify", "--real", tiny_real, "--synthetic", rendered32, "--ratio", "1:1", "--epochs", "1",
             "--batch-size", "16", "--scale", "quick", "--workers", "0", "--refiner", out / "photo-stats.json",
             "--out", run, "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads((run / "summary.json").read_text())["config"]["refiner"] == str(out / "photo-stats.json")
    (tmp_path / "bad.json").write_text("{}")
    r = _run("train", "classify", "--real", tiny_real, "--synthetic", rendered32, "--ratio", "1:1", "--refiner",
             tmp_path / "bad.json", "--out", tmp_path / "c", "--quiet")
    assert r.exit_code == 1 and "bad.json" in r.output and len(r.output.strip().splitlines()) == 1
