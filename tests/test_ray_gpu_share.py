"""`mixreal render --ray` on a cluster with GPUs: several actors share each GPU (one rendering process cannot
keep a GPU busy), each on its CUDA device 0 as Ray assigns it, with the same bytes as one process. A local Ray
that declares one GPU stands in (its actors then render with llvmpipe on EGL device 0)."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from cli import main
from renderer.cluster import actor_layout

ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
JOB = ["--per-model", "3", "--size", "32", "--seed", "4", "--quiet"]


def test_actor_layout():
    assert actor_layout(0, 8, None) == (8, 0.0)  # no GPU: a CPU slot each
    assert actor_layout(0, 8, 3) == (3, 0.0)
    assert actor_layout(1, 16, None) == (16, 0.0625)  # every CPU slot on the one GPU
    assert actor_layout(2, 16, None) == (16, 0.125)
    n, share = actor_layout(1, 12, 3)
    assert n == 3 and 3 * share <= 1 < 4 * share  # three fit on the GPU, a fourth would not
    assert actor_layout(4, 2, None) == (4, 1.0)  # fewer CPUs than GPUs: still one actor per GPU


def test_actors_share_a_gpu_and_render_the_same_bytes(default_models, tmp_path):
    def render(out, *extra):
        r = CliRunner().invoke(main, ["render", "--models", str(default_models), *JOB, "--out", str(out), *extra])
        assert r.exit_code == 0, r.output
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
                if p.is_file() and p.name != "render.json"}

    single = render(tmp_path / "one")
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        assert render(tmp_path / "ray", "--ray", "local") == single
    finally:
        ray.shutdown()
    record = json.loads((tmp_path / "ray" / "render.json").read_text())["rendered_on"]["ray"]
    assert record["actors"] == 2 and record["gpu_share"] == 0.5
    assert all("EGL device 0" in d for d in record["devices"])  # the actor's CUDA device 0, as Ray set it
