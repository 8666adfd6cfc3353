"""Latent variations: what may change from one rendered image to the next, and within which ranges.

Each variation is one dataclass with its own switch and parameter ranges; a switched-off variation
takes its canonical value (`Canonical`). `variations="none"` is the paper's Experiment 1: one view,
original materials, default light, plain background.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .classnames import canonical

Range = tuple[float, float]

# new variations go at the end: a variation's position seeds its random stream (sampling.uniforms)
VARIATION_NAMES = ("texture", "lighting", "background", "camera", "occlusion", "augment2d", "sensor")


# Colours real objects mostly come in (sRGB): the car-park palette of paints (white, black, silver and grey
# make up most cars on the road), plus the browns and greys of animals. A solid-colour texture draws from
# these most of the time, so most objects look painted rather than dyed.
PAINT_COLOURS: tuple[tuple[float, float, float], ...] = (
    (0.92, 0.92, 0.90), (0.06, 0.06, 0.07), (0.70, 0.72, 0.74), (0.42, 0.43, 0.45), (0.65, 0.07, 0.07),
    (0.08, 0.16, 0.42), (0.25, 0.45, 0.75), (0.12, 0.30, 0.18), (0.78, 0.70, 0.55), (0.88, 0.72, 0.10),
    (0.38, 0.24, 0.14), (0.88, 0.42, 0.10), (0.55, 0.40, 0.28), (0.20, 0.16, 0.14),
)

# Palettes of classes whose real colours are not car paints (sRGB), for `TextureVariation.paint_by_class`:
# horse coats (bay, dark bay, chestnut, black, grey, white, palomino, dun) and aircraft finishes (mostly
# white and greys, some military olive and a few liveries).
HORSE_COATS: tuple[tuple[float, float, float], ...] = (
    (0.36, 0.20, 0.10), (0.22, 0.13, 0.08), (0.50, 0.25, 0.12), (0.07, 0.06, 0.06), (0.58, 0.57, 0.55),
    (0.86, 0.84, 0.80), (0.80, 0.65, 0.40), (0.62, 0.50, 0.34),
)
AIRCRAFT_FINISHES: tuple[tuple[float, float, float], ...] = (
    (0.93, 0.93, 0.93), (0.90, 0.91, 0.93), (0.78, 0.79, 0.81), (0.70, 0.72, 0.74), (0.45, 0.47, 0.48),
    (0.33, 0.35, 0.22), (0.08, 0.16, 0.42), (0.65, 0.07, 0.07),
)


@dataclass(frozen=True)
class TextureVariation:
    enabled: bool = True
    # how often each mode is drawn: original material, random solid colour, procedural, image. Mostly the
    # model's own look or a plausible paint; the patterns are there some of the time, for variety
    mode_weights: tuple[float, float, float, float] = (0.45, 0.35, 0.08, 0.12)
    procedural_kinds: tuple[str, ...] = ("checker", "stripes", "noise", "dots")
    scale: Range = (2.0, 10.0)  # pattern repeats across the unit-sphere model
    specular: Range = (0.05, 0.7)
    shininess: Range = (8.0, 64.0)
    paint_probability: float = 0.8  # of a solid colour coming from `paint_colours` (else any hue)
    paint_colours: tuple[tuple[float, float, float], ...] = PAINT_COLOURS
    paint_jitter: float = 0.06  # per-channel sRGB jitter of a paint colour
    # classes with a palette of their own (e.g. {"horse": HORSE_COATS}); the others use paint_colours
    paint_by_class: dict[str, tuple[tuple[float, float, float], ...]] = field(default_factory=dict)
    image_dir: Path | None = None  # None: the embedded procedural images

    def paints_for(self, label: str) -> tuple[tuple[float, float, float], ...]:
        return self.paint_by_class.get(class_key(label), self.paint_colours)


# Classes photographed in the air, where no shadow falls near them.
SHADOW_BY_CLASS: dict[str, Range] = {"airplane": (0.0, 0.0), "bird": (0.0, 0.0)}


@dataclass(frozen=True)
class LightingVariation:
    enabled: bool = True
    # daylight: a sun (and at most one fill light) from above, near-white, with sky light as ambient
    n_lights: tuple[int, int] = (1, 2)
    elevation: Range = (15.0, 75.0)  # degrees above the camera's horizon
    azimuth: Range = (-150.0, 150.0)  # degrees around the view axis, 0 = from the camera
    temperature: Range = (4000.0, 8000.0)  # kelvin
    intensity: Range = (0.6, 1.2)
    ambient: Range = (0.2, 0.5)
    # sky light from above, less bounced up from the ground: the ambient light a surface facing the ground
    # gets, as a fraction of what one facing the sky gets (1 = the same from every direction)
    ground: Range = (1.0, 1.0)
    # a soft contact shadow on the ground under the model: how much it darkens the ground at its centre
    # (0 = none); classes in shadow_by_class use their own range
    shadow: Range = (0.0, 0.0)
    shadow_by_class: dict[str, Range] = field(default_factory=lambda: dict(SHADOW_BY_CLASS))

    def shadow_for(self, label: str) -> Range:
        return self.shadow_by_class.get(class_key(label), self.shadow)


@dataclass(frozen=True)
class BackgroundVariation:
    enabled: bool = True
    # solid, gradient, procedural noise, random crop from an image (a scene: the embedded skies, fields,
    # rooms and streets, or a folder of photos)
    mode_weights: tuple[float, float, float, float] = (0.05, 0.2, 0.1, 0.65)
    noise_scale: Range = (2.0, 16.0)
    saturation: float = 0.45  # most saturated a solid / gradient / noise colour may be (0..1)
    crop_fraction: Range = (0.3, 1.0)  # side of the crop as a fraction of the image
    image_dir: Path | None = None  # None: the embedded procedural backgrounds
    # embedded scenes a class is shown in (kinds from assets.images.SCENE_KINDS, e.g. {"car": ("city",
    # "sky over ground")}); other classes, and any --backgrounds folder, draw from every image
    scenes_by_class: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self):
        from assets.images import SCENE_KINDS

        for label, kinds in self.scenes_by_class.items():
            unknown = [k for k in kinds if k not in SCENE_KINDS]
            if unknown or not kinds:
                raise ValueError(f"background.scenes_by_class[{label!r}]: unknown scene kinds {unknown or '(none)'} "
                                 f"(kinds: {', '.join(SCENE_KINDS)})")

    def scenes_for(self, label: str) -> tuple[int, ...] | None:
        """Indices into SCENE_KINDS of the embedded scenes `label` is shown in; None: every scene."""
        from assets.images import SCENE_KINDS

        kinds = self.scenes_by_class.get(class_key(label))
        return None if kinds is None else tuple(SCENE_KINDS.index(k) for k in kinds)


# Scenes each kind of object is photographed in, for `BackgroundVariation.scenes_by_class` (a realism
# candidate, off by default): renders of cars against clouds look, to a real-photo classifier, like airplanes.
SCENES_BY_CLASS: dict[str, tuple[str, ...]] = {
    "car": ("sky over ground", "city", "foliage", "room"), "truck": ("sky over ground", "city", "foliage"),
    "bus": ("sky over ground", "city"), "horse": ("sky over ground", "foliage"),
    "airplane": ("sky over ground", "clouds"),
}


# How people photograph each kind of object: ground vehicles, animals and people from about eye level (a
# little above or below), aircraft from below as often as from above. Keys are class names as the models
# folder spells them (aliases such as aeroplane / automobile are matched too); other classes use
# CameraVariation.elevation.
ELEVATION_BY_CLASS: dict[str, Range] = {
    "car": (-5.0, 25.0), "truck": (-5.0, 25.0), "bus": (-5.0, 25.0), "train": (-5.0, 25.0),
    "motorcycle": (-5.0, 25.0), "bicycle": (0.0, 30.0), "horse": (-5.0, 25.0), "person": (-5.0, 20.0),
    "ship": (0.0, 25.0), "airplane": (-25.0, 35.0),
}


def class_key(label: str) -> str:
    """A models-folder class name as the per-class tables spell it (aliases matched: renderer.classnames)."""
    return canonical(label)


@dataclass(frozen=True)
class CameraVariation:
    enabled: bool = True
    azimuth: Range = (-180.0, 180.0)
    elevation: Range = (-10.0, 45.0)  # classes without an entry in elevation_by_class
    elevation_by_class: dict[str, Range] = field(default_factory=lambda: dict(ELEVATION_BY_CLASS))
    # multiple of the distance at which the bounding sphere fills the frame: sets the perspective (how close
    # the camera stands); with `fill` set, the frame is then zoomed to the model's own silhouette
    distance: Range = (0.8, 1.3)
    # the longer side of the model's projected bounding box, as a fraction of the image side: objects fill
    # most of the frame, as in photos of one object (CIFAR). None: framed by the bounding sphere only, which
    # leaves long thin models (aircraft, trains) small
    fill: Range | None = (0.7, 1.0)
    roll: Range = (-8.0, 8.0)
    fov: Range = (25.0, 60.0)
    jitter: Range = (0.0, 0.1)  # off-centre shift, fraction of the half-frame

    def elevation_for(self, label: str) -> Range:
        return self.elevation_by_class.get(class_key(label), self.elevation)


@dataclass(frozen=True)
class OcclusionVariation:
    enabled: bool = True
    # small and occasional, and mostly long and thin (poles, posts, branches) rather than flat boxes
    probability: float = 0.25  # of an image having any occluder
    count: tuple[int, int] = (1, 2)
    size: Range = (0.06, 0.2)  # half-size (geometric mean of the sides), fraction of the model's projected radius
    log_aspect: Range = (-2.2, 2.2)  # ln(width / height): +-2.2 is a 9:1 pole
    colour_noise: float = 0.2  # probability that an occluder is patterned rather than plain
    saturation: float = 0.5  # most saturated a plain occluder may be


@dataclass(frozen=True)
class Augment2D:
    """2D augmentations applied to the rendered image (after the 3D render)."""

    enabled: bool = True
    mirror: float = 0.5  # probability of a horizontal flip
    crop: Range = (0.75, 1.0)  # side of the kept crop, resized back to the full image
    contrast: Range = (0.75, 1.25)
    illumination: Range = (0.7, 1.3)  # brightness factor
    shear: Range = (-6.0, 6.0)  # degrees


@dataclass(frozen=True)
class SensorVariation:
    """What a camera does to the image after the lens: white balance, softness, noise, JPEG (applied to the
    final, anti-aliased image)."""

    enabled: bool = True
    white_balance: float = 0.06  # largest per-channel gain deviation from 1
    blur: Range = (0.0, 0.6)  # Gaussian sigma, output px: defocus and lens softness
    noise: Range = (0.0, 0.02)  # Gaussian sensor noise, fraction of full scale
    jpeg_probability: float = 0.6
    jpeg_quality: tuple[int, int] = (40, 95)


@dataclass(frozen=True)
class Canonical:
    """The values a switched-off variation takes."""

    azimuth: float = 35.0
    elevation: float = 20.0
    distance: float = 0.95
    fill: float | None = None  # None: framed by the bounding sphere (the paper's fixed canonical view)
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
    sensor: SensorVariation = field(default_factory=SensorVariation)
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
               "augment": "augment2d", "2d": "augment2d", "aug": "augment2d", "camera_effects": "sensor",
               "noise": "sensor", "jpeg": "sensor"}
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
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v
