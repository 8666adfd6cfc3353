"""The parsed-model cache: the same meshes as a fresh parse, keyed by content, and never in the way."""

from __future__ import annotations

import shutil

import numpy as np
import trimesh
from PIL import Image

from assets import build_default_models
from renderer import ModelLibrary
from renderer.mesh_cache import ARRAYS, fill, load_mesh_cached, source_key
from renderer.meshes import load_mesh


def _same(a, b) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert len(a.textures) == len(b.textures)
    assert all(np.array_equal(p, q) for p, q in zip(a.textures, b.textures, strict=True))
    assert a.has_uvs == b.has_uvs and a.warnings == b.warnings


def _textured_obj(folder, colour=(0, 200, 0)):
    """MODEL/quad.obj + material library + texture.png, as a ShapeNet-style model folder."""
    folder.mkdir(parents=True, exist_ok=True)
    mesh = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], faces=[[0, 1, 2], [0, 2, 3]])
    mesh.visual = trimesh.visual.TextureVisuals(uv=[[0, 0], [1, 0], [1, 1], [0, 1]],
                                                image=Image.new("RGB", (8, 8), colour))
    path = folder / "quad.obj"
    mesh.export(path)
    return path


def test_cached_library_is_the_parsed_one(tmp_path):
    root = build_default_models()
    cache = tmp_path / "cache"
    parsed = ModelLibrary.load(root, mesh_cache=None)
    first = ModelLibrary.load(root, mesh_cache=cache)
    entries = sorted(cache.rglob("*.npz"))
    assert len(entries) == len(parsed.models)
    again = ModelLibrary.load(root, mesh_cache=cache)
    for a, b, c in zip(parsed.models, first.models, again.models, strict=True):
        assert a.key == b.key == c.key
        _same(a.mesh, b.mesh)
        _same(a.mesh, c.mesh)
    assert sorted(cache.rglob("*.npz")) == entries  # read, not written again


def test_textures_and_materials_are_part_of_the_key(tmp_path):
    path = _textured_obj(tmp_path / "models" / "car" / "quad")
    cache = tmp_path / "cache"
    green = load_mesh_cached(path, cache)
    assert tuple(green.textures[0][0, 0, :3]) == (0, 200, 0)
    texture = next(p for p in path.parent.iterdir() if p.suffix == ".png")
    Image.new("RGB", (8, 8), (200, 0, 0)).save(texture)  # edited in place: same name, new bytes
    red = load_mesh_cached(path, cache)
    assert tuple(red.textures[0][0, 0, :3]) == (200, 0, 0)
    _same(red, load_mesh(path))

    texture.unlink()  # a missing texture is a warning, and adding it back is seen
    missing = load_mesh_cached(path, cache)
    assert missing.warnings and not missing.textures
    Image.new("RGB", (8, 8), (0, 0, 200)).save(texture)
    back = load_mesh_cached(path, cache)
    assert not back.warnings and tuple(back.textures[0][0, 0, :3]) == (0, 0, 200)


def test_a_moved_folder_hits_the_same_entries(tmp_path):
    here = _textured_obj(tmp_path / "a" / "car" / "quad")
    there = tmp_path / "b" / "car" / "quad"
    shutil.copytree(here.parent, there)
    assert source_key(here) == source_key(there / "quad.obj")
    cache = tmp_path / "cache"
    load_mesh_cached(here, cache)
    load_mesh_cached(there / "quad.obj", cache)
    assert len(list(cache.rglob("*.npz"))) == 1


def test_broken_or_unwritable_cache_still_loads(tmp_path):
    path = _textured_obj(tmp_path / "car" / "quad")
    cache = tmp_path / "cache"
    load_mesh_cached(path, cache)
    (entry,) = cache.rglob("*.npz")
    entry.write_bytes(b"not an npz")  # a cut-off write from an older crash, or another program's file
    _same(load_mesh_cached(path, cache), load_mesh(path))
    assert entry.read_bytes()[:2] == b"PK"  # replaced by a good entry
    good = entry.read_bytes()
    entry.write_bytes(good[: len(good) // 2])  # a zip cut short: np.load raises BadZipFile, not OSError
    _same(load_mesh_cached(path, cache), load_mesh(path))
    assert entry.read_bytes() == good

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    _same(load_mesh_cached(path, blocked), load_mesh(path))


def test_a_cold_folder_is_parsed_in_parallel_once(tmp_path, monkeypatch):
    monkeypatch.setattr("renderer.mesh_cache.PARALLEL_BYTES", 0)  # a large folder's case, on small files
    root = tmp_path / "models"
    for i in range(6):
        _textured_obj(root / ("car" if i % 2 else "truck") / f"quad{i}", colour=(40 * i, 0, 0))
    (root / "car" / "broken.obj").write_text("v 0 0 0\nf 1 2 3\n")  # reported by the load, once, in order
    cache = tmp_path / "cache"
    keys = fill(sorted(root.rglob("*.obj")), cache, workers=2)
    assert len(keys) == 7 and len(list(cache.rglob("*.npz"))) == 6  # parsed by the pool, before any load
    skipped = []
    lib = ModelLibrary.load(root, mesh_cache=cache, workers=2, on_skip=skipped.append)
    assert len(list(cache.rglob("*.npz"))) == len(lib.models) == 6
    assert len(skipped) == 1 and "broken.obj" in skipped[0]
    for model in lib.models:
        _same(model.mesh, load_mesh(model.ref.path))


def test_a_cached_library_holds_no_arrays_and_renders_the_same(tmp_path, gl):
    from renderer import RenderConfig, Renderer, VariationConfig

    root = build_default_models()
    held = ModelLibrary.load(root, mesh_cache=None)
    lazy = ModelLibrary.load(root, mesh_cache=tmp_path / "cache")
    assert all(m.held is not None for m in held.models) and all(m.held is None for m in lazy.models)
    assert [m.n_faces for m in lazy.models] == [m.mesh.n_faces for m in held.models]
    cfg = RenderConfig(size=32, seed=5, variations=VariationConfig.parse("all"))
    images = []
    for lib in (held, lazy):
        r = Renderer(lib, cfg, ctx=gl)
        images.append(r.render([r.spec_at(i) for i in range(24)]))
    assert np.array_equal(images[0], images[1])

    shutil.rmtree(tmp_path / "cache")  # cleared while the library is in use: parsed again, same model
    _same(lazy.models[0].mesh, held.models[0].mesh)
