"""The batched renderer: many views per draw into an atlas of cells, one read-back per batch.

A batch is sorted by model; each model is drawn once, instanced over its samples, every instance
landing in its own cell of one large framebuffer (clip distances keep it inside). Occluders,
backgrounds and the 2D-augmentation pass are one instanced draw each for the whole batch. All
per-sample values go up in one instance-buffer write and one uniform-block write.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources

import moderngl
import numpy as np

from .library import Model, ModelLibrary, report
from .lod import LevelOfDetail, build_lods
from .packing import LIGHT_VEC4S, OCCLUDER_FLOATS, SAMPLE_FLOATS, pack
from .platform import create_context
from .sampling import MAX_OCCLUDERS, ImageCounts, ParamTable, draw_params
from .variations import VariationConfig

CLIP_DISTANCE0 = 0x3000
MIN_SIZE, MAX_SIZE = 16, 1024
MAX_BATCH = 256  # the light uniform block holds this many samples (9 vec4 each, < 64 KiB)
ATLAS_SIDE = 4096  # px; the atlas holds (ATLAS_SIDE // size)^2 cells, at most MAX_BATCH

_OBJECT_INSTANCE = ("16f 4f 4f 4f 4f 4f 4f 4f 4f 112x/i",
                    ("i_mvp", "i_view0", "i_view1", "i_view2", "i_tex", "i_col1", "i_col2", "i_dir", "i_cell"))
_BACKGROUND_INSTANCE = ("192x 4f 4f 4f 4f 48x/i", ("i_bg_info", "i_bg_a", "i_bg_b", "i_bg_crop"))
_POST_INSTANCE = ("256x 4f 4f 4f/i", ("i_post_a", "i_post_b", "i_post_c"))
_OCCLUDER_INSTANCE = ("16f 4f 4f 4f 4f 4f/i", ("i_mvp", "i_n0", "i_n1", "i_n2", "i_color", "i_info"))


@dataclass
class RenderConfig:
    size: int = 64
    batch_size: int = 64  # images per draw and per read-back
    msaa: int = 0  # samples per pixel; 0 = off
    seed: int = 0
    variations: VariationConfig = field(default_factory=VariationConfig)
    device: int | None = None  # EGL device (GPU) index
    texture_image_size: int = 256
    background_image_size: int = 256
    lod: bool = True  # simplified meshes where the output is too small to show the detail

    def __post_init__(self):
        if not MIN_SIZE <= int(self.size) <= MAX_SIZE:
            raise ValueError(f"image size {self.size} outside {MIN_SIZE}..{MAX_SIZE} px")
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if self.msaa not in (0, 1, 2, 4, 8):
            raise ValueError(f"msaa must be 0, 2, 4 or 8 (got {self.msaa})")


@dataclass(frozen=True)
class SampleSpec:
    """One image: the `index`-th image of model `model` (an index into the library)."""

    model: int
    index: int


def _program(ctx: moderngl.Context, vert: str, frag: str) -> moderngl.Program:
    def src(name: str) -> str:
        return resources.files("renderer").joinpath("shaders", name).read_text()

    header = f"#version 430\n#define MAX_BATCH {MAX_BATCH}\n" + src("common.glsl")
    return ctx.program(vertex_shader=header + src(vert), fragment_shader=header + src(frag))


def _cube() -> tuple[np.ndarray, np.ndarray]:
    verts, idx = [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            n = np.zeros(3)
            n[axis] = sign
            u, v = np.roll(np.eye(3), 1, axis=0)[axis], np.roll(np.eye(3), 2, axis=0)[axis]
            base = len(verts)
            for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                verts.append(np.concatenate([n + a * u + b * v, n]))
            idx += [base, base + 1, base + 2, base, base + 2, base + 3]
    return np.asarray(verts, np.float32), np.asarray(idx, np.uint32)


class _GpuModel:
    """A model's geometry (each level of detail) and textures, uploaded once."""

    def __init__(self, ctx: moderngl.Context, program: moderngl.Program, instances: moderngl.Buffer,
                 model: Model, lods: list[LevelOfDetail], blank: moderngl.TextureArray):
        self.levels: list[tuple[int, moderngl.VertexArray, int]] = []
        self._buffers = []
        for lod in lods:
            m = lod.mesh
            vertices = np.empty(len(m.positions), dtype=[("p", "f4", 3), ("n", "f4", 3), ("uv", "f4", 2),
                                                          ("c", "u1", 4)])
            vertices["p"], vertices["n"], vertices["uv"] = m.positions, m.normals, m.uvs
            vertices["c"] = m.colors
            vertices["c"][:, 3] = np.clip(m.layers + 1, 0, 255).astype(np.uint8)  # alpha carries the layer
            vbo = ctx.buffer(vertices.tobytes())
            ibo = ctx.buffer(np.ascontiguousarray(m.indices, dtype=np.uint32).tobytes())
            vao = ctx.vertex_array(
                program,
                [(vbo, "3f 3f 2f 4f1", "in_pos", "in_normal", "in_uv", "in_color"),
                 (instances, _OBJECT_INSTANCE[0], *_OBJECT_INSTANCE[1])],
                index_buffer=ibo,
                index_element_size=4,
            )
            self.levels.append((lod.max_size, vao, int(m.indices.size)))
            self._buffers += [vbo, ibo]
        tex = model.mesh.textures
        if tex:
            s = tex[0].shape[0]
            self.texture = ctx.texture_array((s, s, len(tex)), 4, np.stack(tex).tobytes())
            self.texture.build_mipmaps()
            self.texture.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
            self.texture.repeat_x = self.texture.repeat_y = True
        else:
            self.texture = blank
        self.has_uvs = model.mesh.has_uvs

    def level(self, size: int) -> tuple[moderngl.VertexArray, int]:
        for max_size, vao, count in self.levels:
            if size <= max_size:
                return vao, count
        return self.levels[-1][1], self.levels[-1][2]


class Renderer:
    """Renders SampleSpecs into (N, H, W, 3) uint8 arrays.

    >>> r = Renderer(ModelLibrary.load(path), RenderConfig(size=64))
    >>> images = r.render([SampleSpec(m, k) for m in range(len(r.models)) for k in range(4)])
    """

    def __init__(self, library: ModelLibrary, config: RenderConfig, ctx: moderngl.Context | None = None):
        self.library = library
        self.models = library.models
        self.config = config
        self.ctx = ctx or create_context(config.device)
        ctx = self.ctx
        self._object = _program(ctx, "object.vert", "object.frag")
        self._background = _program(ctx, "background.vert", "background.frag")
        self._occluder = _program(ctx, "occluder.vert", "occluder.frag")
        self._post = _program(ctx, "post.vert", "post.frag")
        self._blank = ctx.texture_array((1, 1, 1), 4, bytes([255, 255, 255, 255]))
        self._textures = self._image_array(config.variations.texture.image_dir, "textures",
                                           config.texture_image_size, repeat=True)
        self._backgrounds = self._image_array(config.variations.background.image_dir, "backgrounds",
                                              config.background_image_size, repeat=False)
        self.counts = ImageCounts(self._textures.size[2], self._backgrounds.size[2])
        # The atlas layout depends on the image size only, and a sample's cell on its global index
        # only: rasterisation rounding differs (slightly) between cells, so this is what makes an
        # image bit-identical whatever the batch size, order, worker or process.
        cols = max(1, min(int(math.isqrt(MAX_BATCH)), ATLAS_SIDE // config.size))
        self._grid = (cols, cols)
        cap = self.batch_capacity
        self._instances = ctx.buffer(reserve=cap * SAMPLE_FLOATS * 4, dynamic=True)
        self._lights = ctx.buffer(reserve=MAX_BATCH * LIGHT_VEC4S * 16, dynamic=True)
        self._occ_buf = ctx.buffer(reserve=cap * MAX_OCCLUDERS * OCCLUDER_FLOATS * 4, dynamic=True)
        self._commands = ctx.buffer(reserve=cap * 20, dynamic=True)
        quad = ctx.buffer(np.array([0, 0, 1, 0, 0, 1, 1, 1], np.float32).tobytes())
        self._bg_vao = ctx.vertex_array(self._background, [
            (quad, "2f", "in_corner"), (self._instances, _BACKGROUND_INSTANCE[0], *_BACKGROUND_INSTANCE[1])])
        self._post_vao = ctx.vertex_array(self._post, [
            (quad, "2f", "in_corner"), (self._instances, _POST_INSTANCE[0], *_POST_INSTANCE[1])])
        cv, ci = _cube()
        self._occ_vao = ctx.vertex_array(
            self._occluder,
            [(ctx.buffer(cv.tobytes()), "3f 3f", "in_pos", "in_normal"),
             (self._occ_buf, _OCCLUDER_INSTANCE[0], *_OCCLUDER_INSTANCE[1])],
            index_buffer=ctx.buffer(ci.tobytes()), index_element_size=4)
        self._gpu: dict[int, _GpuModel] = {}
        self._make_framebuffers()
        for prog in (self._object, self._background, self._occluder, self._post):
            prog["u_grid"].value = self._grid
        for prog in (self._object, self._occluder):
            prog["Lights"].binding = 0
        self._object["u_model_tex"].value = 0
        self._object["u_images"].value = 1
        self._background["u_backgrounds"].value = 2
        self._post["u_src"].value = 3
        self._post["u_src_mask"].value = 4
        self._post["u_cell_px"].value = float(config.size)

    # ------------------------------------------------------------------ public

    @property
    def cells(self) -> int:
        return int(self._grid[0] * self._grid[1])

    @property
    def batch_capacity(self) -> int:
        """Images per draw and per read-back."""
        return min(self.config.batch_size, self.cells)

    def global_index(self, spec: SampleSpec) -> int:
        return spec.index * len(self.models) + spec.model

    def cell_of(self, spec: SampleSpec) -> int:
        return self.global_index(spec) % self.cells

    def spec_at(self, i: int) -> SampleSpec:
        """Global sample index i: every model in turn (i mod M), then each one's next image (i div M)."""
        m = len(self.models)
        return SampleSpec(i % m, i // m)

    def params(self, specs: list[SampleSpec]) -> ParamTable:
        """The latent parameters of `specs`, fixed by (config.seed, model key, index)."""
        keys = [self.models[s.model].key for s in specs]
        return draw_params(self.config.variations, self.config.seed, keys, [s.index for s in specs], self.counts)

    def render(self, specs: list[SampleSpec], masks: bool = False, params: ParamTable | None = None):
        """(N, H, W, 3) uint8 images, and with masks=True (N, H, W) uint8 masks
        (255 model, 128 occluder, 0 background). `params` overrides the drawn parameters."""
        n, s = len(specs), self.config.size
        images = np.empty((n, s, s, 3), np.uint8)
        mask_out = np.empty((n, s, s), np.uint8) if masks else None
        if params is None:
            params = self.params(specs)
        for batch in self._batches(specs):
            img, msk = self._render_batch([specs[j].model for j in batch],
                                          np.array([self.cell_of(specs[j]) for j in batch]),
                                          params.take(np.asarray(batch)), masks)
            images[batch] = img
            if masks:
                mask_out[batch] = msk
        return (images, mask_out) if masks else images

    def release(self) -> None:
        self.ctx.release()

    def _batches(self, specs: list[SampleSpec]) -> list[list[int]]:
        """Consecutive runs of specs with distinct cells, at most batch_capacity long."""
        out: list[list[int]] = []
        current: list[int] = []
        used: set[int] = set()
        for j, spec in enumerate(specs):
            cell = self.cell_of(spec)
            if cell in used or len(current) >= self.batch_capacity:
                out.append(current)
                current, used = [], set()
            current.append(j)
            used.add(cell)
        if current:
            out.append(current)
        return out

    # ------------------------------------------------------------------ setup

    def _image_array(self, folder, kind: str, size: int, repeat: bool) -> moderngl.TextureArray:
        if folder is None:
            from assets import default_images

            data = default_images(kind, size)
        else:
            from .images import load_image_folder

            data = load_image_folder(folder, size, on_skip=report)
        tex = self.ctx.texture_array((size, size, len(data)), 4, np.ascontiguousarray(data).tobytes())
        tex.build_mipmaps()
        tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        tex.repeat_x = tex.repeat_y = repeat
        return tex

    def _make_framebuffers(self) -> None:
        ctx, s = self.ctx, self.config.size
        w, h = self._grid[0] * s, self._grid[1] * s
        samples = self.config.msaa if self.config.msaa > 1 else 0
        if samples:
            self._main = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer((w, h), 4, samples=samples),
                                   ctx.renderbuffer((w, h), 1, samples=samples)],
                depth_attachment=ctx.depth_renderbuffer((w, h), samples=samples),
            )
            self._resolved = self._texture_fbo(w, h)
        else:
            self._main = self._texture_fbo(w, h, depth=True)
            self._resolved = self._main
        self._final = self._texture_fbo(w, h)

    def _texture_fbo(self, w: int, h: int, depth: bool = False) -> moderngl.Framebuffer:
        color = self.ctx.texture((w, h), 4)
        mask = self.ctx.texture((w, h), 1)
        mask.filter = (moderngl.NEAREST, moderngl.NEAREST)
        return self.ctx.framebuffer(
            color_attachments=[color, mask],
            depth_attachment=self.ctx.depth_renderbuffer((w, h)) if depth else None,
        )

    def _gpu_model(self, i: int) -> _GpuModel:
        g = self._gpu.get(i)
        if g is None:
            model = self.models[i]
            lods = build_lods(model.mesh) if self.config.lod else [LevelOfDetail(MAX_SIZE, model.mesh)]
            g = _GpuModel(self.ctx, self._object, self._instances, model, lods, self._blank)
            self._gpu[i] = g
        return g

    # ------------------------------------------------------------------ drawing

    def _render_batch(self, models: list[int], cells: np.ndarray, table: ParamTable, masks: bool):
        ctx, s = self.ctx, self.config.size
        n = len(models)
        order = np.argsort(np.asarray(models), kind="stable")  # slot -> position in the batch
        slot_models = [models[j] for j in order]
        gpus = [self._gpu_model(m) for m in slot_models]
        rows, lights, occ = pack(table.take(order), cells=cells[order],
                                 has_uvs=np.array([g.has_uvs for g in gpus]))
        self._instances.write(rows.tobytes())
        self._lights.write(lights.tobytes())
        self._lights.bind_to_uniform_block(0)

        # one indirect command per model: count, instances, first index, base vertex, base instance
        groups: list[tuple[_GpuModel, moderngl.VertexArray]] = []
        commands = []
        start = 0
        while start < n:
            end = start
            while end < n and slot_models[end] == slot_models[start]:
                end += 1
            vao, count = gpus[start].level(s)
            groups.append((gpus[start], vao))
            commands.append((count, end - start, 0, 0, start))
            start = end
        self._commands.write(np.asarray(commands, np.uint32).tobytes())

        cols = self._grid[0]
        row_lo, row_hi = int(cells.min()) // cols, int(cells.max()) // cols + 1
        region = (0, row_lo * s, cols * s, (row_hi - row_lo) * s)  # only the atlas rows in use
        self._main.use()
        self._main.clear(0.0, 0.0, 0.0, 0.0, depth=1.0, viewport=region)
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)
        for i in range(4):
            ctx.enable_direct(CLIP_DISTANCE0 + i)
        ctx.depth_func = "<"
        self._textures.use(1)
        for g, (gpu, vao) in enumerate(groups):
            gpu.texture.use(0)
            vao.render_indirect(self._commands, moderngl.TRIANGLES, count=1, first=g)
        if len(occ):
            self._occ_buf.write(occ.tobytes())
            self._occ_vao.render(moderngl.TRIANGLES, instances=len(occ))
        for i in range(4):
            ctx.disable_direct(CLIP_DISTANCE0 + i)
        ctx.depth_func = "<="
        self._backgrounds.use(2)
        self._bg_vao.render(moderngl.TRIANGLE_STRIP, instances=n)
        ctx.disable(moderngl.DEPTH_TEST)
        if self._resolved is not self._main:
            ctx.copy_framebuffer(self._resolved, self._main)
        out = self._resolved
        if self.config.variations.augment2d.enabled:
            self._final.use()
            self._resolved.color_attachments[0].use(3)
            self._resolved.color_attachments[1].use(4)
            self._post_vao.render(moderngl.TRIANGLE_STRIP, instances=n)
            out = self._final
        return self._read(out, cells - row_lo * cols, region, masks)

    def _read(self, fbo: moderngl.Framebuffer, cells: np.ndarray, region: tuple, masks: bool):
        """One read-back of the rows in use, cut into the batch's cells."""
        s, cols = self.config.size, self._grid[0]
        rows = region[3] // s

        def cut(data: bytes, channels: int) -> np.ndarray:
            a = np.frombuffer(data, np.uint8).reshape(rows, s, cols, s, channels)
            a = a.transpose(0, 2, 1, 3, 4).reshape(rows * cols, s, s, channels)
            return a[cells, ::-1]  # GL rows run bottom-up

        images = cut(fbo.read(viewport=region, components=3, attachment=0, alignment=1), 3)
        if not masks:
            return images, None
        return images, cut(fbo.read(viewport=region, components=1, attachment=1, alignment=1), 1)[..., 0]
