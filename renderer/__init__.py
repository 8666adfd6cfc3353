"""Headless, batched OpenGL rendering of 3D models with randomised latent variations."""

from .core import RenderConfig, Renderer, SampleSpec
from .library import Model, ModelLibrary
from .meshes import ModelLoadError, ModelRef, discover_models, load_mesh
from .platform import PlatformError, create_context
from .sampling import ParamTable, draw_params
from .variations import VARIATION_NAMES, VariationConfig

__all__ = [
    "VARIATION_NAMES", "Model", "ModelLibrary", "ModelLoadError", "ModelRef", "ParamTable", "PlatformError",
    "RenderConfig", "Renderer", "SampleSpec", "VariationConfig", "create_context", "discover_models",
    "draw_params", "load_mesh",
]
