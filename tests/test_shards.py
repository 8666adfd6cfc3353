"""`mixreal render --format webdataset`: deterministic, resumable shards that mixreal, the webdataset
package and timm's WebDataset reader all read, with the same pixels as a PNG folder of the same job."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli import main
from train.datasets import RenderedDataset

JOB = ["--per-model", "4", "--size", "32", "--seed", "3", "--quiet"]


def _render(models, out, *extra):
    r = CliRunner().invoke(main, ["render", "--models", str(models), *JOB, "--out", str(out), *extra])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def shards(default_models, tmp_path_factory):
    return _render(default_models, tmp_path_factory.mktemp("wds") / "out", "--format", "webdataset",
                   "--shard-size", "25")


def test_shards_and_info(shards):
    info = json.loads((shards / "_info.json").read_text())
    split = info["splits"]["train"]
    assert split["num_samples"] == sum(split["shard_lengths"]) == 27 * 4
    assert split["filenames"] == [f"mixreal-{k:06d}.tar" for k in range(5)] and split["shard_lengths"][-1] == 8
    assert all((shards / f).is_file() for f in split["filenames"])


def test_same_bytes_from_two_workers_and_a_lost_shard_comes_back(default_models, shards, tmp_path):
    # two worker processes (each writing whole tars) give the one-process job's bytes, _info.json too
    again = _render(default_models, tmp_path / "again", "--format", "webdataset", "--shard-size", "25",
                    "--workers", "2")
    for name in json.loads((shards / "_info.json").read_text())["splits"]["train"]["filenames"]:
        assert (again / name).read_bytes() == (shards / name).read_bytes()
    assert (again / "_info.json").read_text().replace("again", "out") == (shards / "_info.json").read_text()
    lost = again / "mixreal-000002.tar"
    before = lost.read_bytes()
    lost.unlink()
    r = CliRunner().invoke(main, ["render", "--models", str(default_models), *JOB, "--out", str(again), "--format",
                                  "webdataset", "--shard-size", "25", "--workers", "2"])
    assert r.exit_code == 0 and "25 images rendered, 83 already there" in r.output
    assert lost.read_bytes() == before


def test_mixreal_reads_shards_as_it_reads_folders(default_models, shards, tmp_path):
    folder = RenderedDataset(_render(default_models, tmp_path / "png"))
    sharded = RenderedDataset(shards)
    assert len(sharded) == len(folder) and sharded.class_names == folder.class_names
    by_key = {(e["class"], e["model"], e["index"]): i for i, e in enumerate(folder.entries)}
    for i in range(0, len(sharded), 7):
        e = sharded.entries[i]
        j = by_key[(e["class"], e["model"], e["index"])]
        image, label = sharded[i]
        assert torch.equal(image, folder[j][0]) and label == folder[j][1]
        assert sharded.params(i) == folder.params(j)


def test_the_webdataset_package_and_timm_read_them(shards):
    import webdataset as wds
    from timm.data import create_dataset

    names = json.loads((shards / "_info.json").read_text())["splits"]["train"]["filenames"]
    classes = json.loads((shards / "_info.json").read_text())["classes"]
    samples = list(wds.WebDataset([str(shards / n) for n in names], shardshuffle=False).decode("rgb8"))
    assert len(samples) == 108
    assert all(s["png"].shape == (32, 32, 3) for s in samples)
    assert all(classes[int(s["cls"])] == s["json"]["class"] for s in samples)  # decoded: .cls int, .json dict
    ds = create_dataset("wds/mixreal", root=str(shards), split="train", is_training=False, batch_size=1)
    got = [(np.asarray(img).shape, int(target)) for img, target in ds]
    assert len(got) == 108 and all(shape == (32, 32, 3) for shape, _ in got)
    assert sorted(t for _, t in got) == sorted(int(s["cls"]) for s in samples)


def test_a_damaged_shard_is_reported_and_the_rest_trains(tiny_real, shards, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(shards, broken)
    tar = broken / "mixreal-000001.tar"
    tar.write_bytes(tar.read_bytes()[:20_000])  # cut short, as a killed copy leaves it
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "classify", "--real", str(tiny_real), "--synthetic", str(broken),
                                  "--ratio", "1:1", "--epochs", "1", "--batch-size", "32", "--scale", "quick",
                                  "--workers", "0", "--quiet", "--out", str(run)])
    assert r.exit_code == 0, r.output
    assert sum("damaged shard" in line and "mixreal-000001.tar" in line for line in r.output.splitlines()) == 1
    assert json.loads((run / "summary.json").read_text())["epochs"] == 1


def test_only_the_whole_jobs_run_removes_temp_files(default_models, tmp_path):
    """A temp tar under OUT is another writer's work in progress (a worker, another machine's --shard) unless
    this run is the whole job: then it is a killed run's leftover."""
    out = tmp_path / "out"
    out.mkdir()
    other = out / ".mixreal-000000.tar.k2j4.tmp"
    other.write_bytes(b"being written by another machine")
    _render(default_models, out, "--format", "webdataset", "--shard-size", "25", "--shard", "1/2")
    assert other.is_file()
    _render(default_models, out, "--format", "webdataset", "--shard-size", "25")
    assert not other.exists() and (out / "_info.json").is_file()
