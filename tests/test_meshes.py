"""Loading models: every format, scene transforms, normalisation, and broken files."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import trimesh
from PIL import Image

from renderer import ModelLibrary, ModelLoadError, discover_models, load_mesh
from tests.conftest import manifest_models, require_data


def _two_boxes() -> trimesh.Scene:
    """Two boxes far apart and off-origin, so flattening and normalisation both matter."""
    scene = trimesh.Scene()
    a = trimesh.creation.box(extents=(2, 2, 2))
    a.visual = trimesh.visual.ColorVisuals(a, face_colors=[255, 0, 0, 255])
    b = trimesh.creation.box(extents=(2, 2, 2))
    b.visual = trimesh.visual.ColorVisuals(b, face_colors=[0, 0, 255, 255])
    scene.add_geometry(a, transform=trimesh.transformations.translation_matrix((100, 50, 0)))
    scene.add_geometry(b, transform=trimesh.transformations.translation_matrix((110, 50, 0)))
    return scene


def _textured_quad(tmp_path):
    img = Image.new("RGB", (8, 8), (0, 200, 0))
    mesh = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], faces=[[0, 1, 2], [0, 2, 3]])
    mesh.visual = trimesh.visual.TextureVisuals(uv=[[0, 0], [1, 0], [1, 1], [0, 1]], image=img)
    return mesh


@pytest.mark.parametrize("ext", ["glb", "ply", "off", "stl", "obj"])
def test_each_format_loads_and_is_normalised(tmp_path, ext):
    path = tmp_path / f"model.{ext}"
    scene = _two_boxes()
    if ext in ("off", "stl"):
        scene.to_geometry().export(path)
    else:
        scene.export(path)
    mesh = load_mesh(path)
    assert mesh.n_faces == 24
    radius = np.linalg.norm(mesh.positions, axis=1).max()
    assert radius == pytest.approx(1.0, abs=1e-5)
    centre = (mesh.positions.min(0) + mesh.positions.max(0)) / 2
    np.testing.assert_allclose(centre, 0.0, atol=1e-5)
    # both boxes survive flattening: the model spans along x, as the two boxes did
    extent = np.ptp(mesh.positions, axis=0)
    assert extent[0] > 2.5 * extent[1]


def test_vertex_colours_survive_glb(tmp_path):
    path = tmp_path / "m.glb"
    _two_boxes().export(path)
    mesh = load_mesh(path)
    rgb = {tuple(c[:3]) for c in mesh.colors}
    assert (255, 0, 0) in rgb and (0, 0, 255) in rgb


def test_obj_with_mtl_and_texture(tmp_path):
    mesh = _textured_quad(tmp_path)
    path = tmp_path / "quad" / "quad.obj"
    path.parent.mkdir()
    mesh.export(path)
    assert any(p.suffix == ".png" for p in path.parent.iterdir())
    loaded = load_mesh(path)
    assert loaded.has_uvs and len(loaded.textures) == 1
    tex = loaded.textures[0]
    assert tex.shape[0] == tex.shape[1] and tuple(tex[0, 0, :3]) == (0, 200, 0)
    assert (loaded.layers == 0).all()


def test_glb_with_embedded_texture(tmp_path):
    path = tmp_path / "quad.glb"
    _textured_quad(tmp_path).export(path)
    loaded = load_mesh(path)
    assert loaded.has_uvs and len(loaded.textures) == 1


def test_discovery_layout(tmp_path):
    (tmp_path / "car" / "sedan").mkdir(parents=True)
    (tmp_path / "plane").mkdir()
    _two_boxes().export(tmp_path / "car" / "sedan" / "sedan.obj")
    _two_boxes().export(tmp_path / "car" / "hatch.glb")
    _two_boxes().export(tmp_path / "plane" / "jet.ply")
    (tmp_path / "plane" / "readme.txt").write_text("not a model")
    (tmp_path / "plane" / "old.fbx").write_bytes(b"x")
    models, skipped = discover_models(tmp_path)
    assert [(m.label, m.name) for m in models] == [("car", "hatch"), ("car", "sedan"), ("plane", "jet")]
    assert models[1].path.name == "sedan.obj"
    assert len(skipped) == 1 and "unsupported format .fbx" in skipped[0][1]


def test_shared_meshes_all_load(shared_meshes):
    models, skipped = discover_models(shared_meshes)
    assert len(models) == sum(manifest_models().values()) and not skipped
    for ref in models:
        mesh = load_mesh(ref.path)
        assert mesh.n_faces > 100
        assert np.linalg.norm(mesh.positions, axis=1).max() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("name, reason", [
    ("empty.obj", "empty file"),
    ("truncated.glb", "truncated / corrupt file"),
    ("garbage.ply", "cannot parse"),
    ("kenney_sedan_meshopt.glb", "unsupported glTF extension EXT_meshopt_compression"),
])
def test_bad_meshes_give_one_line_reasons(name, reason):
    path = require_data("bad-meshes", "car", name)
    with pytest.raises(ModelLoadError) as err:
        load_mesh(path)
    message = str(err.value)
    assert reason in message and name in message and "\n" not in message


def test_missing_texture_loads_with_warning():
    path = require_data("bad-meshes", "car", "missing_texture.obj")
    mesh = load_mesh(path)
    assert mesh.n_faces >= 1
    assert any("not found" in w and ".png" in w for w in mesh.warnings)


def test_library_skips_and_reports_bad_files():
    root = require_data("bad-meshes")
    messages = []
    lib = ModelLibrary.load(root, on_skip=messages.append)
    assert [m.ref.name for m in lib.models] == ["missing_texture"]
    assert len(lib.skipped) == 4
    skipped = [m for m in messages if m.startswith("skipped")]
    assert len(skipped) == 4 and all("\n" not in m for m in messages)
    assert any(m.startswith("warning") and "missing_texture.obj" in m for m in messages)


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "car").mkdir()
    with pytest.raises(ModelLoadError, match="no loadable model"):
        ModelLibrary.load(tmp_path, on_skip=lambda m: None)


def test_truncated_glb_written_here(tmp_path):
    good = tmp_path / "good.glb"
    _two_boxes().export(good)
    data = good.read_bytes()
    assert struct.unpack("<I", data[8:12])[0] == len(data)
    bad = tmp_path / "bad.glb"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated"):
        load_mesh(bad)


def test_shapenet_layout_and_synset_classes(tmp_path):
    """ShapeNetCore.v2: <synset>/<model id>/models/model_normalized.obj (+ .mtl, textures in ../images)."""
    for synset, model_id in (("02958343", "1a0bc9ab92c915167ae33d942430658c"), ("04379243", "1a00aa6b75362cc5")):
        folder = tmp_path / "ShapeNetCore.v2" / synset / model_id / "models"
        folder.mkdir(parents=True)
        _textured_quad(tmp_path).export(folder / "model_normalized.obj")
    lib = ModelLibrary.load(tmp_path / "ShapeNetCore.v2", classes=["car"])
    assert [m.key for m in lib.models] == ["02958343/1a0bc9ab92c915167ae33d942430658c"]
    assert lib.models[0].mesh.has_uvs and len(lib.models[0].mesh.textures) == 1
