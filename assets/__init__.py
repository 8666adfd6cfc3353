"""Embedded default content, made by the project's own code: models, textures, backgrounds."""

from .images import default_images
from .models import BUILDERS, build_default_models, build_model

__all__ = ["BUILDERS", "build_default_models", "build_model", "default_images"]
