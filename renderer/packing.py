"""Turning a batch's ParamTable into the per-instance rows and light blocks the shaders read.

Layout (floats per sample, in draw order), read by the VAOs with byte-skipping formats:
    0  mvp (column-major mat4)          28 texture: mode, kind, image layer, scale
    16 view rows [R|t] (3 x vec4)        32 colour 1 (linear), specular
                                         36 colour 2 (linear), shininess
                                         40 stripe direction, has UVs
                                         44 cell, slot, contrast, illumination
    48 background: mode, layer, angle, noise scale
    52 colour 1 (sRGB), noise offset     56 colour 2 (sRGB), cell
    60 crop u0 v0 u1 v1
    64 source <- destination affine of the 2D augmentation, row 0 (cell units about the centre), contrast
    68 row 1, illumination
    72 contact shadow: centre x, ground y, centre z (object space), darkness   76 half extents x, z, 0, 0
Lights (uniform block, vec4 x 10 per sample): 4 directions, 4 colours, ambient (w = count), the sky's
direction in view space (w = ground ambient / sky ambient).

The 2D augmentation (mirror, crop, shear) is an affine map of the image. Applied to clip-space x, y it
commutes with the perspective divide, so it is folded into each MVP: the rendered image comes out
warped, with no resampling pass (and no resampling blur). Backgrounds, which fill their cell whatever
the warp, sample their pattern at the inverse-mapped position instead.
"""

from __future__ import annotations

import numpy as np

from .camera import eye_distance, projection_matrices, view_matrices
from .sampling import MAX_LIGHTS, MAX_OCCLUDERS, ParamTable

SAMPLE_FLOATS = 80
AMBIENT_VEC4 = 2 * MAX_LIGHTS
SKY_VEC4 = AMBIENT_VEC4 + 1
LIGHT_VEC4S = SKY_VEC4 + 1
OCCLUDER_FLOATS = 16 + 12 + 4 + 4 + 4


def srgb_to_linear(c) -> np.ndarray:
    """Display gamma 2, as the shaders use (shaders/common.glsl)."""
    c = np.asarray(c, dtype=np.float64)
    return c * c


def augment_matrices(t: ParamTable) -> np.ndarray:
    """(B, 2, 3) source <- destination affines in cell units about the centre: crop . shear . mirror."""
    b = len(t)
    m = np.zeros((b, 3, 3))
    side, ox, oy = t["aug_crop"][:, 0], t["aug_crop"][:, 1], t["aug_crop"][:, 2]
    sign = np.where(t["aug_mirror"], -1.0, 1.0)
    sh = np.tan(np.radians(t["aug_shear"]))
    # crop @ shear @ mirror, multiplied out
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = side * sign, side * sh, ox
    m[:, 1, 1], m[:, 1, 2] = side, oy
    m[:, 2, 2] = 1.0
    return m[:, :2]


def frame_zoom(clip_from_model: np.ndarray, points: list[np.ndarray],
               fill: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(zoom (B,), NDC shift (B, 2)) that make the longer side of the projected bounding box of each
    sample's `points` (P_i, 3) span `fill` of the frame, centred; samples with fill 0 keep zoom 1 and no
    shift. Samples that share a points array (one model) are projected together, each model with its
    own number of points: no padding to the largest."""
    b = len(fill)
    lo, hi = np.empty((b, 2)), np.empty((b, 2))
    for idx in _by_model(points):
        pts = points[idx[0]]
        p = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
        clip = p[None] @ np.transpose(clip_from_model[idx], (0, 2, 1))  # (k, P, 4)
        ndc = clip[..., :2] / np.maximum(clip[..., 3:4], 1e-9)  # every point is in front of the camera
        lo[idx], hi[idx] = ndc.min(axis=1), ndc.max(axis=1)
    half = np.maximum((hi - lo).max(axis=1) / 2.0, 1e-6)
    on = fill > 0
    zoom = np.where(on, fill / half, 1.0)
    shift = np.where(on[:, None], -zoom[:, None] * (lo + hi) / 2.0, 0.0)
    return zoom.reshape(b), shift.reshape(b, 2)


def _by_model(points: list[np.ndarray]) -> list[list[int]]:
    """Indices of the samples that share each points array (one array per model)."""
    groups: dict[int, list[int]] = {}
    for j, pts in enumerate(points):
        groups.setdefault(id(pts), []).append(j)
    return list(groups.values())


def pack(t: ParamTable, cells: np.ndarray, has_uvs: np.ndarray, frame_points: list[np.ndarray] | None = None,
         bg_tiles: int = 1, bg_inset: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(instance rows (B, SAMPLE_FLOATS), light blocks (B, LIGHT_VEC4S, 4), occluder rows (K, ...)).

    `frame_points`: per sample, points on its model (its convex hull, (P, 3); one array per model), for
    framing by silhouette (`cam_fill`) and the contact shadow; `bg_tiles`: background images per side of
    one texture layer, `bg_inset` the margin kept inside each tile, as a fraction of it (see Renderer)."""
    b = len(t)
    rows = np.zeros((b, SAMPLE_FLOATS), np.float32)
    view = view_matrices(t["cam_azimuth"], t["cam_elevation"], t["cam_distance"], t["cam_roll"], t["cam_fov"])
    proj = projection_matrices(t["cam_distance"], t["cam_fov"], np.zeros((b, 2)))
    zoom, shift = np.ones(b), np.zeros((b, 2))
    if frame_points is not None and "cam_fill" in t and (t["cam_fill"] > 0).any():
        zoom, shift = frame_zoom(proj @ view, frame_points, t["cam_fill"])
    # zoom about the frame centre, then shift in NDC after the divide: x' = k x + s w (a change of field of
    # view and a lens shift: perspective and depth are untouched)
    shift = shift + t["cam_jitter"]
    w_row = proj[:, 3, :].copy()
    proj[:, 0, :] = zoom[:, None] * proj[:, 0, :] + shift[:, 0:1] * w_row
    proj[:, 1, :] = zoom[:, None] * proj[:, 1, :] + shift[:, 1:2] * w_row
    # GL rows run bottom-up while images run top-down: conjugate the affine by a y flip
    m = augment_matrices(t)
    flip = np.array([1.0, -1.0])
    lin = m[:, :, :2] * flip[None, :, None] * flip[None, None, :]
    off = m[:, :, 2] * flip[None, :]
    forward = np.linalg.inv(lin)  # destination <- source, NDC (= 2 cell units)
    warp = np.tile(np.eye(4), (b, 1, 1))
    warp[:, :2, :2] = forward
    warp[:, :2, 3] = -np.einsum("bij,bj->bi", forward, 2.0 * off)
    proj = warp @ proj
    rows[:, 0:16] = np.transpose(proj @ view, (0, 2, 1)).reshape(b, 16)
    rows[:, 16:28] = view[:, :3, :].reshape(b, 12)
    rows[:, 28] = t["tex_mode"]
    rows[:, 29] = t["tex_kind"]
    rows[:, 30] = t["tex_image"]
    rows[:, 31] = t["tex_scale"]
    rows[:, 32:35] = srgb_to_linear(t["tex_color1"])
    rows[:, 35] = t["specular"]
    rows[:, 36:39] = srgb_to_linear(t["tex_color2"])
    rows[:, 39] = t["shininess"]
    rows[:, 40:43] = t["tex_dir"]
    rows[:, 43] = has_uvs
    rows[:, 44] = cells
    rows[:, 45] = np.arange(b)  # slot: index into the light block
    rows[:, 46] = t["aug_contrast"]
    rows[:, 47] = t["aug_illum"]
    rows[:, 48] = t["bg_mode"]
    rows[:, 49] = t["bg_image"]
    rows[:, 50] = t["bg_angle"]
    rows[:, 51] = t["bg_noise"]
    rows[:, 52:55] = t["bg_color1"]
    rows[:, 55] = (t["bg_angle"] * 97.0) % 101.0  # noise offset: every noise background differs
    rows[:, 56:59] = t["bg_color2"]
    rows[:, 59] = cells
    rows[:, 60:64] = _tile_crop(t["bg_crop"], t["bg_image"], bg_tiles, bg_inset)
    if bg_tiles > 1:
        rows[:, 49] = t["bg_image"] // (bg_tiles * bg_tiles)
    rows[:, 64:66], rows[:, 66], rows[:, 67] = lin[:, 0], off[:, 0], t["aug_contrast"]
    rows[:, 68:70], rows[:, 70], rows[:, 71] = lin[:, 1], off[:, 1], t["aug_illum"]
    if frame_points is not None and "shadow" in t and (t["shadow"] > 0).any():  # all zero: no shadow pass
        rows[:, 72:80] = _shadow(frame_points, t["shadow"], t["cam_elevation"])

    lights = np.zeros((b, LIGHT_VEC4S, 4), np.float32)
    d = t["light_dir"]
    lights[:, :MAX_LIGHTS, :3] = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
    lights[:, MAX_LIGHTS:2 * MAX_LIGHTS, :3] = t["light_col"]
    lights[:, AMBIENT_VEC4, :3] = t["ambient"]
    lights[:, AMBIENT_VEC4, 3] = t["n_lights"]
    lights[:, SKY_VEC4, :3] = view[:, :3, 1]  # world up, in view space (the view is a rotation there)
    lights[:, SKY_VEC4, 3] = t["ambient_ground"]
    return rows, lights, _occluders(t, proj, cells)


SHADOW_MARGIN = 1.15  # the shadow's extent beyond the model's footprint, as a factor


def _shadow(points: list[np.ndarray], darkness: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """(B, 8) contact-shadow rows: a quad on the ground plane (the model's lowest point, object y up) under
    its footprint. A camera below the ground (elevation < 0) would see the ground from beneath, where no
    shadow shows: none there."""
    lo, hi = np.empty((len(points), 3)), np.empty((len(points), 3))
    for idx in _by_model(points):
        lo[idx], hi[idx] = points[idx[0]].min(axis=0), points[idx[0]].max(axis=0)
    out = np.zeros((len(points), 8), np.float32)
    out[:, 0], out[:, 1], out[:, 2] = (lo[:, 0] + hi[:, 0]) / 2, lo[:, 1], (lo[:, 2] + hi[:, 2]) / 2
    out[:, 3] = np.where(np.asarray(elevation) > 0.0, darkness, 0.0)
    out[:, 4] = SHADOW_MARGIN * (hi[:, 0] - lo[:, 0]) / 2
    out[:, 5] = SHADOW_MARGIN * (hi[:, 2] - lo[:, 2]) / 2
    return out


def _tile_crop(crop: np.ndarray, image: np.ndarray, tiles: int, inset: float) -> np.ndarray:
    """Crop rectangles (u0, v0, u1, v1) of whole images -> the same rectangles in a layer holding
    tiles x tiles images, `inset` (a fraction of a tile) from its edges so that filtering never reads a
    neighbour."""
    if tiles == 1:
        return crop
    k = np.asarray(image) % (tiles * tiles)
    tx, ty = (k % tiles)[:, None], (k // tiles)[:, None]
    c = inset + (1.0 - 2.0 * inset) * crop
    return np.concatenate([(tx + c[:, 0::2]) / tiles, (ty + c[:, 1::2]) / tiles], axis=1)[:, [0, 2, 1, 3]]


def _occluders(t: ParamTable, proj: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """One row per occluder, placed in view space in front of the model (slot = row of t)."""
    n = t["n_occluders"]
    active = np.arange(MAX_OCCLUDERS)[None, :] < n[:, None]
    slot, j = np.nonzero(active)
    k = len(slot)
    out = np.zeros((k, OCCLUDER_FLOATS), np.float32)
    if k == 0:
        return out
    dist, fov = t["cam_distance"][slot], t["cam_fov"][slot]
    z = t["occ_depth"][slot, j] * eye_distance(dist, fov)
    # view-space units per NDC unit at depth z, scaled to the model's projected radius
    scale = z * np.tan(np.radians(fov) / 2.0) / dist
    ang = t["occ_angle"][slot, j]
    c, s = np.cos(ang), np.sin(ang)
    hx, hy = t["occ_half"][slot, j, 0] * scale, t["occ_half"][slot, j, 1] * scale
    model = np.zeros((k, 4, 4))
    model[:, 0, 0], model[:, 0, 1] = c * hx, -s * hy
    model[:, 1, 0], model[:, 1, 1] = s * hx, c * hy
    model[:, 2, 2] = 0.05 * scale
    model[:, 0, 3] = t["occ_centre"][slot, j, 0] * scale
    model[:, 1, 3] = t["occ_centre"][slot, j, 1] * scale
    model[:, 2, 3] = -z
    model[:, 3, 3] = 1.0
    out[:, 0:16] = np.transpose(proj[slot] @ model, (0, 2, 1)).reshape(k, 16)
    normal = np.transpose(np.linalg.inv(model[:, :3, :3]), (0, 2, 1))
    out[:, 16:28] = np.concatenate([normal, np.zeros((k, 3, 1))], axis=2).reshape(k, 12)
    out[:, 28:31] = t["occ_color"][slot, j]
    out[:, 31] = t["occ_pattern"][slot, j]
    out[:, 32] = cells[slot]
    out[:, 33] = slot
    out[:, 34] = 3.0
    out[:, 36] = t["aug_contrast"][slot]
    out[:, 37] = t["aug_illum"][slot]
    return out
