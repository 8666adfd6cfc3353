"""Rendering: geometry, what each variation changes, determinism."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from renderer import RenderConfig, Renderer, SampleSpec, VariationConfig
from renderer.sampling import draw_params
from tests.conftest import REPO

SIZE = 64


def _renderer(library, gl, variations="none", **kw) -> Renderer:
    return Renderer(library, RenderConfig(size=SIZE, variations=VariationConfig.parse(variations), **kw), ctx=gl)


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_silhouette_centred_and_shrinks_with_distance(sphere_library, gl):
    r = _renderer(sphere_library, gl)
    specs = [SampleSpec(0, k) for k in range(3)]
    params = r.params(specs)
    params["cam_distance"][:] = (1.0, 1.5, 2.5)
    images, masks = r.render(specs, masks=True, params=params)
    areas = [(m == 255).sum() for m in masks]
    assert areas[0] > areas[1] > areas[2] > 0
    # a sphere at the frame-filling distance covers about pi/4 of the image; area goes as 1/d^2
    assert areas[0] / SIZE**2 == pytest.approx(np.pi / 4, rel=0.1)
    assert areas[1] / areas[2] == pytest.approx((2.5 / 1.5) ** 2, rel=0.15)
    for m in masks:
        np.testing.assert_allclose(_centroid(m == 255), (SIZE - 1) / 2, atol=0.6)
    # the model takes its material colour, the background the canonical white
    assert images[2][0, 0].tolist() == [255, 255, 255]
    red = images[0][masks[0] == 255].mean(0)
    assert red[0] > 2 * red[1] and red[0] > 2 * red[2]


def test_jitter_moves_the_silhouette(sphere_library, gl):
    r = _renderer(sphere_library, gl)
    specs = [SampleSpec(0, 0)]
    params = r.params(specs)
    params["cam_distance"][:] = 2.0
    params["cam_jitter"][:] = (0.25, 0.0)  # NDC: a quarter of the half-frame to the right
    _, masks = r.render(specs, masks=True, params=params)
    cx, cy = _centroid(masks[0] == 255)
    assert cx == pytest.approx((SIZE - 1) / 2 + 0.25 * SIZE / 2, abs=0.7)
    assert cy == pytest.approx((SIZE - 1) / 2, abs=0.7)


def test_mirror_flips_the_image(default_library, gl):
    r = _renderer(default_library, gl, variations="augment2d")
    specs = [SampleSpec(m, 0) for m in range(0, len(default_library.models), 3)]
    params = r.params(specs)
    params["aug_crop"][:] = (1.0, 0.0, 0.0)
    params["aug_shear"][:] = 0.0
    params["aug_contrast"][:] = 1.0
    params["aug_illum"][:] = 1.0
    params["aug_mirror"][:] = False
    plain, plain_mask = r.render(specs, masks=True, params=params)
    params["aug_mirror"][:] = True
    flipped, flipped_mask = r.render(specs, masks=True, params=params)
    np.testing.assert_array_equal(flipped_mask, plain_mask[:, :, ::-1])
    # colours too, but for the odd pixel where coplanar parts z-fight (resolved per raster position)
    differ = np.abs(flipped.astype(int) - plain[:, :, ::-1].astype(int)).max(-1) > 8
    assert differ.sum() <= 0.005 * (plain_mask == 255).sum()
    assert (plain_mask == 255).any() and not np.array_equal(plain_mask, flipped_mask)


def test_crop_zooms_in(sphere_library, gl):
    r = _renderer(sphere_library, gl, variations="augment2d")
    specs = [SampleSpec(0, 0)]
    params = r.params(specs)
    params["aug_mirror"][:] = False
    params["aug_shear"][:] = 0.0
    params["aug_contrast"][:] = params["aug_illum"][:] = 1.0
    params["cam_distance"][:] = 2.5
    params["aug_crop"][:] = (1.0, 0.0, 0.0)
    _, full = r.render(specs, masks=True, params=params)
    params["aug_crop"][:] = (0.5, 0.0, 0.0)  # keep the central half, resized back up
    _, zoomed = r.render(specs, masks=True, params=params)
    assert (zoomed == 255).sum() / (full == 255).sum() == pytest.approx(4.0, rel=0.08)


ISOLATION = "texture,lighting,background,camera,occlusion"  # 2D warps move pixels across the mask


@pytest.mark.parametrize("variation, columns, inside_changes, outside_changes", [
    ("background", ["bg_mode", "bg_color1", "bg_color2", "bg_angle", "bg_noise", "bg_image", "bg_crop"], False, True),
    ("texture", ["tex_mode", "tex_kind", "tex_color1", "tex_color2", "tex_scale", "tex_image"], True, False),
    ("lighting", ["n_lights", "light_dir", "light_col", "ambient"], True, False),
])
def test_each_variation_changes_only_its_pixels(default_library, gl, variation, columns, inside_changes,
                                                outside_changes):
    # one sample per pixel: with anti-aliasing, an edge pixel is rightly both object and background
    r = _renderer(default_library, gl, variations=ISOLATION, supersample=1)
    specs = [r.spec_at(i) for i in range(48)]
    base = r.params(specs)
    other = draw_params(r.config.variations, seed=12345, model_keys=[r.models[s.model].key for s in specs],
                        indices=[s.index for s in specs], counts=r.counts)
    changed = base.take(slice(None))
    for c in columns:
        changed[c] = other[c]
    a, ma = r.render(specs, masks=True, params=base)
    b, mb = r.render(specs, masks=True, params=changed)
    np.testing.assert_array_equal(ma, mb)  # the silhouette never moves
    inside, outside = ma > 0, ma == 0
    diff = np.abs(a.astype(int) - b.astype(int)).max(-1)
    assert (diff[inside] > 0).any() == inside_changes
    assert (diff[outside] > 0).any() == outside_changes
    if inside_changes:
        assert (diff[inside] > 8).mean() > 0.2
    if outside_changes:
        assert (diff[outside] > 8).mean() > 0.5


def test_switching_a_variation_on_changes_only_it(default_library, gl):
    """Canonical render vs the same samples with one variation switched on (one sample per pixel, so that
    a pixel is either object or background)."""
    specs = [SampleSpec(m, 1) for m in range(len(default_library.models))]
    none_img, none_mask = _renderer(default_library, gl, "none", supersample=1).render(specs, masks=True)
    bg_img, bg_mask = _renderer(default_library, gl, "background", supersample=1).render(specs, masks=True)
    np.testing.assert_array_equal(none_mask, bg_mask)
    obj = none_mask == 255
    np.testing.assert_array_equal(none_img[obj], bg_img[obj])
    assert (none_img[~obj] != bg_img[~obj]).any()
    cam_img, cam_mask = _renderer(default_library, gl, "camera", supersample=1).render(specs, masks=True)
    assert (cam_mask != none_mask).any(axis=(1, 2)).mean() > 0.8
    occ_r = _renderer(default_library, gl, "occlusion", supersample=1)
    occ_img, occ_mask = occ_r.render(specs, masks=True)
    has_occ = occ_r.params(specs)["n_occluders"] > 0
    assert has_occ.any() and not has_occ.all()
    for i in range(len(specs)):
        assert (occ_mask[i] == 128).any() == has_occ[i]
        if not has_occ[i]:
            np.testing.assert_array_equal(occ_img[i], none_img[i])
        # occluders only ever cover, never uncover
        assert not ((occ_mask[i] == 255) & (none_mask[i] != 255)).any()


def test_params_of_one_variation_ignore_the_others(default_library, gl):
    keys = [m.key for m in default_library.models]
    idx = list(range(len(keys)))
    all_on = draw_params(VariationConfig.parse("all"), 7, keys, idx)
    only_light = draw_params(VariationConfig.parse("lighting"), 7, keys, idx)
    for col in ("light_dir", "light_col", "ambient", "n_lights"):
        np.testing.assert_array_equal(all_on[col], only_light[col])
    # and a row does not depend on the rows around it
    single = draw_params(VariationConfig.parse("all"), 7, keys[5:6], idx[5:6])
    for col in all_on:
        np.testing.assert_array_equal(all_on[col][5:6], single[col])


def test_same_image_whatever_batch_size_and_order(shared_library, gl):
    r64 = _renderer(shared_library, gl, "all", batch_size=64)
    r1 = _renderer(shared_library, gl, "all", batch_size=7)
    specs = [r64.spec_at(i) for i in range(90)]
    a = r64.render(specs)
    b = r1.render(specs[::-1])[::-1]
    np.testing.assert_array_equal(a, b)
    assert len({img.tobytes() for img in a}) == len(a)  # and they do differ from one another


def test_an_order_that_revisits_cells_still_renders_in_full_batches(shared_library, gl):
    """One image per model in turn (index k of every model, then k + 1) revisits cells early; it must not
    split into many small batches, and its images are those of the same samples in global order."""
    r = _renderer(shared_library, gl, "all", batch_size=64)
    n_models = len(shared_library.models)
    specs = [SampleSpec(i % n_models, i // n_models) for i in range(3 * r.cells)]
    batches = r._batches(specs)
    per_cell = np.bincount([r.cell_of(s) for s in specs], minlength=r.cells)
    assert len(batches) <= int(per_cell.max()) * -(-r.cells // r.batch_capacity)
    for batch in batches:
        assert len({r.cell_of(specs[j]) for j in batch}) == len(batch) <= r.batch_capacity
    assert sorted(j for b in batches for j in b) == list(range(len(specs)))
    pick = specs[: 2 * n_models]
    np.testing.assert_array_equal(r.render(pick), np.stack([r.render([s])[0] for s in pick]))


def test_same_image_in_another_process(default_models, default_library, gl, tmp_path):
    r = _renderer(default_library, gl, "all", seed=3)
    specs = [r.spec_at(i) for i in range(40, 60)]
    here = r.render(specs)
    out = tmp_path / "other.npy"
    code = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]);"
        "from renderer import *;"
        "lib = ModelLibrary.load(sys.argv[2], on_skip=lambda m: None);"
        "r = Renderer(lib, RenderConfig(size=64, seed=3, batch_size=5, variations=VariationConfig.parse('all')));"
        "np.save(sys.argv[3], r.render([r.spec_at(i) for i in range(40, 60)]))"
    )
    subprocess.run([sys.executable, "-c", code, str(REPO), str(default_models), str(out)], check=True)
    np.testing.assert_array_equal(here, np.load(out))


def test_seed_changes_images(default_library, gl):
    specs = [SampleSpec(m, 0) for m in range(len(default_library.models))]
    a = _renderer(default_library, gl, "all", seed=0).render(specs)
    b = _renderer(default_library, gl, "all", seed=1).render(specs)
    assert all(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("size", [32, 128, 224])
def test_sizes_and_msaa(default_library, gl, size):
    cfg = RenderConfig(size=size, msaa=4 if size == 128 else 0, variations=VariationConfig.parse("none"))
    r = Renderer(default_library, cfg, ctx=gl)
    images, masks = r.render([SampleSpec(0, 0), SampleSpec(3, 0)], masks=True)
    assert images.shape == (2, size, size, 3) and images.dtype == np.uint8
    assert (masks == 255).mean() > 0.02
    if cfg.msaa:  # edges blend between object and background
        plain = Renderer(default_library, replace(cfg, msaa=0), ctx=gl).render([SampleSpec(0, 0)])
        assert not np.array_equal(plain[0], images[0])


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="size"):
        RenderConfig(size=8)
    with pytest.raises(ValueError, match="unknown variation"):
        VariationConfig.parse("texture,sparkles")


def test_no_egl_gives_one_clear_error(monkeypatch):
    import moderngl

    from renderer import PlatformError, create_context

    def broken(**kwargs):
        raise Exception("eglGetDisplay failed\nmore driver text")

    monkeypatch.setattr(moderngl, "create_context", broken)
    with pytest.raises(PlatformError) as err:
        create_context()
    text = str(err.value)
    assert "\n" not in text and "eglGetDisplay failed" in text
    assert "apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri" in text


def test_torch_optimisers_work_after_a_gl_context(tmp_path):
    """Regression: a GL context (llvmpipe's LLVM) followed by torch.optim (which imports triton's LLVM)
    used to segfault the process."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from renderer import create_context; ctx = create_context();"
        "import torch; torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-500:]


def test_pass_timing_names_every_pass_and_leaves_pixels_alone(default_library, gl):
    r = Renderer(default_library, RenderConfig(size=32, seed=5), ctx=gl)
    specs = [r.spec_at(i) for i in range(48)]
    plain = r.render(specs)
    timer = r.time_passes()
    timed = r.render(specs)
    r.time_passes(False)
    assert np.array_equal(plain, timed)
    assert {"objects", "backgrounds", "camera pass (filter, white balance, blur, noise)", "read-back",
            "pack (CPU)", "latent parameters (CPU)"} <= set(timer.seconds)
    assert all(s >= 0 for s in timer.seconds.values()) and sum(timer.seconds.values()) > 0
    before = dict(timer.seconds)
    r.render(specs[:8])  # switched off: nothing more is counted
    assert timer.seconds == before
