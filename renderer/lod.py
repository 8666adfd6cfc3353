"""Levels of detail: simplified meshes for outputs too small to show every triangle."""

from __future__ import annotations

from dataclasses import dataclass

from .meshes import MeshData


@dataclass
class LevelOfDetail:
    max_size: int  # used for output images up to this many pixels
    mesh: MeshData


def build_lods(mesh: MeshData) -> list[LevelOfDetail]:
    return [LevelOfDetail(1 << 30, mesh)]
