"""Latent variations: what may change from one rendered image to the next, and within which ranges.

Each variation is one dataclass with its own switch and parameter ranges; a switched-off variation
takes its canonical value (`Canonical`). `variations="none"` is the paper's Experiment 1: one view,
original materials, default light, plain background.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

Range = tuple[float, float]

VARIATION_NAMES = ("texture", "lighting", "background", "camera", "occlusion", "augment2d")


@dataclass(frozen=True)
class TextureVariation:
    enabled: bool = True
    # how often each mode is drawn: original material, random solid colour, procedural, image
    mode_weights: tuple[float, float, float, float] = (0.25, 0.25, 0.3, 0.2)
    procedural_kinds: tuple[str, ...] = ("checker", "stripes", "noise", "dots")
    scale: Range = (2.0, 10.0)  # pattern repeats across the unit-sphere model
    specular: Range = (0.0, 0.6)
    shininess: Range = (4.0, 64.0)
    image_dir: Path | None = None  # None: the embedded procedural images


@dataclass(frozen=True)
class LightingVariation:
    enabled: bool = True
    n_lights: tuple[int, int] = (1, 4)
    elevation: Range = (-10.0, 80.0)  # degrees above the camera's horizon
    azimuth: Range = (-150.0, 150.0)  # degrees around the view axis, 0 = from the camera
    temperature: Range = (2500.0, 10000.0)  # kelvin
    intensity: Range = (0.3, 1.2)
    ambient: Range = (0.05, 0.5)


@dataclass(frozen=True)
class BackgroundVariation:
    enabled: bool = True
    # solid, gradient, procedural noise, random crop from an image
    mode_weights: tuple[float, float, float, float] = (0.2, 0.25, 0.25, 0.3)
    noise_scale: Range = (2.0, 16.0)
    crop_fraction: Range = (0.3, 1.0)  # side of the crop as a fraction of the image
    image_dir: Path | None = None  # None: the embedded procedural backgrounds


@dataclass(frozen=True)
class CameraVariation:
    enabled: bool = True
    azimuth: Range = (-180.0, 180.0)
    elevation: Range = (-10.0, 60.0)
    # multiple of the distance at which the bounding sphere fills the frame; below 1 the (loose) sphere
    # overflows but the model rarely does: objects fill most of the frame, as in CIFAR-style photos
    distance: Range = (0.8, 1.3)
    roll: Range = (-20.0, 20.0)
    fov: Range = (25.0, 60.0)
    jitter: Range = (0.0, 0.15)  # off-centre shift, fraction of the half-frame


@dataclass(frozen=True)
class OcclusionVariation:
    enabled: bool = True
    probability: float = 0.5  # of an image having any occluder
    count: tuple[int, int] = (1, 3)
    size: Range = (0.1, 0.3)  # half-size, as a fraction of the model's projected radius
    colour_noise: float = 0.5  # probability that an occluder is patterned rather than plain


@dataclass(frozen=True)
class Augment2D:
    """2D augmentations applied to the rendered image (after the 3D render)."""

    enabled: bool = True
    mirror: float = 0.5  # probability of a horizontal flip
    crop: Range = (0.75, 1.0)  # side of the kept crop, resized back to the full image
    contrast: Range = (0.6, 1.4)
    illumination: Range = (0.6, 1.4)  # brightness factor
    shear: Range = (-12.0, 12.0)  # degrees


@dataclass(frozen=True)
class Canonical:
    """The values a switched-off variation takes."""

    azimuth: float = 35.0
    elevation: float = 20.0
    distance: float = 0.95
    fov: float = 40.0
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)  # sRGB
    light_direction: tuple[float, float, float] = (-0.4, 0.7, 0.6)  # view space, toward the light
    light_intensity: float = 0.9
    ambient: float = 0.35
    specular: float = 0.15
    shininess: float = 24.0


@dataclass(frozen=True)
class VariationConfig:
    texture: TextureVariation = field(default_factory=TextureVariation)
    lighting: LightingVariation = field(default_factory=LightingVariation)
    background: BackgroundVariation = field(default_factory=BackgroundVariation)
    camera: CameraVariation = field(default_factory=CameraVariation)
    occlusion: OcclusionVariation = field(default_factory=OcclusionVariation)
    augment2d: Augment2D = field(default_factory=Augment2D)
    canonical: Canonical = field(default_factory=Canonical)

    @classmethod
    def parse(cls, spec: str, **kwargs) -> VariationConfig:
        """'all', 'none' or a comma list such as 'texture,lighting'."""
        return cls(**kwargs).only(parse_names(spec))

    def only(self, names: tuple[str, ...]) -> VariationConfig:
        """The same ranges with exactly `names` switched on."""
        changes = {n: replace(getattr(self, n), enabled=n in names) for n in VARIATION_NAMES}
        return replace(self, **changes)

    @property
    def enabled(self) -> tuple[str, ...]:
        return tuple(n for n in VARIATION_NAMES if getattr(self, n).enabled)

    def describe(self) -> dict:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = {g.name: _jsonable(getattr(value, g.name)) for g in fields(value)}
        return out


def parse_names(spec: str) -> tuple[str, ...]:
    spec = spec.strip().lower()
    if spec == "all":
        return VARIATION_NAMES
    if spec in ("none", ""):
        return ()
    names = tuple(s.strip() for s in spec.split(",") if s.strip())
    aliases = {"light": "lighting", "bg": "background", "view": "camera", "occluders": "occlusion",
               "augment": "augment2d", "2d": "augment2d", "aug": "augment2d"}
    names = tuple(aliases.get(n, n) for n in names)
    bad = [n for n in names if n not in VARIATION_NAMES]
    if bad:
        raise ValueError(
            f"unknown variation {', '.join(bad)}: choose from all, none, {', '.join(VARIATION_NAMES)}"
        )
    return names


def _jsonable(v):
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple):
        return list(v)
    return v
