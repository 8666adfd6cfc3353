"""The embedded default models: parametric low-poly objects assembled from trimesh primitives.

Each class has a builder that takes a random generator, so every variant has its own proportions
and colours. `build_default_models()` writes them as GLB files in the standard models-folder layout
(`<class>/<class>_<k>.glb`), once, into a cache folder.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trimesh
from trimesh.creation import box, capsule, cone, cylinder, icosphere

VERSION = 2
VARIANTS = 3
Part = trimesh.Trimesh


def _colour(rng: np.random.Generator, dark: bool = False) -> np.ndarray:
    h = rng.random()
    s, v = rng.uniform(0.3, 0.9), (rng.uniform(0.1, 0.3) if dark else rng.uniform(0.45, 0.95))
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array([*rgb, 1.0])


def _paint(mesh: Part, rgba) -> Part:
    rgba = np.asarray(rgba, dtype=np.float64)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=(np.clip(rgba, 0, 1) * 255).astype(np.uint8))
    return mesh


def _box(extents, centre, rgba) -> Part:
    return _paint(box(extents=extents, transform=trimesh.transformations.translation_matrix(centre)), rgba)


def _rod(a, b, radius, rgba, sections=8) -> Part:
    return _paint(cylinder(radius=radius, segment=np.array([a, b], dtype=np.float64), sections=sections), rgba)


def _wheel(centre, radius, width, rgba, axis=2) -> Part:
    c = np.asarray(centre, dtype=np.float64)
    d = np.zeros(3)
    d[axis] = width / 2
    return _rod(c - d, c + d, radius, rgba, sections=12)


def _sphere(centre, radius, rgba, scale=(1, 1, 1)) -> Part:
    s = icosphere(subdivisions=1, radius=radius)
    s.apply_scale(scale)
    s.apply_translation(centre)
    return _paint(s, rgba)


def _wheels(rng, xs, z_half, radius, width=0.18):
    black = (0.05, 0.05, 0.05, 1)
    return [_wheel((x, radius, s * z_half), radius, width, black) for x in xs for s in (-1, 1)]


def car(rng: np.random.Generator) -> list[Part]:
    length, width = rng.uniform(3.6, 4.8), rng.uniform(1.6, 2.0)
    height, wheel = rng.uniform(0.5, 0.75), rng.uniform(0.3, 0.4)
    body, glass = _colour(rng), (0.15, 0.2, 0.25, 1)
    cabin_len = length * rng.uniform(0.4, 0.6)
    parts = [
        _box((length, height, width), (0, wheel + height / 2, 0), body),
        _box((cabin_len, height * rng.uniform(0.8, 1.1), width * 0.85),
             (rng.uniform(-0.3, 0.1) * length, wheel + height * 1.4, 0), glass),
    ]
    return parts + _wheels(rng, (-length * 0.32, length * 0.32), width / 2, wheel)


def truck(rng: np.random.Generator) -> list[Part]:
    length, width, wheel = rng.uniform(6, 9), rng.uniform(2.2, 2.6), rng.uniform(0.45, 0.55)
    cab_len, box_h = rng.uniform(1.6, 2.2), rng.uniform(2.2, 3.2)
    cab, cargo = _colour(rng), _colour(rng)
    parts = [
        _box((cab_len, box_h * 0.8, width), (length / 2 - cab_len / 2, wheel + box_h * 0.45, 0), cab),
        _box((cab_len * 0.5, box_h * 0.3, width * 0.9), (length / 2 - cab_len * 0.3, wheel + box_h * 0.7, 0),
             (0.15, 0.2, 0.25, 1)),
        _box((length - cab_len - 0.2, box_h, width), (-cab_len / 2 - 0.1, wheel + box_h / 2 + 0.15, 0), cargo),
    ]
    return parts + _wheels(rng, (length * 0.35, -length * 0.15, -length * 0.35), width / 2, wheel)


def bus(rng: np.random.Generator) -> list[Part]:
    length, width, height, wheel = rng.uniform(9, 12), 2.5, rng.uniform(2.6, 3.2), 0.5
    colour = _colour(rng)
    win = (0.1, 0.12, 0.15, 1)
    parts = [
        _box((length, height, width), (0, wheel + height / 2, 0), colour),
        _box((length * 0.9, height * 0.3, width * 1.02), (-length * 0.03, wheel + height * 0.68, 0), win),
        _box((0.1, height * 0.45, width * 0.85), (length / 2, wheel + height * 0.62, 0), win),
    ]
    return parts + _wheels(rng, (length * 0.32, -length * 0.3), width / 2, wheel, 0.3)


def airplane(rng: np.random.Generator) -> list[Part]:
    length, radius = rng.uniform(8, 14), rng.uniform(0.5, 0.8)
    span = length * rng.uniform(0.8, 1.2)
    hull, trim = _colour(rng), _colour(rng)
    fuselage = _rod((-length / 2, 0, 0), (length / 2, 0, 0), radius, hull, sections=12)
    nose = _paint(cone(radius=radius, height=radius * 2, sections=12), hull)
    nose.apply_transform(trimesh.transformations.rotation_matrix(math.pi / 2, (0, 1, 0)))
    nose.apply_translation((length / 2, 0, 0))
    sweep = rng.uniform(0.0, 0.25) * span
    wing = _paint(trimesh.convex.convex_hull(np.array([
        [length * 0.1, 0, 0], [-length * 0.15, 0, 0], [-length * 0.1 - sweep, 0, span / 2],
        [-length * 0.02 - sweep, 0, span / 2], [length * 0.1, 0.1, 0], [-length * 0.15, 0.1, 0],
        [-length * 0.1 - sweep, 0.05, span / 2], [-length * 0.02 - sweep, 0.05, span / 2]])), trim)
    wing2 = wing.copy()
    wing2.apply_transform(trimesh.transformations.reflection_matrix((0, 0, 0), (0, 0, 1)))
    wing2.invert()
    tail_h = radius * rng.uniform(2, 3)
    parts = [
        fuselage, nose, wing, wing2,
        _box((length * 0.12, tail_h, 0.12), (-length / 2 + length * 0.06, tail_h / 2 + radius * 0.5, 0), trim),
        _box((length * 0.1, 0.1, span * 0.3), (-length / 2 + length * 0.05, radius * 0.3, 0), trim),
    ]
    if rng.random() < 0.6:  # engines under the wings
        for s in (-1, 1):
            parts.append(_rod((length * 0.05, -radius * 0.6, s * span * 0.2),
                              (-length * 0.08, -radius * 0.6, s * span * 0.2), radius * 0.35, (0.6, 0.6, 0.6, 1)))
    return parts


def bicycle(rng: np.random.Generator) -> list[Part]:
    r = rng.uniform(0.32, 0.38)
    base = rng.uniform(1.0, 1.15)
    frame = _colour(rng)
    black = (0.05, 0.05, 0.05, 1)
    parts = []
    for x in (-base / 2, base / 2):
        t = trimesh.creation.torus(major_radius=r, minor_radius=0.025, major_sections=20, minor_sections=6)
        t.apply_translation((x, r, 0))
        parts.append(_paint(t, black))
    seat = np.array([-base * 0.12, r + 0.55, 0])
    head = np.array([base * 0.35, r + 0.6, 0])
    crank = np.array([0.0, r, 0])
    rear, front = np.array([-base / 2, r, 0]), np.array([base / 2, r, 0])
    for a, b in ((rear, seat), (rear, crank), (seat, crank), (crank, head), (seat, head), (head, front)):
        parts.append(_rod(a, b, 0.025, frame, sections=6))
    parts.append(_rod(head + (0, 0.12, -0.25), head + (0, 0.12, 0.25), 0.02, black, sections=6))
    parts.append(_box((0.25, 0.05, 0.12), seat + (0, 0.05, 0), black))
    return parts


def horse(rng: np.random.Generator) -> list[Part]:
    coat = _colour(rng, dark=rng.random() < 0.5)
    length, leg = rng.uniform(1.6, 2.0), rng.uniform(0.9, 1.1)
    body = _paint(capsule(height=length * 0.7, radius=0.32, count=[8, 8]), coat)
    body.apply_transform(trimesh.transformations.rotation_matrix(math.pi / 2, (0, 1, 0)))
    body.apply_translation((0, leg + 0.3, 0))
    parts = [body]
    for x in (-length * 0.33, length * 0.33):
        for z in (-0.18, 0.18):
            parts.append(_rod((x, 0, z), (x, leg + 0.3, z), 0.07, coat, sections=6))
    neck_base = np.array([length * 0.4, leg + 0.45, 0])
    neck_top = neck_base + (rng.uniform(0.25, 0.4), rng.uniform(0.55, 0.75), 0)
    parts.append(_rod(neck_base, neck_top, 0.14, coat))
    parts.append(_sphere(neck_top + (0.22, -0.05, 0), 0.14, coat, scale=(2.2, 1.0, 0.9)))
    tail = coat * (0.6, 0.6, 0.6, 1)
    parts.append(_rod((-length * 0.5, leg + 0.4, 0), (-length * 0.62, leg - 0.2, 0), 0.05, tail, sections=5))
    return parts


def person(rng: np.random.Generator) -> list[Part]:
    h = rng.uniform(1.6, 1.9)
    shirt, trousers, skin = _colour(rng), _colour(rng, dark=True), np.array([0.85, 0.65, 0.5, 1])
    hip, shoulder = h * 0.5, h * 0.8
    parts = [
        _box((0.25, shoulder - hip, 0.4), (0, (hip + shoulder) / 2, 0), shirt),
        _sphere((0, shoulder + 0.14, 0), 0.11, skin),
    ]
    spread = rng.uniform(0.0, 0.4)
    for s in (-1, 1):
        parts.append(_rod((0, hip, s * 0.1), (rng.uniform(-0.15, 0.15), 0, s * 0.12), 0.06, trousers, sections=6))
        parts.append(_rod((0, shoulder - 0.03, s * 0.24), (0, shoulder - 0.6 + spread * 0.3, s * (0.28 + spread)),
                          0.045, shirt, sections=6))
    return parts


def ship(rng: np.random.Generator) -> list[Part]:
    length, width, depth = rng.uniform(20, 40), rng.uniform(4, 8), rng.uniform(2, 4)
    hull_c = _colour(rng, dark=rng.random() < 0.5)
    hull = _paint(trimesh.convex.convex_hull(np.array([
        [-length / 2, depth, -width / 2], [-length / 2, depth, width / 2], [length * 0.35, depth, -width / 2],
        [length * 0.35, depth, width / 2], [length / 2, depth * 1.1, 0], [-length / 2 + 1, 0, -width * 0.35],
        [-length / 2 + 1, 0, width * 0.35], [length * 0.3, 0, -width * 0.3], [length * 0.3, 0, width * 0.3],
        [length * 0.45, 0.3 * depth, 0]])), hull_c)
    deck = (0.9, 0.9, 0.88, 1)
    parts = [hull]
    x = -length * 0.3
    for _ in range(int(rng.integers(1, 4))):
        w = rng.uniform(0.1, 0.2) * length
        hgt = rng.uniform(1.5, 3.5)
        parts.append(_box((w, hgt, width * 0.7), (x + w / 2, depth + hgt / 2, 0), deck))
        x += w + rng.uniform(0.5, 2)
    parts.append(_rod((-length * 0.15, depth, 0), (-length * 0.15, depth + rng.uniform(5, 8), 0),
                      width * 0.12, _colour(rng), sections=10))
    return parts


def train(rng: np.random.Generator) -> list[Part]:
    length, width, height = rng.uniform(12, 18), 3.0, rng.uniform(3.5, 4.2)
    colour, stripe = _colour(rng), _colour(rng)
    parts = [
        _box((length, height, width), (0, 0.8 + height / 2, 0), colour),
        _box((length, 0.35, width * 1.01), (0, 0.8 + height * 0.45, 0), stripe),
        _box((0.1, height * 0.3, width * 0.8), (length / 2, 0.8 + height * 0.7, 0), (0.1, 0.12, 0.15, 1)),
    ]
    nose = _paint(trimesh.convex.convex_hull(np.array([
        [length / 2, 0.8, -width / 2], [length / 2, 0.8, width / 2], [length / 2, 0.8 + height, -width / 2],
        [length / 2, 0.8 + height, width / 2], [length / 2 + rng.uniform(0.5, 3), 0.8, 0],
        [length / 2 + rng.uniform(0.5, 2), 0.8 + height * 0.5, 0]])), colour)
    parts.append(nose)
    xs = np.linspace(-length * 0.4, length * 0.4, 4)
    return parts + _wheels(rng, xs, width * 0.45, 0.45, 0.15)


BUILDERS: dict[str, Callable[[np.random.Generator], list[Part]]] = {
    "airplane": airplane, "bicycle": bicycle, "bus": bus, "car": car, "horse": horse,
    "person": person, "ship": ship, "train": train, "truck": truck,
}


def build_model(label: str, variant: int) -> trimesh.Scene:
    rng = np.random.default_rng([VERSION, sorted(BUILDERS).index(label), variant])
    scene = trimesh.Scene()
    for i, part in enumerate(BUILDERS[label](rng)):
        scene.add_geometry(part, geom_name=f"part{i}")
    return scene


def cache_dir() -> Path:
    root = os.environ.get("MIXREAL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mixreal")
    return Path(root)


def build_default_models(out: Path | None = None, variants: int = VARIANTS) -> Path:
    """Write the default models folder (once; later calls reuse it) and return its path."""
    out = Path(out) if out else cache_dir() / f"default-models-v{VERSION}-{variants}"
    if (out / ".complete").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    from renderer.export import default_mode

    tmp = Path(tempfile.mkdtemp(prefix=".default-models-", dir=out.parent))
    try:
        with contextlib.suppress(OSError):  # a mount that refuses chmod keeps mkdtemp's private folder
            tmp.chmod(default_mode(directory=True))
        for label in sorted(BUILDERS):
            (tmp / label).mkdir()
            for k in range(variants):
                build_model(label, k).export(tmp / label / f"{label}_{k}.glb")
        (tmp / ".complete").write_text(f"mixreal default models v{VERSION}\n")
        try:
            os.replace(tmp, out)  # atomic: a half-built folder is never seen as the default
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
