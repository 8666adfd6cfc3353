"""Data-parallel training: ranks split every minibatch without overlap, and torchrun runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from tests.conftest import REPO
from train.mixing import MixedBatches


class Numbered(torch.utils.data.Dataset):
    """Image i is filled with i: which images a batch holds can be read off its pixels."""

    class_names = ["a", "b"]

    def __init__(self, n: int, offset: int = 0):
        self.n, self.offset = n, offset

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.full((3, 2, 2), i + self.offset, dtype=torch.int64), i % 2


def _ids(images):
    return images[:, 0, 0, 0].tolist()


def test_ranks_split_each_batch_into_disjoint_parts_that_make_up_the_whole():
    real, syn = Numbered(40), Numbered(1000, offset=10_000)
    single = MixedBatches(real, syn, "1:3", batch_size=16, seed=5)
    ranks = [MixedBatches(real, syn, "1:3", batch_size=16, seed=5, rank=r, world=2) for r in (0, 1)]
    for whole, part0, part1 in zip(single, *ranks, strict=True):
        assert len(part0[0]) == len(part1[0]) == len(whole[0]) // 2
        a, b = set(_ids(part0[0])), set(_ids(part1[0]))
        assert not a & b and a | b == set(_ids(whole[0]))
        assert int(part0[2].sum()) == int(whole[2].sum()) // 2  # a quarter real on each rank too
    for m in (single, *ranks):
        m.close()


def test_a_batch_that_does_not_split_is_refused():
    import pytest

    with pytest.raises(ValueError, match="does not split evenly over 3 ranks"):
        MixedBatches(Numbered(40), Numbered(100), "1:7", batch_size=128, world=3)


def test_torchrun_two_cpu_ranks_write_one_run(tiny_real, rendered32, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
           "-m", "cli", "train", "classify", "--real", str(tiny_real), "--synthetic", str(rendered32), "--ratio",
           "1:1", "--epochs", "2", "--batch-size", "32", "--scale", "quick", "--workers", "0", "--device", "cpu",
           "--quiet", "--out", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 2
    assert len((run / "metrics.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs, written once
    assert sum("test accuracy at the best validation epoch" in line for line in r.stdout.splitlines()) >= 1


def test_torchrun_killed_and_resumed_ends_with_the_same_weights(tiny_real, rendered32, tmp_path):
    import signal
    import time

    def cmd(out, port):
        return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
                "-m", "cli", "train", "classify", "--real", str(tiny_real), "--synthetic", str(rendered32),
                "--ratio", "1:1", "--epochs", "3", "--batch-size", "32", "--scale", "quick", "--workers", "0",
                "--device", "cpu", "--augment", "--quiet", "--out", str(out)]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = subprocess.run(cmd(tmp_path / "whole", 29541), cwd=REPO, capture_output=True, text=True, env=env,
                           timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]
    part = tmp_path / "part"
    p = subprocess.Popen(cmd(part, 29542), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (part / "last.pt").is_file() and time.time() < deadline and p.poll() is None:
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL)  # every rank at once, mid-run
    p.wait()
    state = torch.load(part / "last.pt", weights_only=True)
    assert state["epoch"] < 2, "the run finished before it could be killed"
    again = subprocess.run(cmd(part, 29543), cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stdout
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model"]
    b = torch.load(part / "last.pt", weights_only=True)["model"]
    for name, w in a.items():
        assert torch.equal(w, b[name]), f"{name} differs after resuming"


def test_render_workers_use_their_ranks_gpu():
    from train.datasets import worker_device

    assert worker_device(3, 1, {}) is None  # one GPU (or none): the default device
    assert [worker_device(s, 4, {}) for s in range(6)] == [0, 1, 2, 3, 0, 1]  # one process: spread over the GPUs
    ddp = {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    assert {worker_device(s, 2, ddp) for s in range(4)} == {1}  # rank 1 trains on GPU 1: its workers render there
