"""Levels of detail are smaller, and are used only when their silhouettes match the full mesh."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import trimesh

from renderer.library import ModelLibrary
from renderer.lod import MAX_FAR_PIXELS, MIN_MEAN_IOU, MIN_VIEW_IOU, SilhouetteCheck, simplify_for
from renderer.meshes import load_mesh
from renderer.pool import VERTEX, GeometryPool


def test_lods_of_real_meshes_are_smaller_and_pass_the_check(shared_meshes, gl):
    check = SilhouetteCheck(gl)
    lib = ModelLibrary.load(shared_meshes, classes=["car", "train"], on_skip=lambda m: None)
    total_full = total_drawn = 0
    for model in lib.models:
        simple = simplify_for(model.mesh, 64, check)
        drawn = simple if simple is not None else model.mesh
        total_full += model.mesh.n_faces
        total_drawn += drawn.n_faces
        if simple is not None:
            mean, worst, far = check.agreement(model.mesh, drawn, 64)
            assert mean >= MIN_MEAN_IOU and worst >= MIN_VIEW_IOU and far <= MAX_FAR_PIXELS
            assert drawn.n_faces < model.mesh.n_faces
            assert np.abs(drawn.positions).max() <= 1.05  # edge collapses may move a vertex slightly out
    assert total_drawn < 0.5 * total_full


def test_the_check_rejects_a_simplification_that_eats_thin_parts(tmp_path, gl):
    body = trimesh.creation.box(extents=(1.2, 0.6, 0.6))
    mast = trimesh.creation.cylinder(radius=0.008, height=1.2, sections=16)
    mast.apply_translation((0.3, 0.6, 0.0))
    trimesh.util.concatenate([body, mast]).export(tmp_path / "m.ply")
    mesh = load_mesh(tmp_path / "m.ply")
    # the same model with the mast gone above the body, as a careless simplifier might leave it
    mast_x = mesh.positions[mesh.positions[:, 1].argmax(), 0]
    body_top = mesh.positions[np.abs(mesh.positions[:, 0] - mast_x) > 0.1, 1].max()
    above = mesh.positions[mesh.indices, 1].min(axis=1) > body_top + 1e-4
    eaten = replace(mesh, indices=mesh.indices[~above])
    assert above.sum() > 0
    check = SilhouetteCheck(gl)
    mean, worst, far = check.agreement(mesh, eaten, 96)
    assert worst > MIN_VIEW_IOU and mean > MIN_MEAN_IOU  # IoU alone would let this through...
    assert far > 5 * MAX_FAR_PIXELS  # ...but the vanished mast is far from everything left
    assert not check.accepts(mesh, eaten, 96)
    kept = simplify_for(mesh, 96, check)
    assert kept is None or check.accepts(mesh, kept, 96)


def test_geometry_pool_grows_without_losing_content(default_library, gl):
    pool = GeometryPool(gl, vertices=64, indices=64)
    placed = []
    for model in default_library.models[:6]:
        placed.append((model.mesh, pool.add(model.mesh)))
    assert pool.vbo.size >= pool.n_vertices * VERTEX.itemsize
    vertices = np.frombuffer(pool.vbo.read(size=pool.n_vertices * VERTEX.itemsize), dtype=VERTEX)
    indices = np.frombuffer(pool.ibo.read(size=pool.n_indices * 4), dtype=np.uint32)
    for mesh, (first, base, count) in placed:
        np.testing.assert_array_equal(indices[first:first + count], mesh.indices.reshape(-1))
        np.testing.assert_array_equal(vertices["p"][base:base + len(mesh.positions)], mesh.positions)
