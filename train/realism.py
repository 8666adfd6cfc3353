"""The renderer's realism changes, one at a time: the recipe of the `realism` experiment.

Step 0 is the renderer as it was before them (session 3's defaults: aliased edges, bounding-sphere framing,
views from up to 60 degrees above, garish patterns on 30 % of objects, coloured-noise backgrounds, large
occluders on half the images, no camera effects). Each later step adds one change on top of the one before,
and the last is today's default. `mixreal experiment realism` trains synthetic-only on every step and
measures each with the gap meter, so that every change is kept only where it helps, and the meter's ranking
can be checked against the accuracy it is meant to predict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from renderer import VariationConfig
from renderer.variations import AIRCRAFT_FINISHES, HORSE_COATS, SCENES_BY_CLASS

Step = Callable[[VariationConfig, int], tuple[VariationConfig, int]]  # (variations, supersample) -> the same


def before(v: VariationConfig, ss: int) -> tuple[VariationConfig, int]:
    """Every range as it was before the realism changes."""
    return replace(
        v,
        texture=replace(v.texture, mode_weights=(0.25, 0.25, 0.3, 0.2), specular=(0.0, 0.6), shininess=(4.0, 64.0),
                        paint_probability=0.0),
        lighting=replace(v.lighting, n_lights=(1, 4), elevation=(-10.0, 80.0), temperature=(2500.0, 10000.0),
                         intensity=(0.3, 1.2), ambient=(0.05, 0.5)),
        background=replace(v.background, mode_weights=(0.2, 0.25, 0.25, 0.3), saturation=1.0),
        camera=replace(v.camera, elevation=(-10.0, 60.0), elevation_by_class={}, fill=None, roll=(-20.0, 20.0),
                       jitter=(0.0, 0.15)),
        occlusion=replace(v.occlusion, probability=0.5, count=(1, 3), size=(0.1, 0.3), log_aspect=(-1.2, 1.2),
                          colour_noise=0.5, saturation=1.0),
        augment2d=replace(v.augment2d, contrast=(0.6, 1.4), illumination=(0.6, 1.4), shear=(-12.0, 12.0)),
        # did not exist: every effect at zero (the switch stays as given, so the step can turn them up)
        sensor=replace(v.sensor, white_balance=0.0, blur=(0.0, 0.0), noise=(0.0, 0.0), jpeg_probability=0.0),
    ), 1


def _take(field: str) -> Step:
    """Step: take today's default for one variation's dataclass."""
    def step(v: VariationConfig, ss: int) -> tuple[VariationConfig, int]:
        return replace(v, **{field: replace(getattr(VariationConfig(), field),
                                            enabled=getattr(v, field).enabled,
                                            image_dir=getattr(v, field).image_dir)
                             if field in ("texture", "background") else
                             replace(getattr(VariationConfig(), field), enabled=getattr(v, field).enabled)}), ss
    return step


def _camera(fields: tuple[str, ...]) -> Step:
    def step(v: VariationConfig, ss: int) -> tuple[VariationConfig, int]:
        default = VariationConfig().camera
        return replace(v, camera=replace(v.camera, **{f: getattr(default, f) for f in fields})), ss
    return step


# (row name, step): cumulative, in the order they are applied
STEPS: list[tuple[str, Step]] = [
    ("before: session-3 renderer", before),
    ("+ anti-aliasing (2x supersampling)", lambda v, ss: (v, 2)),
    ("+ eye-level camera priors per class", _camera(("elevation", "elevation_by_class", "roll", "jitter"))),
    ("+ silhouette framing (fill 0.7-1.0)", _camera(("fill",))),
    ("+ plausible materials (paints, fewer patterns)", _take("texture")),
    ("+ daylight lighting", _take("lighting")),
    ("+ scene backgrounds, muted colours", _take("background")),
    ("+ small, pole-like occluders", _take("occlusion")),
    ("+ milder 2D augmentation", _take("augment2d")),
    ("+ camera effects (white balance, blur, noise, JPEG) (= default)", _take("sensor")),
]


def _hemisphere(v: VariationConfig, ss: int) -> tuple[VariationConfig, int]:
    return replace(v, lighting=replace(v.lighting, ground=(0.25, 0.5))), ss


def _contact_shadow(v: VariationConfig, ss: int) -> tuple[VariationConfig, int]:
    return replace(v, lighting=replace(v.lighting, shadow=(0.3, 0.7))), ss


def _class_palettes(v: VariationConfig, ss: int) -> tuple[VariationConfig, int]:
    palettes = {"horse": HORSE_COATS, "airplane": AIRCRAFT_FINISHES}
    return replace(v, texture=replace(v.texture, paint_by_class=palettes)), ss


def _class_scenes(v: VariationConfig, ss: int) -> tuple[VariationConfig, int]:
    return replace(v, background=replace(v.background, scenes_by_class=SCENES_BY_CLASS)), ss


# (row name, change): candidates not (yet) in the default, each measured on top of today's default alone
CANDIDATES: list[tuple[str, Step]] = [
    ("default + hemisphere ambient (ground 0.25-0.5 of the sky)", _hemisphere),
    ("default + contact shadow (darkness 0.3-0.7, none under aircraft)", _contact_shadow),
    ("default + per-class paints (horse coats, aircraft finishes)", _class_palettes),
    ("default + per-class scenes (no vehicles or horses against clouds)", _class_scenes),
]


def step_config(name: str, base: VariationConfig | None = None) -> tuple[VariationConfig, int]:
    """(variations, supersample) of the step called `name`: step 0 and every step up to it applied; for a
    candidate, every step and then the candidate's change."""
    names, candidates = [n for n, _ in STEPS], dict(CANDIDATES)
    if name not in names and name not in candidates:
        raise ValueError(f"unknown realism step {name!r}")
    v, ss = base or VariationConfig(), 2
    for _, step in STEPS[:names.index(name) + 1] if name in names else STEPS:
        v, ss = step(v, ss)
    return candidates[name](v, ss) if name in candidates else (v, ss)
