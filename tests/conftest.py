"""Shared fixtures: the real data folder, one GL context, the embedded default models."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("MIXREAL_DATA", REPO.parent / "shared" / "data")).resolve()


def require_data(*parts: str) -> Path:
    """A path under MIXREAL_DATA; skipped when absent locally, a failure under CI."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must provide the shared data (MIXREAL_DATA)")
        pytest.skip(f"{path} not present (set MIXREAL_DATA)")
    return path


def manifest_models(*classes: str) -> dict[str, int]:
    """Models per class as the shared meshes' manifest.csv lists them (never a hard-coded count)."""
    import csv

    rows = list(csv.DictReader((require_data("meshes") / "manifest.csv").open(newline="")))
    counts: dict[str, int] = {}
    for row in rows:
        if not classes or row["class"] in classes:
            counts[row["class"]] = counts.get(row["class"], 0) + 1
    return counts


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """The default models are built once per test session, in a private cache."""
    old = os.environ.get("MIXREAL_CACHE")
    os.environ["MIXREAL_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("MIXREAL_CACHE", None)
    else:
        os.environ["MIXREAL_CACHE"] = old


@pytest.fixture(scope="session")
def gl():
    from renderer import create_context

    ctx = create_context()
    yield ctx
    ctx.release()


@pytest.fixture(scope="session")
def default_models(_private_cache) -> Path:
    from assets import build_default_models

    return build_default_models()


@pytest.fixture(scope="session")
def sphere_library(tmp_path_factory):
    """One red icosphere: a model whose silhouette is known from any view."""
    import trimesh

    from renderer import ModelLibrary

    root = tmp_path_factory.mktemp("sphere")
    (root / "ball").mkdir()
    s = trimesh.creation.icosphere(subdivisions=3)
    s.visual = trimesh.visual.ColorVisuals(s, face_colors=[200, 60, 60, 255])
    s.export(root / "ball" / "ball.glb")
    return ModelLibrary.load(root, on_skip=lambda m: None)


@pytest.fixture(scope="session")
def default_library(default_models):
    from renderer import ModelLibrary

    return ModelLibrary.load(default_models, on_skip=lambda m: None)


@pytest.fixture(scope="session")
def shared_meshes() -> Path:
    return require_data("meshes")


@pytest.fixture(scope="session")
def shared_library(shared_meshes):
    from renderer import ModelLibrary

    return ModelLibrary.load(shared_meshes, on_skip=lambda m: None)


@pytest.fixture(scope="session")
def tiny_real(tmp_path_factory):
    """A CIFAR-DA folder from the shared CIFAR subset: 40 train, 10 val, 10 test images per class."""
    from click.testing import CliRunner

    from cli import main

    npz = require_data("cifar", "cifar10-train-subset.npz")
    out = tmp_path_factory.mktemp("tiny")
    r = CliRunner().invoke(main, ["data", "cifar-da", "--cifar10", str(npz), "--counts", "40,10,10", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def rendered32(default_models, tmp_path_factory):
    """`mixreal render` of the default models, 20 images per model at 32 px."""
    from click.testing import CliRunner

    from cli import main

    out = tmp_path_factory.mktemp("syn")
    r = CliRunner().invoke(main, ["render", "--models", str(default_models), "--per-model", "20", "--size", "32",
                                  "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    return out


class _FullDisk:
    """A file whose writes fail as on a full disk (the error names no file, as a real ENOSPC write does)."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def full_disk(monkeypatch) -> None:
    """Every file opened through os.fdopen (atomic writes, checkpoints) fails its writes as on a full disk."""
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: _FullDisk(real(fd, mode, *a, **k)))
