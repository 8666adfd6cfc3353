"""The classifier trainer: learns, resumes exactly, reports atomically, refuses bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli import main
from tests.conftest import REPO
from train.cifar_da import RealSplit, write
from train.config import preset
from train.datasets import RealDataset
from train.loop import choose_ratio, train_classifier
from train.report import read_metrics, write_summary


def test_a_tiny_run_overfits_a_small_batch(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    data = RealDataset(images, rng.integers(0, 4, 16), ["a", "b", "c", "d"])
    cfg = preset("resnet20", "quick", real_only=True, epochs=40, batch_size=16, lr=0.05, workers=0)
    summary = train_classifier(cfg, data, data, data, None, tmp_path / "run", data.class_names, progress=False,
                               log=lambda m: None)
    assert summary["best_val_acc"] == 1.0  # it memorised the 16 images
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 41 and rows[0].startswith("epoch,lr,train_loss")


def _train_args(real, syn, out, epochs=4):
    return [sys.executable, "-m", "cli", "train", "classify", "--real", str(real), "--synthetic", str(syn),
            "--ratio", "1:1", "--batch-size", "32", "--epochs", str(epochs), "--scale", "quick", "--augment",
            "--workers", "0", "--quiet", "--out", str(out)]


def test_killed_and_resumed_run_ends_with_the_same_weights(tiny_real, rendered32, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_train_args(tiny_real, rendered32, straight), check=True, env=env, cwd=REPO,
                   capture_output=True)
    proc = subprocess.Popen(_train_args(tiny_real, rendered32, killed), env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = killed / "metrics.csv"
    deadline = time.time() + 180
    while time.time() < deadline and (not metrics.is_file() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(metrics.read_text().splitlines()) - 1
    assert 2 <= done < 4, "the kill should land mid-run"
    out = subprocess.run(_train_args(tiny_real, rendered32, killed), check=True, env=env, cwd=REPO,
                         capture_output=True, text=True)
    assert f"resuming {killed} after epoch" in out.stdout
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(killed / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    strip = [",".join(line.split(",")[:6]) for line in (straight / "metrics.csv").read_text().splitlines()]
    assert strip == [",".join(line.split(",")[:6]) for line in (killed / "metrics.csv").read_text().splitlines()]
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["epochs"] == 4 and 0.0 <= summary["test_acc_at_best_val"] <= 1.0
    assert summary["config"]["ratio"] == "1:1" and summary["config"]["augment"] is True
    assert (killed / "accuracy.png").is_file() and any((killed / "tensorboard").iterdir())


def test_summary_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_summary(path, {"test_acc_at_best_val": 0.5})

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_summary(path, {"test_acc_at_best_val": 0.9})
    assert json.loads(path.read_text()) == {"test_acc_at_best_val": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


@pytest.mark.parametrize("ratio, extra, message", [
    ("1-7", [], "expected REAL:SYNTHETIC"),
    ("one:seven", [], "whole numbers"),
    ("0:0", [], "not both 0"),
    ("1:7", ["--batch-size", "100"], "multiple of 8"),
])
def test_bad_ratio_strings_are_rejected(tiny_real, rendered32, tmp_path, ratio, extra, message):
    r = CliRunner().invoke(main, ["train", "classify", "--real", str(tiny_real), "--synthetic", str(rendered32),
                                  "--ratio", ratio, *extra, "--out", str(tmp_path / "r")])
    assert r.exit_code == 1 and message in r.output and len(r.output.strip().splitlines()) == 1


def _real_folder(path, classes):
    n = len(classes) * 4
    split = RealSplit(np.zeros((n, 32, 32, 3), np.uint8), np.repeat(np.arange(len(classes)), 4), classes,
                      np.full(n, "x"), np.arange(n), np.full(n, "x"))
    write(path, {"train": split, "val": split, "test": split}, {})
    return path


def test_classes_are_matched_by_name(rendered32, tmp_path):
    partial = _real_folder(tmp_path / "partial", ["aeroplane", "bird"])
    r = CliRunner().invoke(main, ["train", "classify", "--real", str(partial), "--synthetic", str(rendered32),
                                  "--ratio", "1:1", "--batch-size", "8", "--epochs", "1", "--workers", "0",
                                  "--quiet", "--out", str(tmp_path / "r1")])
    assert r.exit_code == 0, r.output
    assert "no synthetic images for bird" in r.output
    none = _real_folder(tmp_path / "none", ["bird", "cat"])
    r = CliRunner().invoke(main, ["train", "classify", "--real", str(none), "--synthetic", str(rendered32),
                                  "--out", str(tmp_path / "r2")])
    assert r.exit_code == 1 and "no synthetic image of any real class" in r.output


def test_unbalanced_synthetic_classes_are_warned_about(rendered32, tmp_path):
    real = _real_folder(tmp_path / "real", ["car", "truck"])
    lines = (rendered32 / "manifest.jsonl").read_text().splitlines()
    trucks = [x for x in lines if json.loads(x)["class"] == "truck"]
    skewed = tmp_path / "skewed"
    shutil.copytree(rendered32, skewed)
    (skewed / "manifest.jsonl").write_text("\n".join([x for x in lines if x not in trucks] + trucks[:5]) + "\n")

    def train(syn, out):
        r = CliRunner().invoke(main, ["train", "classify", "--real", str(real), "--synthetic", str(syn), "--ratio",
                                      "1:1", "--batch-size", "8", "--epochs", "1", "--workers", "0", "--quiet",
                                      "--out", str(tmp_path / out)])
        assert r.exit_code == 0, r.output
        return r.output

    assert "classes are unbalanced" not in train(rendered32, "balanced")
    assert "synthetic classes are unbalanced (car 60, truck 5)" in train(skewed, "skewed")


def test_ratio_auto_picks_by_validation(tiny_real, rendered32, tmp_path):
    out = tmp_path / "auto"
    r = CliRunner().invoke(main, ["train", "classify", "--real", str(tiny_real), "--synthetic", str(rendered32),
                                  "--ratio", "auto", "--batch-size", "32", "--epochs", "1", "--workers", "0",
                                  "--quiet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["by_ratio"]) == {"1:1", "1:3", "1:7", "1:15"}
    by = summary["by_ratio"]
    best = max(by, key=lambda k: (by[k]["best_val_acc"], -by[k]["best_val_loss"]))
    assert summary["chosen_ratio"] == best and f"chose {best}" in r.output
    for k in by:  # the loss that breaks ties is the one the best epoch measured
        rows = read_metrics(out / f"ratio-{k.replace(':', '-')}" / "metrics.csv")
        at_best = max(rows, key=lambda row: row["val_acc"])  # the first best epoch, as the loop keeps it
        assert by[k]["best_val_loss"] == pytest.approx(at_best["val_loss"], rel=1e-5) and at_best["val_loss"] > 0


def test_choose_ratio_breaks_ties_by_validation_loss():
    """A 200-image validation split moves in 0.5 % steps, so two ratios often tie on accuracy."""
    tie = {"1:1": {"best_val_acc": 0.795, "best_val_loss": 0.61}, "1:7": {"best_val_acc": 0.795, "best_val_loss": 0.55}}
    assert choose_ratio(tie) == "1:7"
    assert choose_ratio({**tie, "1:3": {"best_val_acc": 0.8, "best_val_loss": 0.9}}) == "1:3"  # accuracy first
    old = {"1:1": {"best_val_acc": 0.795}, "1:7": {"best_val_acc": 0.795}}  # recorded before the loss was kept
    assert choose_ratio(old) == "1:1"


def test_synthetic_only_stream_takes_render_options_and_the_mixed_budget(default_models, tmp_path):
    """--stream with --backgrounds: a synthetic-only epoch has as many batches as a 1:15 one (8 real images
    -> 2 real per batch of 32 -> 4 batches, where the real set's own length would give 1), and the run reports
    whether it fitted."""
    from PIL import Image

    real = _real_folder(tmp_path / "real", ["car", "truck"])
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16), (80 * i, 200, 40)).save(photos / f"{i}.png")
    out = tmp_path / "syn-only"
    r = CliRunner().invoke(main, ["train", "classify", "--real", str(real), "--stream", str(default_models),
                                  "--backgrounds", str(photos), "--ratio", "0:1", "--batch-size", "32",
                                  "--epochs", "1", "--workers", "0", "--quiet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    metrics = (out / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 2
    assert summary["config"]["synthetic_budget"] == "1:15"
    assert isinstance(summary["fits_training_images"], bool) and 0 <= summary["final_train_acc"] <= 1
    assert summary["test_at_best_val"]["n"] == 8 and set(summary["test_at_best_val"]["per_class"]) == {"car", "truck"}
    from train.config import epoch_batches, preset

    cfg = preset("resnet20", "quick", ratio="0:1", batch_size=32)
    assert epoch_batches(cfg, 8) == 4 and epoch_batches(replace(cfg, ratio="1:0"), 8) == 1
    assert float(metrics[1].split(",")[-1]) > 0  # images/s of an epoch that ran
    # the run records what it rendered, and a resume with other render settings is refused, not mixed in
    assert summary["synthetic"]["kind"] == "stream" and summary["synthetic"]["size"] == 32
    assert Path(summary["synthetic"]["variations"]["background"]["image_dir"]).resolve() == photos.resolve()
    again = CliRunner().invoke(main, ["train", "classify", "--real", str(real), "--stream", str(default_models),
                                      "--ratio", "0:1", "--batch-size", "32", "--epochs", "2", "--workers", "0",
                                      "--quiet", "--out", str(out)])
    assert again.exit_code == 1 and "trained on other synthetic images (variations)" in again.output
    assert "Traceback" not in again.output and len((out / "metrics.csv").read_text().splitlines()) == 2
    # a run recorded before a render setting existed (here: no per-class palettes) drew with its default:
    # the same settings, so it resumes
    import torch

    state = torch.load(out / "last.pt", weights_only=True)
    del state["synthetic"]["variations"]["texture"]["paint_by_class"]
    torch.save(state, out / "last.pt")
    resumed = CliRunner().invoke(main, ["train", "classify", "--real", str(real), "--stream", str(default_models),
                                        "--backgrounds", str(photos), "--ratio", "0:1", "--batch-size", "32",
                                        "--epochs", "2", "--workers", "0", "--quiet", "--out", str(out)])
    assert resumed.exit_code == 0, resumed.output
    assert len((out / "metrics.csv").read_text().splitlines()) == 3


def test_unreadable_synthetic_images_are_reported_once_and_skipped(tiny_real, rendered32, tmp_path):
    import shutil

    syn = tmp_path / "syn"
    shutil.copytree(rendered32, syn)
    pngs = sorted(syn.rglob("*.png"))
    broken = pngs[::3]
    for p in broken:  # truncated mid-file, as a killed copy leaves it
        p.write_bytes(p.read_bytes()[:40])
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "classify", "--real", str(tiny_real), "--synthetic", str(syn), "--ratio",
                                  "1:3", "--epochs", "2", "--batch-size", "32", "--scale", "quick", "--workers", "0",
                                  "--quiet", "--out", str(run)])
    assert r.exit_code == 0, r.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["unreadable_synthetic_images"] > 0
    reports = [line for line in r.output.splitlines() if "unreadable image" in line]
    assert reports and len(reports) == len(set(reports))  # each file named once
    assert all(any(str(p) in line for p in broken) for line in reports)


def test_init_starts_from_another_runs_weights(tmp_path):
    """--init: the run starts from the given run's best.pt (at lr 0 its weights stay exactly those); a run of
    other classes or a file that is no checkpoint is refused in one line."""
    import torch

    real = _real_folder(tmp_path / "real", ["car", "truck"])
    base = ["train", "classify", "--real", str(real), "--ratio", "1:0", "--batch-size", "8", "--epochs", "1",
            "--scale", "quick", "--workers", "0", "--quiet"]
    first = CliRunner().invoke(main, [*base, "--seed", "1", "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    tuned = CliRunner().invoke(main, [*base, "--lr", "0", "--init", str(tmp_path / "a"), "--out", str(tmp_path / "b")])
    assert tuned.exit_code == 0, tuned.output
    a = torch.load(tmp_path / "a" / "best.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "best.pt", weights_only=True)
    assert b["config"]["init"] == str((tmp_path / "a" / "best.pt").resolve())
    weights = [k for k in a["model"] if k.endswith("weight")]
    assert weights and all(torch.equal(a["model"][k], b["model"][k]) for k in weights)
    fresh = CliRunner().invoke(main, [*base, "--lr", "0", "--out", str(tmp_path / "c")])
    c = torch.load(tmp_path / "c" / "best.pt", weights_only=True)
    assert not all(torch.equal(a["model"][k], c["model"][k]) for k in weights) and fresh.exit_code == 0

    other = _real_folder(tmp_path / "other", ["horse", "truck"])
    bad = CliRunner().invoke(main, [*base, "--real", str(other), "--init", str(tmp_path / "a"),
                                    "--out", str(tmp_path / "d")])
    assert bad.exit_code == 1 and "trained on classes car, truck" in bad.output and "Traceback" not in bad.output
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    bad = CliRunner().invoke(main, [*base, "--init", str(junk), "--out", str(tmp_path / "e")])
    assert bad.exit_code == 1 and "junk.pt: unreadable checkpoint" in bad.output


class _RunsCode:
    """A pickle that would create a file when loaded unrestricted: a downloaded "checkpoint" a user must not
    run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_code_or_torn_is_refused_in_one_line(tmp_path):
    from train.loop import load_checkpoint

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _RunsCode(marker)}, evil)
    with pytest.raises(ValueError) as err:
        load_checkpoint(evil)
    msg = str(err.value)
    assert not marker.exists() and "\n" not in msg and str(evil) in msg
    assert "could run code" in msg and "weights_only=False" not in msg
    torn = tmp_path / "torn.pt"
    torch.save({"model": {"w": torch.zeros(64)}}, torn)
    torn.write_bytes(torn.read_bytes()[:200])
    with pytest.raises(ValueError, match="torn.pt: unreadable checkpoint \\(truncated or not a PyTorch file\\)"):
        load_checkpoint(torn)


def test_loader_workers_by_device(monkeypatch):
    from train.loop import loader_workers

    monkeypatch.setattr("os.cpu_count", lambda: 16)
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert loader_workers(None, cpu) == 2  # the CPU trains too: 2 measured best on 2 cores
    assert loader_workers(None, gpu) == 8  # 16 cores: capped at 8
    assert loader_workers(None, gpu, ranks=4) == 2  # 4 cores per rank, less 2
    assert loader_workers(0, gpu) == 0 and loader_workers(5, cpu) == 5  # asked for: as asked
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    assert loader_workers(None, gpu) == 4


def test_a_checkpoint_the_disk_cannot_hold_is_named_and_the_old_one_kept(tmp_path, monkeypatch):
    import errno

    from tests.conftest import full_disk
    from train.loop import load_checkpoint, save_checkpoint

    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(1000)})
    with pytest.MonkeyPatch.context() as mp:
        full_disk(mp)
        with pytest.raises(OSError) as err:  # torch alone raises RuntimeError("unexpected pos ...")
            save_checkpoint(path, {"epoch": 2, "w": torch.zeros(1000)})
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert load_checkpoint(path)["epoch"] == 1 and [p.name for p in tmp_path.iterdir()] == ["last.pt"]
