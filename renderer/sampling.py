"""Drawing the latent parameters of a batch of images from (seed, model, index).

The random numbers come from a counter-based hash (splitmix64) of (seed, model key, index,
variation, draw number), computed for a whole batch at once in numpy. So an image never depends
on batch size, order, worker or process, and switching one variation on or off leaves the
parameters of the others untouched. Parameters live in a `ParamTable`: one numpy column per
parameter, one row per image; `ParamTable.row(i)` gives the plain dict written to manifests.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from .variations import VARIATION_NAMES, VariationConfig

TEXTURE_MODES = ("original", "solid", "procedural", "image")
BACKGROUND_MODES = ("solid", "gradient", "noise", "image")
PROCEDURAL_KINDS = ("checker", "stripes", "noise", "dots")
MAX_LIGHTS = 4
MAX_OCCLUDERS = 4

_M1, _M2, _GOLD = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def model_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def uniforms(seed: int, model_hashes: np.ndarray, indices: np.ndarray, variation: str, n: int) -> np.ndarray:
    """(B, n) uniforms in [0, 1): a pure function of each row's (seed, model, index) and `variation`."""
    with np.errstate(over="ignore"):
        h = np.full(len(indices), np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
        for word in (np.asarray(model_hashes, dtype=np.uint64), np.asarray(indices, dtype=np.uint64),
                     np.uint64(VARIATION_NAMES.index(variation) + 1)):
            h = _mix64(h * _GOLD + word)
        x = h[:, None] + (np.arange(1, n + 1, dtype=np.uint64) * _GOLD)[None, :]
        x = _mix64(x)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


class ParamTable(dict):
    """Columns of per-image parameters (numpy arrays with the batch on axis 0)."""

    def __len__(self) -> int:  # number of images, not of columns
        return len(self["cam_azimuth"]) if "cam_azimuth" in self else 0

    def take(self, rows) -> ParamTable:
        return ParamTable({k: v[rows] for k, v in self.items()})

    def row(self, i: int) -> dict:
        """One image's parameters as plain JSON-able values, grouped by variation."""
        return self.take(slice(i, i + 1)).rows()[0]

    def rows(self) -> list[dict]:
        """Every image's parameters as plain JSON-able values (rounded once per column)."""
        def col(k, nd=4):
            return np.round(self[k], nd).tolist()

        tex_mode, tex_kind, bg_mode = self["tex_mode"].tolist(), self["tex_kind"].tolist(), self["bg_mode"].tolist()
        c = {k: col(k) for k in ("tex_color1", "tex_color2", "tex_scale", "tex_dir", "specular", "ambient", "light_dir",
                                 "light_col", "ambient_ground", "shadow", "bg_color1", "bg_color2", "bg_angle",
                                 "bg_noise", "bg_crop",
                                 "cam_distance", "cam_fill", "cam_jitter", "occ_centre", "occ_depth", "occ_half",
                                 "occ_angle", "occ_color", "aug_crop", "aug_contrast", "aug_illum")}
        c.update({k: col(k, 3) for k in ("cam_azimuth", "cam_elevation", "cam_roll", "cam_fov", "aug_shear")})
        shin, temps = col("shininess", 2), col("light_temp", 0)
        ints = {k: self[k].tolist() for k in ("tex_image", "bg_image", "n_lights", "n_occluders", "sensor_jpeg")}
        sensor = {k: col(k) for k in ("sensor_wb", "sensor_blur", "sensor_noise")}
        patterned, mirror = self["occ_pattern"].tolist(), self["aug_mirror"].tolist()
        out = []
        for i in range(len(self)):
            n_l, n_o = ints["n_lights"][i], ints["n_occluders"][i]
            out.append({
                "texture": {"mode": TEXTURE_MODES[tex_mode[i]], "kind": PROCEDURAL_KINDS[tex_kind[i]],
                            "color1": c["tex_color1"][i], "color2": c["tex_color2"][i], "scale": c["tex_scale"][i],
                            "direction": c["tex_dir"][i], "image": ints["tex_image"][i],
                            "specular": c["specular"][i], "shininess": shin[i]},
                "lighting": {"ambient": c["ambient"][i], "ground": c["ambient_ground"][i], "shadow": c["shadow"][i],
                             "directions": c["light_dir"][i][:n_l],
                             "colors": c["light_col"][i][:n_l], "temperatures": temps[i][:n_l]},
                "background": {"mode": BACKGROUND_MODES[bg_mode[i]], "color1": c["bg_color1"][i],
                               "color2": c["bg_color2"][i], "angle": c["bg_angle"][i], "noise_scale": c["bg_noise"][i],
                               "image": ints["bg_image"][i], "crop": c["bg_crop"][i]},
                "camera": {"azimuth": c["cam_azimuth"][i], "elevation": c["cam_elevation"][i],
                           "distance": c["cam_distance"][i], "fill": c["cam_fill"][i], "roll": c["cam_roll"][i],
                           "fov": c["cam_fov"][i],
                           "jitter": c["cam_jitter"][i]},
                "occluders": [{"centre": c["occ_centre"][i][j], "depth": c["occ_depth"][i][j],
                               "half_size": c["occ_half"][i][j], "angle": c["occ_angle"][i][j],
                               "color": c["occ_color"][i][j], "patterned": patterned[i][j]} for j in range(n_o)],
                "augment2d": {"mirror": mirror[i], "crop": c["aug_crop"][i], "shear": c["aug_shear"][i],
                              "contrast": c["aug_contrast"][i], "illumination": c["aug_illum"][i]},
                "sensor": {"white_balance": sensor["sensor_wb"][i], "blur": sensor["sensor_blur"][i],
                           "noise": sensor["sensor_noise"][i], "jpeg_quality": ints["sensor_jpeg"][i]},
            })
        return out


@dataclass(frozen=True)
class ImageCounts:
    textures: int = 1
    backgrounds: int = 1


def draw_params(
    config: VariationConfig,
    seed: int,
    model_keys: list[str],
    indices,
    counts: ImageCounts = ImageCounts(),
    labels: list[str] | None = None,
) -> ParamTable:
    """Parameters for images (model_keys[i], indices[i]) under `seed`; `labels` (each image's class, for
    the per-class camera priors) default to the key's first part ('car/sedan' -> 'car')."""
    indices = np.asarray(indices, dtype=np.int64)
    if len(model_keys) != len(indices):
        raise ValueError("one model key per index")
    if labels is None:
        labels = [k.split("/", 1)[0] for k in model_keys]
    hashes = np.array([model_hash(k) for k in model_keys], dtype=np.uint64)
    b = len(indices)
    t = ParamTable()

    def u(variation: str, n: int) -> np.ndarray:
        return uniforms(seed, hashes, indices, variation, n)

    _texture(t, config, u("texture", 16), b, counts.textures, labels)
    _lighting(t, config, u("lighting", 1 + 5 * MAX_LIGHTS + 4), b, labels)
    _background(t, config, u("background", 13), b, counts.backgrounds, labels)
    _camera(t, config, u("camera", 8), b, labels)
    _occluders(t, config, u("occlusion", 2 + 10 * MAX_OCCLUDERS), b)
    _augment(t, config, u("augment2d", 8), b)
    _sensor(t, config, u("sensor", 8), b)
    return t


# ------------------------------------------------------------------ per variation


def _lerp(x: np.ndarray, lo_hi) -> np.ndarray:
    lo, hi = lo_hi
    return lo + (hi - lo) * x


def _lerp_by_class(x: np.ndarray, labels: list[str], range_of) -> np.ndarray:
    """_lerp with each image's range from its class (`range_of(label)`, looked up once per class)."""
    ranges = {label: range_of(label) for label in set(labels)}
    lo_hi = np.array([ranges[label] for label in labels], dtype=np.float64).reshape(len(labels), 2)
    return lo_hi[:, 0] + (lo_hi[:, 1] - lo_hi[:, 0]) * x


def _categorical(x: np.ndarray, weights) -> np.ndarray:
    w = np.cumsum(np.asarray(weights, dtype=np.float64))
    return np.minimum(np.searchsorted(w / w[-1], x, side="right"), len(w) - 1)


def _colours(u: np.ndarray, saturation: float = 1.0) -> np.ndarray:
    """(B, 3) sRGB colours from (B, 3) uniforms: uniform hue, saturation up to `saturation` (mostly near
    it), not too dark."""
    h, s, v = u[:, 0], saturation * u[:, 1] ** 0.7, 0.15 + 0.85 * u[:, 2]
    k = (np.array([5.0, 3.0, 1.0])[None, :] + h[:, None] * 6.0) % 6.0
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _unit_vectors(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    z = 2.0 * u1 - 1.0
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    phi = 2.0 * math.pi * u2
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _texture(t: ParamTable, config: VariationConfig, u: np.ndarray, b: int, n_images: int,
             labels: list[str]) -> None:
    c, canon = config.texture, config.canonical
    t["tex_mode"] = _categorical(u[:, 0], c.mode_weights)
    kinds = [PROCEDURAL_KINDS.index(k) for k in c.procedural_kinds]
    t["tex_kind"] = np.asarray(kinds)[np.minimum((u[:, 1] * len(kinds)).astype(int), len(kinds) - 1)]
    t["tex_color1"] = _colours(u[:, 2:5])
    t["tex_color2"] = _colours(u[:, 5:8])
    if c.paint_probability > 0:
        # a solid colour is a paint most of the time: one of the palette (the class's own, if it has one),
        # jittered (uniforms 14, 15 and 5-7, which a solid colour does not otherwise use)
        paint = np.empty((b, 3))
        has = np.zeros(b, bool)
        classes = np.asarray(labels, dtype=object)
        for label in set(labels):
            paints = np.asarray(c.paints_for(label), dtype=np.float64).reshape(-1, 3)
            if not len(paints):
                continue
            rows = np.nonzero(classes == label)[0]
            pick = np.minimum((u[rows, 15] * len(paints)).astype(int), len(paints) - 1)
            paint[rows], has[rows] = paints[pick], True
        paint = np.clip(paint + c.paint_jitter * (2.0 * u[:, 5:8] - 1.0), 0.0, 1.0)
        use = has & (t["tex_mode"] == 1) & (u[:, 14] < c.paint_probability)
        t["tex_color1"][use] = paint[use]
    t["tex_scale"] = _lerp(u[:, 8], c.scale)
    t["tex_dir"] = _unit_vectors(u[:, 9], u[:, 10])
    t["tex_image"] = np.minimum((u[:, 11] * n_images).astype(int), n_images - 1)
    t["specular"] = _lerp(u[:, 12], c.specular)
    t["shininess"] = _lerp(u[:, 13], c.shininess)
    if not c.enabled:
        t["tex_mode"][:] = 0
        t["specular"][:] = canon.specular
        t["shininess"][:] = canon.shininess


def kelvin_to_rgb(kelvin) -> np.ndarray:
    """Linear RGB of a black body, max component 1 (Tanner Helland's fit, then sRGB -> linear)."""
    t = np.asarray(kelvin, dtype=np.float64) / 100.0
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(t <= 66, 255.0, 329.698727446 * np.maximum(t - 60, 1e-6) ** -0.1332047592)
        g = np.where(t <= 66, 99.4708025861 * np.log(t) - 161.1195681661,
                     288.1221695283 * np.maximum(t - 60, 1e-6) ** -0.0755148492)
        blue = np.where(t >= 66, 255.0,
                        np.where(t <= 19, 0.0, 138.5177312231 * np.log(np.maximum(t - 10, 1e-6)) - 305.0447927307))
    srgb = np.clip(np.stack([r, g, blue], axis=-1) / 255.0, 0, 1)
    lin = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    return lin / np.maximum(lin.max(axis=-1, keepdims=True), 1e-6)


def _lighting(t: ParamTable, config: VariationConfig, u: np.ndarray, b: int, labels: list[str]) -> None:
    c, canon = config.lighting, config.canonical
    lo, hi = c.n_lights
    t["n_lights"] = np.minimum(lo + (u[:, 0] * (hi - lo + 1)).astype(int), min(hi, MAX_LIGHTS))
    v = u[:, 1:1 + 5 * MAX_LIGHTS].reshape(b, MAX_LIGHTS, 5)
    el = np.radians(_lerp(v[..., 0], c.elevation))
    az = np.radians(_lerp(v[..., 1], c.azimuth))
    # view space: the camera looks down -z; azimuth 0 puts the light behind the camera
    t["light_dir"] = np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], axis=-1)
    t["light_temp"] = _lerp(v[..., 2], c.temperature)
    t["light_col"] = kelvin_to_rgb(t["light_temp"]) * _lerp(v[..., 3], c.intensity)[..., None]
    # columns by position: a column added later takes a new position, so older ones keep their values
    k = 1 + 5 * MAX_LIGHTS
    a = _lerp(u[:, k], c.ambient)
    t["ambient"] = kelvin_to_rgb(_lerp(u[:, k + 1], c.temperature)) * a[:, None]
    t["ambient_ground"] = _lerp(u[:, k + 2], c.ground)
    t["shadow"] = _lerp_by_class(u[:, k + 3], labels, c.shadow_for)
    if not c.enabled:
        d = np.asarray(canon.light_direction, dtype=np.float64)
        t["n_lights"][:] = 1
        t["light_dir"][:, 0] = d / np.linalg.norm(d)
        t["light_col"][:, 0] = canon.light_intensity
        t["light_temp"][:, 0] = 6500.0
        t["ambient"][:] = canon.ambient
        t["ambient_ground"][:] = 1.0
        t["shadow"][:] = 0.0
    off = np.arange(MAX_LIGHTS)[None, :] >= t["n_lights"][:, None]
    t["light_col"][off] = 0.0


def _background(t: ParamTable, config: VariationConfig, u: np.ndarray, b: int, n_images: int,
                labels: list[str]) -> None:
    c, canon = config.background, config.canonical
    t["bg_mode"] = _categorical(u[:, 0], c.mode_weights)
    t["bg_color1"] = _colours(u[:, 1:4], c.saturation)
    t["bg_color2"] = _colours(u[:, 4:7], c.saturation)
    t["bg_angle"] = 2.0 * math.pi * u[:, 7]
    t["bg_noise"] = _lerp(u[:, 8], c.noise_scale)
    t["bg_image"] = np.minimum((u[:, 9] * n_images).astype(int), n_images - 1)
    if c.image_dir is None and c.scenes_by_class:
        _scenes_by_class(t, c, u[:, 9], labels, n_images)
    side = _lerp(u[:, 10], c.crop_fraction)
    u0 = u[:, 11] * (1 - side)
    v0 = u[:, 12] * (1 - side)
    t["bg_crop"] = np.stack([u0, v0, u0 + side, v0 + side], axis=1)
    if not c.enabled:
        t["bg_mode"][:] = 0
        t["bg_color1"][:] = canon.background
        t["bg_color2"][:] = canon.background


def _scenes_by_class(t: ParamTable, c, x: np.ndarray, labels: list[str], n_images: int) -> None:
    """Embedded backgrounds only of the scene kinds each class is shown in: the same uniform picks the kind
    among the allowed ones and then one of that kind's images (image i is of kind i % len(SCENE_KINDS))."""
    from assets.images import SCENE_KINDS

    n_kinds = len(SCENE_KINDS)
    per_kind = max(n_images // n_kinds, 1)
    by_label = np.asarray(labels)
    for label in set(labels):
        kinds = c.scenes_for(label)
        if kinds is None:
            continue
        rows = by_label == label
        scaled = x[rows] * len(kinds)
        k = np.minimum(scaled.astype(int), len(kinds) - 1)
        within = scaled - k  # the rest of the uniform, in [0, 1): which image of the kind
        j = np.minimum((within * per_kind).astype(int), per_kind - 1)
        t["bg_image"][rows] = np.minimum(np.asarray(kinds)[k] + n_kinds * j, n_images - 1)


def _camera(t: ParamTable, config: VariationConfig, u: np.ndarray, b: int, labels: list[str]) -> None:
    c, canon = config.camera, config.canonical
    t["cam_azimuth"] = _lerp(u[:, 0], c.azimuth)
    t["cam_elevation"] = _lerp_by_class(u[:, 1], labels, c.elevation_for)
    t["cam_distance"] = _lerp(u[:, 2], c.distance)
    # 0 = no silhouette framing (the bounding sphere frames the model); drawn from uniform 7, unused so far
    t["cam_fill"] = _lerp(u[:, 7], c.fill) if c.fill is not None else np.zeros(b)
    t["cam_roll"] = _lerp(u[:, 3], c.roll)
    t["cam_fov"] = _lerp(u[:, 4], c.fov)
    jit, ang = _lerp(u[:, 5], c.jitter), 2.0 * math.pi * u[:, 6]
    t["cam_jitter"] = np.stack([jit * np.cos(ang), jit * np.sin(ang)], axis=1)
    if not c.enabled:
        t["cam_azimuth"][:] = canon.azimuth
        t["cam_elevation"][:] = canon.elevation
        t["cam_distance"][:] = canon.distance
        t["cam_fill"][:] = canon.fill or 0.0
        t["cam_roll"][:] = 0.0
        t["cam_fov"][:] = canon.fov
        t["cam_jitter"][:] = 0.0


def _occluders(t: ParamTable, config: VariationConfig, u: np.ndarray, b: int) -> None:
    c = config.occlusion
    lo, hi = c.count
    hi = min(hi, MAX_OCCLUDERS)
    n = np.minimum(lo + (u[:, 1] * (hi - lo + 1)).astype(int), hi)
    n[u[:, 0] >= c.probability] = 0
    if not c.enabled:
        n[:] = 0
    t["n_occluders"] = n
    v = u[:, 2:].reshape(b, MAX_OCCLUDERS, 10)
    # centres inside the model's projected disc, so an occluder really covers part of it
    rad, ang = 0.7 * np.sqrt(v[..., 0]), 2.0 * math.pi * v[..., 1]
    t["occ_centre"] = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=-1)
    t["occ_depth"] = 0.35 + 0.25 * v[..., 2]
    size = _lerp(v[..., 3], c.size)
    aspect = np.exp(_lerp(v[..., 4], c.log_aspect))
    t["occ_half"] = np.stack([size * np.sqrt(aspect), size / np.sqrt(aspect)], axis=-1)
    t["occ_angle"] = math.pi * v[..., 5]
    t["occ_color"] = _colours(v[..., 6:9].reshape(-1, 3), c.saturation).reshape(b, MAX_OCCLUDERS, 3)
    t["occ_pattern"] = v[..., 9] < c.colour_noise


def _augment(t: ParamTable, config: VariationConfig, u: np.ndarray, b: int) -> None:
    c = config.augment2d
    side = _lerp(u[:, 1], c.crop)
    t["aug_mirror"] = u[:, 0] < c.mirror
    t["aug_crop"] = np.stack([side, (u[:, 2] - 0.5) * (1 - side), (u[:, 3] - 0.5) * (1 - side)], axis=1)
    t["aug_shear"] = _lerp(u[:, 4], c.shear)
    t["aug_contrast"] = _lerp(u[:, 5], c.contrast)
    t["aug_illum"] = _lerp(u[:, 6], c.illumination)
    if not c.enabled:
        t["aug_mirror"][:] = False
        t["aug_crop"][:] = (1.0, 0.0, 0.0)
        t["aug_shear"][:] = 0.0
        t["aug_contrast"][:] = 1.0
        t["aug_illum"][:] = 1.0


def _sensor(t: ParamTable, config: VariationConfig, u: np.ndarray, b: int) -> None:
    c = config.sensor
    t["sensor_wb"] = 1.0 + c.white_balance * (2.0 * u[:, 0:3] - 1.0)
    t["sensor_blur"] = _lerp(u[:, 3], c.blur)
    t["sensor_noise"] = _lerp(u[:, 4], c.noise)
    lo, hi = c.jpeg_quality
    t["sensor_jpeg"] = np.where(u[:, 5] < c.jpeg_probability, lo + (u[:, 6] * (hi - lo + 1)).astype(int), 0)
    t["sensor_jpeg"] = np.minimum(t["sensor_jpeg"], hi)
    # the seed of the image's own noise field: from the hash, so the same sample always gets the same grain
    t["sensor_seed"] = (u[:, 7] * 2.0**53).astype(np.int64)
    if not c.enabled:
        t["sensor_wb"][:] = 1.0
        t["sensor_blur"][:] = 0.0
        t["sensor_noise"][:] = 0.0
        t["sensor_jpeg"][:] = 0
