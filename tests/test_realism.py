"""What makes renders look like photos: anti-aliasing, silhouette framing, per-class camera priors, and
background folders used whole."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from renderer import RenderConfig, Renderer, VariationConfig
from renderer.images import load_image_folder

SIZE = 64


def test_anti_aliasing_makes_edges_soft(sphere_library, gl):
    """A red ball on white: with one sample per pixel every pixel is one or the other; supersampled,
    the pixels along the silhouette hold colours in between (the mean of both)."""
    green = {}
    for ss in (1, 2):
        r = Renderer(sphere_library, RenderConfig(size=SIZE, supersample=ss, variations=VariationConfig.parse("none")),
                     ctx=gl)
        specs = [r.spec_at(0)]
        params = r.params(specs)
        params["cam_distance"][:] = 2.0  # a disc of about 30 px across, its whole outline in the frame
        green[ss] = r.render(specs, params=params)[0, ..., 1].astype(int)
    # the ball's own green channel stays below 120, the white background's is 255: in between is edge
    between = {ss: ((g > 120) & (g < 235)).sum() for ss, g in green.items()}
    assert between[1] < 5
    assert between[2] > 20  # a good part of the ~95 px outline


def test_the_anti_aliasing_filter_is_the_mean_of_the_drawn_samples(default_library, gl):
    """The GPU camera pass with every effect off: each output pixel is the mean of its 2 x 2 drawn samples.
    The same samples are what a renderer at twice the size without supersampling returns (same draw size,
    so the same atlas cells and the same rasterisation); the mean is taken in float and rounded once, so it
    may land one level from NumPy's rounding of an exact half."""
    v = VariationConfig.parse("texture,lighting,background,camera,occlusion,augment2d")
    small = Renderer(default_library, RenderConfig(size=32, supersample=2, variations=v), ctx=gl)
    large = Renderer(default_library, RenderConfig(size=64, supersample=1, variations=v), ctx=gl)
    specs = [small.spec_at(i) for i in range(48)]
    x, y = small.render(specs).astype(int), large.render(specs).astype(int)
    mean = (y[:, 0::2, 0::2] + y[:, 1::2, 0::2] + y[:, 0::2, 1::2] + y[:, 1::2, 1::2] + 2) // 4
    assert np.abs(mean - x).max() <= 1 and (mean == x).mean() > 0.9


def test_hemisphere_ambient_darkens_what_faces_the_ground(sphere_library, gl):
    """Ambient light only (the direct lights off): one level all round at ground 1, and with less light
    from the ground the ball's underside darkens while its top keeps its brightness."""
    r = Renderer(sphere_library, RenderConfig(size=SIZE, variations=VariationConfig.parse("none")), ctx=gl)
    specs = [r.spec_at(0)]
    red = {}
    for ground in (1.0, 0.2):
        params = r.params(specs)
        params["cam_distance"][:] = 2.0
        params["light_col"][:] = 0.0
        params["ambient_ground"][:] = ground
        red[ground] = r.render(specs, params=params)[0, ..., 0].astype(float)
    ball = red[1.0] < 250  # the ball's pixels (the background is white)
    rows = np.nonzero(ball.any(axis=1))[0]
    top, bottom = slice(rows[0] + 2, rows[0] + 6), slice(rows[-1] - 5, rows[-1] - 1)

    def mean(img, band):
        return img[band][ball[band]].mean()

    assert abs(mean(red[1.0], top) - mean(red[1.0], bottom)) < 4
    assert mean(red[0.2], bottom) < mean(red[1.0], bottom) - 20
    assert mean(red[0.2], top) > mean(red[0.2], bottom) + 20


def test_hemisphere_ground_is_drawn_in_range_and_off_with_lighting():
    from renderer.sampling import draw_params

    v = VariationConfig()
    v = replace(v, lighting=replace(v.lighting, ground=(0.3, 0.6)))
    t = draw_params(v, 0, ["car/a"] * 200, np.arange(200))
    assert t["ambient_ground"].min() >= 0.3 and t["ambient_ground"].max() <= 0.6 and t["ambient_ground"].std() > 0.05
    off = draw_params(replace(v, lighting=replace(v.lighting, enabled=False)), 0, ["car/a"] * 20, np.arange(20))
    assert (off["ambient_ground"] == 1.0).all()
    # the new column leaves every other lighting draw as it was
    base = draw_params(VariationConfig(), 0, ["car/a"] * 200, np.arange(200))
    assert np.array_equal(base["ambient"], t["ambient"]) and np.array_equal(base["light_dir"], t["light_dir"])


def test_contact_shadow_darkens_the_ground_under_the_model_and_nothing_else(sphere_library, gl):
    """A red ball on white, seen from above: the shadow darkens background pixels just below the ball, never
    the ball itself and never a pixel above it; seen from below the ground, and for classes photographed in
    the air, there is none."""
    r = Renderer(sphere_library, RenderConfig(size=SIZE, supersample=1, variations=VariationConfig.parse("none")),
                 ctx=gl)
    specs = [r.spec_at(0)]
    out = {}
    for darkness, elevation in ((0.0, 30.0), (0.8, 30.0)):
        params = r.params(specs)
        params["cam_distance"][:] = 2.0
        params["cam_elevation"][:] = elevation
        params["shadow"][:] = darkness
        out[darkness, elevation] = r.render(specs, params=params, masks=True)
    (plain, mask), (shaded, mask2) = out[0.0, 30.0], out[0.8, 30.0]
    assert np.array_equal(mask, mask2)  # the shadow is not a thing: the mask is unchanged
    model, darker = mask[0] == 255, (shaded[0].astype(int) < plain[0].astype(int) - 8).any(axis=-1)
    assert np.array_equal(shaded[0][model], plain[0][model])
    assert (shaded[0] <= plain[0]).all() and darker.sum() > 20 and not (darker & model).any()
    rows = np.nonzero(model.any(axis=1))[0]  # image rows run top-down
    assert np.nonzero(darker.any(axis=1))[0].min() > (rows[0] + rows[-1]) / 2  # below the ball's middle
    below = r.params(specs)
    below["cam_distance"][:], below["cam_elevation"][:], below["shadow"][:] = 2.0, -10.0, 0.8
    none = r.params(specs)
    none["cam_distance"][:], none["cam_elevation"][:], none["shadow"][:] = 2.0, -10.0, 0.0
    assert np.array_equal(r.render(specs, params=below), r.render(specs, params=none))


def test_contact_shadow_is_drawn_per_class_and_leaves_other_draws_alone():
    from renderer.sampling import draw_params

    v = VariationConfig()
    v = replace(v, lighting=replace(v.lighting, shadow=(0.3, 0.7)))
    keys = ["car/a"] * 100 + ["airplane/b"] * 100
    t = draw_params(v, 0, keys, np.arange(200))
    car, plane = t["shadow"][:100], t["shadow"][100:]
    assert car.min() >= 0.3 and car.max() <= 0.7 and car.std() > 0.05 and (plane == 0).all()
    assert (draw_params(VariationConfig(), 0, keys, np.arange(200))["shadow"] == 0).all()  # off by default
    off = draw_params(replace(v, lighting=replace(v.lighting, enabled=False)), 0, keys, np.arange(200))
    assert (off["shadow"] == 0).all()
    base = draw_params(VariationConfig(), 0, keys, np.arange(200))
    assert all(np.array_equal(base[k], t[k]) for k in ("ambient", "ambient_ground", "light_dir", "cam_elevation"))


def test_a_class_palette_paints_that_class_and_leaves_the_others_alone():
    from renderer.sampling import draw_params
    from renderer.variations import HORSE_COATS

    v = VariationConfig()
    coats = replace(v, texture=replace(v.texture, paint_by_class={"horse": HORSE_COATS}))
    keys = ["horse/a"] * 300 + ["car/b"] * 300
    base, t = draw_params(v, 0, keys, np.arange(600)), draw_params(coats, 0, keys, np.arange(600))
    painted = (t["tex_mode"] == 1) & (np.arange(600) < 300)
    painted &= np.abs(t["tex_color1"] - base["tex_color1"]).max(axis=1) > 0  # the paints that changed
    assert painted.sum() > 50  # most solid-colour horses now wear a coat colour
    nearest = np.abs(t["tex_color1"][painted][:, None] - np.array(HORSE_COATS)[None]).max(axis=2).min(axis=1)
    assert nearest.max() <= v.texture.paint_jitter + 1e-9
    for k in base:  # the cars, and every other parameter, are untouched
        assert np.array_equal(base[k][300:], t[k][300:]), k
        if k != "tex_color1":
            assert np.array_equal(base[k], t[k]), k


def test_silhouette_framing_fills_the_configured_range(default_library, gl):
    """With `fill`, the longer side of each model's projected bounding box spans that fraction of the
    frame, whatever the model's shape (long trains and wide planes included)."""
    base = VariationConfig.parse("camera")
    cam = replace(base.camera, fill=(0.6, 0.9), jitter=(0.0, 0.0))
    r = Renderer(default_library, RenderConfig(size=SIZE, variations=replace(base, camera=cam)), ctx=gl)
    specs = [r.spec_at(i) for i in range(96)]
    _, masks = r.render(specs, masks=True)
    fill = r.params(specs)["cam_fill"]
    for mask, f in zip(masks, fill, strict=True):
        ys, xs = np.nonzero(mask)
        extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) / SIZE
        assert abs(extent - f) < 3 / SIZE, (extent, f)
        assert 0.6 - 3 / SIZE <= extent <= 0.9 + 3 / SIZE


def test_camera_priors_follow_the_class(default_library, gl):
    """Ground vehicles are seen from near eye level, per the class table; other classes use the default."""
    base = VariationConfig.parse("camera")
    r = Renderer(default_library, RenderConfig(size=32, variations=base), ctx=gl)
    specs = [r.spec_at(i) for i in range(400)]
    params = r.params(specs)
    labels = np.array([r.models[s.model].label for s in specs])
    for label in set(labels):
        lo, hi = base.camera.elevation_for(label)
        el = params["cam_elevation"][labels == label]
        assert lo <= el.min() and el.max() <= hi
    assert base.camera.elevation_for("car") != base.camera.elevation
    assert base.camera.elevation_for("Automobile") == base.camera.elevation_for("car")  # aliases, any case
    assert base.camera.elevation_for("teapot") == base.camera.elevation


def test_scenes_by_class_keep_each_class_to_its_scenes(default_library, gl):
    """With per-class scenes, every embedded background of a class is of a kind listed for it, all its kinds
    and images still appear, classes not listed keep every scene, and nothing else about a sample changes."""
    from assets.images import N_IMAGES, SCENE_KINDS

    base = VariationConfig.parse("all")
    scenes = {"car": ("city", "foliage"), "airplane": ("clouds",)}
    v = replace(base, background=replace(base.background, scenes_by_class=scenes))
    plain = Renderer(default_library, RenderConfig(size=32, variations=base), ctx=gl)
    picky = Renderer(default_library, RenderConfig(size=32, variations=v), ctx=gl)
    specs = [plain.spec_at(i) for i in range(600)]
    a, b = plain.params(specs), picky.params(specs)
    labels = np.array([plain.models[s.model].label for s in specs])
    for label, kinds in scenes.items():
        got = b["bg_image"][labels == label]
        assert {SCENE_KINDS[i % len(SCENE_KINDS)] for i in got} == set(kinds)
        assert len(set(got)) == len(kinds) * (N_IMAGES // len(SCENE_KINDS))
    others = ~np.isin(labels, list(scenes))
    assert others.any()
    np.testing.assert_array_equal(a["bg_image"][others], b["bg_image"][others])
    assert all(np.array_equal(a[k], b[k]) for k in a if k != "bg_image")
    with pytest.raises(ValueError, match="unknown scene kinds"):
        replace(base.background, scenes_by_class={"car": ("moon",)})

def _solid(path, colour, side=8):
    Image.fromarray(np.full((side, side, 3), colour, np.uint8)).save(path)


def test_background_folder_is_used_whole(sphere_library, gl, tmp_path):
    """1,000 distinct solid colours in ten sub-folders: a batch shows far more than 256 of them (the old
    loader kept the first 256 files in name order, all from the first sub-folder)."""
    folder = tmp_path / "bg"
    for i in range(1000):
        sub = folder / f"part{i // 100}"
        sub.mkdir(parents=True, exist_ok=True)
        _solid(sub / f"{i:04d}.png", ((i % 10) * 25, (i // 10 % 10) * 25, (i // 100) * 25))
    base = VariationConfig.parse("background")
    bg = replace(base.background, mode_weights=(0, 0, 0, 1), image_dir=folder)
    r = Renderer(sphere_library, RenderConfig(size=32, variations=replace(base, background=bg)), ctx=gl)
    assert r.counts.backgrounds == 1000
    specs = [r.spec_at(i) for i in range(1024)]
    corners = r.render(specs)[:, 1, 1].astype(int)
    colours = {tuple(int(round(c / 25)) for c in px) for px in corners}
    assert len(colours) > 600
    assert len({c[2] for c in colours}) == 10  # every sub-folder


def test_background_folder_larger_than_a_texture_array(sphere_library, gl, tmp_path):
    """More images than GL array layers: packed as tiles, each still shown whole and alone."""
    layers = gl.info["GL_MAX_ARRAY_TEXTURE_LAYERS"]
    folder = tmp_path / "many"
    folder.mkdir()
    n = layers + 300
    for i in range(n):
        _solid(folder / f"{i:05d}.png", ((i % 16) * 16, (i // 16 % 16) * 16, (i // 256) * 16))
    base = VariationConfig.parse("background")
    bg = replace(base.background, mode_weights=(0, 0, 0, 1), image_dir=folder)
    r = Renderer(sphere_library, RenderConfig(size=32, variations=replace(base, background=bg)), ctx=gl)
    assert r.counts.backgrounds == n and r._bg_tiles > 1
    specs = [r.spec_at(i) for i in range(256)]
    images, masks = r.render(specs, masks=True)
    want = r.params(specs)["bg_image"]
    for img, mask, k in zip(images, masks, want, strict=True):
        expected = np.array([(k % 16) * 16, (k // 16 % 16) * 16, (k // 256) * 16])
        background = img[mask == 0].astype(int)
        assert np.abs(background - expected).max() <= 2  # its own colour, no neighbour's bleeding in


def test_corrupt_and_tiny_images_are_reported_and_skipped(tmp_path):
    _solid(tmp_path / "good.png", (10, 200, 30), side=32)
    _solid(tmp_path / "tiny.png", (0, 0, 0), side=4)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    messages = []
    data = load_image_folder(tmp_path, 64, on_skip=messages.append)
    assert len(data) == 1 and tuple(data[0, 0, 0, :3]) == (10, 200, 30)
    assert len(messages) == 2
    assert any("tiny.png" in m and "too small" in m for m in messages)
    assert any("broken.jpg" in m and "unreadable" in m for m in messages)
    assert all("\n" not in m for m in messages)
    with pytest.raises(FileNotFoundError, match="no readable images"):
        load_image_folder(_only(tmp_path, "broken.jpg"), 64)


def _only(folder, name):
    sub = folder / "only"
    sub.mkdir()
    (sub / name).write_bytes((folder / name).read_bytes())
    return sub


def test_camera_effects_are_deterministic_and_only_touch_pixels(default_library, gl):
    """Sensor effects (white balance, blur, noise, JPEG) change the image, never the mask, and the same
    sample gives the same grain and the same JPEG blocks in any batch."""
    on = Renderer(default_library, RenderConfig(size=32, variations=VariationConfig.parse("sensor")), ctx=gl)
    off = Renderer(default_library, RenderConfig(size=32, variations=VariationConfig.parse("none")), ctx=gl)
    specs = [on.spec_at(i) for i in range(40)]
    a, ma = on.render(specs, masks=True)
    b, mb = off.render(specs, masks=True)
    np.testing.assert_array_equal(ma, mb)
    params = on.params(specs)
    assert (params["sensor_jpeg"] > 0).any() and (params["sensor_jpeg"] == 0).any()
    assert (np.abs(a.astype(int) - b.astype(int)).max(axis=(1, 2, 3)) > 0).all()
    again = on.render(specs[::-1])[::-1]
    np.testing.assert_array_equal(a, again)


def test_jpeg_matches_pillow_byte_for_byte(default_library, gl):
    """The camera effects' JPEG runs through torchvision's libjpeg for speed; every coded render must be
    what Pillow's encoder at the same quality gives, so the switch changed no image."""
    from renderer.sensor import apply_jpeg, jpeg_pillow

    r = Renderer(default_library, RenderConfig(size=32, variations=VariationConfig.parse("none")), ctx=gl)
    images = r.render([r.spec_at(i) for i in range(24)])
    qualities = np.array([0, 40, 95, 67] * 6)  # 0: left alone
    coded = apply_jpeg(images, {"sensor_jpeg": qualities})
    for img, out, q in zip(images, coded, qualities, strict=True):
        np.testing.assert_array_equal(out, jpeg_pillow(img, int(q)) if q else img)
    assert (coded != images).any()
