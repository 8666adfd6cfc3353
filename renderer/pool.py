"""All models' geometry in one vertex buffer and one index buffer.

One shared pool lets a whole batch draw with one multi-draw-indirect call per shader variant (one
command per model: first index, base vertex, base instance) instead of one call per model; on
llvmpipe the per-call cost, not the vertices, was what a batch of small images spent its time on.
"""

from __future__ import annotations

import moderngl
import numpy as np

from .meshes import MeshData

VERTEX = np.dtype([("p", "f4", 3), ("n", "f4", 3), ("uv", "f4", 2), ("c", "u1", 4)])
VERTEX_FORMAT = ("3f 3f 2f 4f1", ("in_pos", "in_normal", "in_uv", "in_color"))


class GeometryPool:
    def __init__(self, ctx: moderngl.Context, vertices: int = 1 << 16, indices: int = 1 << 18):
        self.ctx = ctx
        self.vbo = ctx.buffer(reserve=vertices * VERTEX.itemsize)
        self.ibo = ctx.buffer(reserve=indices * 4)
        self.n_vertices = 0
        self.n_indices = 0
        self._vaos: dict[int, moderngl.VertexArray] = {}

    def add(self, mesh: MeshData) -> tuple[int, int, int]:
        """Upload a mesh; returns (first index, base vertex, index count) for draw commands."""
        v = np.empty(len(mesh.positions), dtype=VERTEX)
        v["p"], v["n"], v["uv"], v["c"] = mesh.positions, mesh.normals, mesh.uvs, mesh.colors
        v["c"][:, 3] = np.clip(mesh.layers + 1, 0, 255).astype(np.uint8)  # alpha carries the texture layer
        idx = np.ascontiguousarray(mesh.indices, dtype=np.uint32).reshape(-1)
        self._reserve(self.n_vertices + len(v), self.n_indices + len(idx))
        self.vbo.write(v.tobytes(), offset=self.n_vertices * VERTEX.itemsize)
        self.ibo.write(idx.tobytes(), offset=self.n_indices * 4)
        out = (self.n_indices, self.n_vertices, len(idx))
        self.n_vertices += len(v)
        self.n_indices += len(idx)
        return out

    def vao(self, program: moderngl.Program, instances: moderngl.Buffer, instance_format: tuple,
            attributes) -> moderngl.VertexArray:
        vao = self._vaos.get(program.glo)
        if vao is None:
            vao = self.ctx.vertex_array(
                program,
                [attributes(program, self.vbo, *VERTEX_FORMAT), attributes(program, instances, *instance_format)],
                index_buffer=self.ibo,
                index_element_size=4,
            )
            self._vaos[program.glo] = vao
        return vao

    def _reserve(self, vertices: int, indices: int) -> None:
        """Grow (doubling) by copying into larger buffers; VAOs are rebuilt on next use."""
        grew = False
        if vertices * VERTEX.itemsize > self.vbo.size:
            self.vbo = self._grown(self.vbo, vertices * VERTEX.itemsize, self.n_vertices * VERTEX.itemsize)
            grew = True
        if indices * 4 > self.ibo.size:
            self.ibo = self._grown(self.ibo, indices * 4, self.n_indices * 4)
            grew = True
        if grew:
            for vao in self._vaos.values():
                vao.release()
            self._vaos.clear()

    def _grown(self, old: moderngl.Buffer, needed: int, used: int) -> moderngl.Buffer:
        size = old.size
        while size < needed:
            size *= 2
        new = self.ctx.buffer(reserve=size)
        if used:
            self.ctx.copy_buffer(new, old, size=used)
        old.release()
        return new
