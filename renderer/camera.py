"""Camera matrices for a batch (column-vector convention; transpose when uploading to GLSL).

Models are normalised to the unit sphere at the origin with +y up; the camera orbits it.
"""

from __future__ import annotations

import numpy as np


def eye_distance(distance: np.ndarray, fov_deg: np.ndarray) -> np.ndarray:
    """`distance` times the eye distance at which the unit sphere just fills the frame."""
    return distance / np.sin(np.radians(fov_deg) / 2.0)


def view_matrices(azimuth, elevation, distance, roll, fov) -> np.ndarray:
    """(B, 4, 4) world -> view."""
    az, el = np.radians(azimuth), np.radians(elevation)
    d = eye_distance(distance, fov)
    eye = d[:, None] * np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], axis=1)
    f = -eye / np.linalg.norm(eye, axis=1, keepdims=True)
    s = np.cross(f, np.array([0.0, 1.0, 0.0]))
    degenerate = np.linalg.norm(s, axis=1) < 1e-6  # looking straight up or down
    if degenerate.any():
        s[degenerate] = np.cross(f[degenerate], np.array([0.0, 0.0, 1.0]))
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    u = np.cross(s, f)
    b = len(az)
    view = np.zeros((b, 4, 4))
    view[:, 0, :3], view[:, 1, :3], view[:, 2, :3] = s, u, -f
    view[:, :3, 3] = -np.einsum("bij,bj->bi", view[:, :3, :3], eye)
    view[:, 3, 3] = 1.0
    r = np.radians(roll)
    rz = np.zeros((b, 4, 4))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1] = np.cos(r), -np.sin(r), np.sin(r), np.cos(r)
    rz[:, 2, 2] = rz[:, 3, 3] = 1.0
    return rz @ view


def projection_matrices(distance, fov, jitter) -> np.ndarray:
    """(B, 4, 4) perspective projections with an NDC shift for off-centre jitter."""
    d = eye_distance(distance, fov)
    near, far = np.maximum(0.2 * d, 0.01), d + 1.5  # tight range: depth precision; occluders at >= 0.35 d
    f = 1.0 / np.tan(np.radians(fov) / 2.0)
    b = len(d)
    p = np.zeros((b, 4, 4))
    p[:, 0, 0] = p[:, 1, 1] = f
    p[:, 2, 2] = (far + near) / (near - far)
    p[:, 2, 3] = 2.0 * far * near / (near - far)
    p[:, 3, 2] = -1.0
    # translate in NDC after the divide: x' = x + j w
    p[:, 0, :] += jitter[:, 0:1] * p[:, 3, :]
    p[:, 1, :] += jitter[:, 1:2] * p[:, 3, :]
    return p
