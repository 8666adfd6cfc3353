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

from .indexing import SampleIndex, SampleSpec
from .library import ModelLibrary, report
from .lod import SilhouetteCheck, cached_simplify_for
from .meshes import MeshData
from .noise import noise_volume
from .packing import LIGHT_VEC4S, OCCLUDER_FLOATS, SAMPLE_FLOATS, pack
from .platform import create_context
from .pool import GeometryPool
from .sampling import MAX_OCCLUDERS, ImageCounts, ParamTable, draw_params
from .sensor import CAMERA_FLOATS, apply_jpeg, camera_rows
from .variations import VariationConfig

CLIP_DISTANCE0 = 0x3000
MIN_SIZE, MAX_SIZE = 16, 1024
MAX_BATCH = 256  # the light uniform block holds this many samples (LIGHT_VEC4S vec4 each, < 64 KiB)
ATLAS_SIDE = 4096  # px; the atlas holds (ATLAS_SIDE // size)^2 cells, at most MAX_BATCH

_OBJECT_INSTANCE = ("16f 4f 4f 4f 4f 4f 4f 4f 4f 128x/i",
                    ("i_mvp", "i_view0", "i_view1", "i_view2", "i_tex", "i_col1", "i_col2", "i_dir", "i_cell"))
_BACKGROUND_INSTANCE = ("192x 4f 4f 4f 4f 4f 4f 32x/i",
                        ("i_bg_info", "i_bg_a", "i_bg_b", "i_bg_crop", "i_warp0", "i_warp1"))
_SHADOW_INSTANCE = ("16f 112x 4f 96x 4f 4f/i", ("i_mvp", "i_cell", "i_shadow0", "i_shadow1"))
_OCCLUDER_INSTANCE = ("16f 4f 4f 4f 4f 4f 4f/i", ("i_mvp", "i_n0", "i_n1", "i_n2", "i_color", "i_info", "i_post"))


@dataclass
class RenderConfig:
    size: int = 64
    batch_size: int = 256  # images per draw and per read-back (at most the atlas cells)
    # anti-aliasing: each image is drawn at supersample x size and box-filtered down, so edges, thin parts
    # and textures come out soft, as in a downsampled camera image (1 = off: hard, aliased edges)
    supersample: int = 2
    msaa: int = 0  # hardware samples per pixel on top; 0 = off
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
        if self.supersample not in (1, 2, 3, 4) or int(self.size) * self.supersample > MAX_SIZE * 2:
            raise ValueError(f"supersample must be 1, 2, 3 or 4 with size x supersample <= {2 * MAX_SIZE} "
                             f"(got {self.supersample} at {self.size} px)")

    @property
    def draw_size(self) -> int:
        """Pixels per cell side as drawn (before the supersampling filter)."""
        return int(self.size) * self.supersample


def _lod_cache():
    from assets.models import cache_dir

    return cache_dir() / "lod"


def atlas_columns(size: int) -> int:
    """Cells per atlas side: a function of the image size only (see Renderer.__init__)."""
    return max(1, min(int(math.isqrt(MAX_BATCH)), ATLAS_SIDE // size))


def batch_capacity(config: RenderConfig) -> int:
    """Images per draw and per read-back."""
    return min(config.batch_size, atlas_columns(config.draw_size) ** 2)


def _attributes(program: moderngl.Program, buffer: moderngl.Buffer, fmt: str, names) -> tuple:
    """A VAO binding that skips (as padding) attributes the shader compiler removed as unused."""
    tokens = fmt.split()
    divisor = ""
    if tokens[-1].endswith("/i"):
        tokens[-1], divisor = tokens[-1][:-2], "/i"
    out, kept, names = [], [], list(names)
    for tok in tokens:
        if tok.endswith("x"):
            out.append(tok)
            continue
        name = names.pop(0)
        count, kind = (tok.split("f") + [""])[:2]
        nbytes = int(count or 1) * (1 if kind == "1" else 4)
        if name in program:
            out.append(tok)
            kept.append(name)
        else:
            out.append(f"{nbytes}x")
    return (buffer, " ".join(out) + divisor, *kept)


def _program(ctx: moderngl.Context, vert: str, frag: str, defines: tuple = ()) -> moderngl.Program:
    def src(name: str) -> str:
        return resources.files("renderer").joinpath("shaders", name).read_text()

    lines = [f"#define {k} {int(v)}" for k, v in (("MAX_BATCH", MAX_BATCH), ("LIGHT_VEC4S", LIGHT_VEC4S),
                                                   *defines)]
    header = "#version 430\n" + "\n".join(lines) + "\n" + src("common.glsl")
    return ctx.program(vertex_shader=header + src(vert), fragment_shader=header + src(frag))


def _object_variant(mode: int, kind: int, has_uvs: bool, has_texture: bool) -> tuple:
    """The compile-time switches of the object shader one sample needs."""
    return (("TEXTURE_MODE", mode), ("PATTERN", kind if mode == 2 else 0),
            ("MODEL_TEXTURE", mode == 0 and has_texture), ("TRIPLANAR", mode == 3 and not has_uvs))


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


def _runs(keys: list) -> list[tuple[object, list[int]]]:
    """(key, positions) for each run of equal consecutive keys."""
    out: list[tuple[object, list[int]]] = []
    for i, k in enumerate(keys):
        if out and out[-1][0] == k:
            out[-1][1].append(i)
        else:
            out.append((k, [i]))
    return out


class _GpuModel:
    """Where a model's geometry (at the level of detail for this renderer's size) sits in the pool."""

    def __init__(self, ctx: moderngl.Context, pool: GeometryPool, full: MeshData, mesh: MeshData,
                 blank: moderngl.TextureArray):
        self.first_index, self.base_vertex, self.index_count = pool.add(mesh)
        tex = full.textures
        self.has_texture = bool(tex)
        if tex:
            s = tex[0].shape[0]
            self.texture = ctx.texture_array((s, s, len(tex)), 4, np.stack(tex).tobytes())
            self.texture.build_mipmaps()
            self.texture.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
            self.texture.repeat_x = self.texture.repeat_y = True
        else:
            self.texture = blank
        self.has_uvs = full.has_uvs

    def command(self, instances: int, base_instance: int) -> tuple[int, int, int, int, int]:
        return (self.index_count, instances, self.first_index, self.base_vertex, base_instance)


class Renderer:
    """Renders SampleSpecs into (N, H, W, 3) uint8 arrays.

    >>> r = Renderer(ModelLibrary.load(path), RenderConfig(size=64))
    >>> images = r.render([SampleSpec(m, k) for m in range(len(r.models)) for k in range(4)])
    """

    def __init__(self, library: ModelLibrary, config: RenderConfig, ctx: moderngl.Context | None = None):
        self.library = library
        self.models = library.models
        self.sample_index = SampleIndex([m.label for m in self.models])
        self.config = config
        self.ctx = ctx or create_context(config.device)
        ctx = self.ctx
        self._programs: dict[tuple, moderngl.Program] = {}
        self._blank = ctx.texture_array((1, 1, 1), 4, bytes([255, 255, 255, 255]))
        self._image_counts: dict[str, int] = {}
        self._bg_tiles, self._bg_inset = 1, 0.0
        self._textures = self._image_array(config.variations.texture.image_dir, "textures",
                                           config.texture_image_size, repeat=True)
        self._backgrounds = self._image_array(config.variations.background.image_dir, "backgrounds",
                                              config.background_image_size, repeat=False)
        self.counts = ImageCounts(self._image_counts["textures"], self._image_counts["backgrounds"])
        vol = noise_volume()
        self._noise = ctx.texture3d(vol.shape, 1, np.ascontiguousarray(vol).tobytes())
        self._noise.repeat_x = self._noise.repeat_y = self._noise.repeat_z = True
        # The atlas layout depends on the image size only, and a sample's cell on its global index
        # only: rasterisation rounding differs (slightly) between cells, so this is what makes an
        # image bit-identical whatever the batch size, order, worker or process.
        cols = atlas_columns(config.draw_size)
        self._grid = (cols, cols)
        cap = self.batch_capacity
        self._instances = ctx.buffer(reserve=cap * SAMPLE_FLOATS * 4, dynamic=True)
        self._lights = ctx.buffer(reserve=MAX_BATCH * LIGHT_VEC4S * 16, dynamic=True)
        self._occ_buf = ctx.buffer(reserve=cap * MAX_OCCLUDERS * OCCLUDER_FLOATS * 4, dynamic=True)
        self._bg_instances = ctx.buffer(reserve=cap * SAMPLE_FLOATS * 4, dynamic=True)
        self._commands = ctx.buffer(reserve=(cap + 2) * 20, dynamic=True)  # indexed draws (<= 1 per sample)
        self._array_commands = ctx.buffer(reserve=4 * 20, dynamic=True)  # background quads
        quad = ctx.buffer(np.array([0, 0, 1, 0, 0, 1, 1, 1], np.float32).tobytes())
        self._bg_vaos = []
        for mode in range(4):
            prog = self._program("background.vert", "background.frag", (("BG_MODE", mode),))
            self._bg_vaos.append(ctx.vertex_array(prog, [
                (quad, "2f", "in_corner"), _attributes(prog, self._bg_instances, *_BACKGROUND_INSTANCE)]))
        prog = self._program("shadow.vert", "shadow.frag")
        self._shadow_vao = ctx.vertex_array(prog, [(quad, "2f", "in_corner"),
                                                   _attributes(prog, self._instances, *_SHADOW_INSTANCE)])
        cv, ci = _cube()
        cube_vbo, cube_ibo = ctx.buffer(cv.tobytes()), ctx.buffer(ci.tobytes())
        self._occ_vaos = []
        for patterned in (0, 1):
            prog = self._program("occluder.vert", "occluder.frag", (("PATTERNED", patterned),))
            self._occ_vaos.append(ctx.vertex_array(
                prog,
                [(cube_vbo, "3f 3f", "in_pos", "in_normal"), _attributes(prog, self._occ_buf, *_OCCLUDER_INSTANCE)],
                index_buffer=cube_ibo, index_element_size=4))
        self._cube_indices = len(ci)
        # the camera pass: anti-aliasing filter, white balance, blur, noise (shaders/camera.frag)
        self._cam_instances = ctx.buffer(reserve=cap * CAMERA_FLOATS * 4, dynamic=True)
        self._cam_vaos = []
        for p in (1, 2):
            prog = self._program("camera.vert", "camera.frag", (("PASS", p), ("SIZE", config.size),
                                                                ("SUPERSAMPLE", config.supersample)))
            prog["u_src"].value = 6
            self._cam_vaos.append(ctx.vertex_array(prog, [
                (quad, "2f", "in_corner"),
                _attributes(prog, self._cam_instances, "4f 4f 4f/i", ("i_cam0", "i_cam1", "i_seed"))]))
        self._gpu: dict[int, _GpuModel] = {}
        self._frame_points: dict[int, np.ndarray] = {}
        self._pool = GeometryPool(ctx)
        self._check: SilhouetteCheck | None = None
        self._timer: PassTimer | None = None
        self._make_framebuffers()

    # ------------------------------------------------------------------ public

    @property
    def cells(self) -> int:
        return int(self._grid[0] * self._grid[1])

    @property
    def batch_capacity(self) -> int:
        """Images per draw and per read-back."""
        return batch_capacity(self.config)

    def global_index(self, spec: SampleSpec) -> int:
        return self.sample_index.global_index(spec)

    def cell_of(self, spec: SampleSpec) -> int:
        return self.global_index(spec) % self.cells

    def spec_at(self, i: int) -> SampleSpec:
        """Global sample index i: class-balanced, see renderer.indexing."""
        return self.sample_index.spec_at(i)

    def params(self, specs: list[SampleSpec]) -> ParamTable:
        """The latent parameters of `specs`, fixed by (config.seed, model key, index)."""
        keys = [self.models[s.model].key for s in specs]
        labels = [self.models[s.model].label for s in specs]
        return draw_params(self.config.variations, self.config.seed, keys, [s.index for s in specs], self.counts,
                           labels)

    def render(self, specs: list[SampleSpec], masks: bool = False, params: ParamTable | None = None):
        """(N, H, W, 3) uint8 images, and with masks=True (N, H, W) uint8 masks
        (255 model, 128 occluder, 0 background). `params` overrides the drawn parameters."""
        n, s = len(specs), self.config.size
        images = np.empty((n, s, s, 3), np.uint8)
        mask_out = np.empty((n, s, s), np.uint8) if masks else None
        mark = self._timer.mark if self._timer is not None else _no_mark
        mark(None)
        if params is None:
            params = self.params(specs)
        mark("latent parameters (CPU)")
        for batch in self._batches(specs):
            table = params.take(np.asarray(batch))
            img, msk = self._render_batch([specs[j].model for j in batch],
                                          np.array([self.cell_of(specs[j]) for j in batch]), table, masks)
            images[batch] = apply_jpeg(img, table)
            mark("JPEG (CPU)")
            if masks:
                mask_out[batch] = msk
        return (images, mask_out) if masks else images

    def stats(self) -> dict:
        """Models on the GPU so far, and their faces: as loaded, and as drawn at this size."""
        used = list(self._gpu)
        return {
            "models_uploaded": len(used),
            "faces_full": sum(self.models[i].n_faces for i in used),
            "faces_drawn": sum(self._gpu[i].index_count // 3 for i in used),
        }

    def time_passes(self, on: bool = True) -> PassTimer | None:
        """Per-pass wall time from now on (`PassTimer.seconds`), for benchmarks: it waits for the GL to finish
        each pass, so it slows rendering a little and leaves every pixel as it is."""
        if self._timer is not None:
            self._timer.stop()
        self._timer = PassTimer(self.ctx) if on else None
        return self._timer

    def release(self) -> None:
        self.ctx.release()

    def _batches(self, specs: list[SampleSpec]) -> list[list[int]]:
        """Batches of specs with distinct cells, at most batch_capacity long, as few as the cells allow
        whatever the order: the k-th spec of each cell goes to round k (in order), rounds are cut into
        batches. Consecutive global indices give consecutive runs; an order that revisits cells early (one
        image per model in turn) no longer splits into many small batches."""
        rounds: list[list[int]] = []
        seen: dict[int, int] = {}
        for j, spec in enumerate(specs):
            cell = self.cell_of(spec)
            k = seen.get(cell, 0)
            seen[cell] = k + 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(j)
        cap = self.batch_capacity
        return [r[i:i + cap] for r in rounds for i in range(0, len(r), cap)]

    # ------------------------------------------------------------------ setup

    def _image_array(self, folder, kind: str, size: int, repeat: bool) -> moderngl.TextureArray:
        """The texture or background images as one texture array. A folder may hold more images than a
        GL array has layers (2,048 on llvmpipe and NVIDIA): backgrounds are then packed as tiles, many
        per layer (`self._bg_tiles` per side; packing.pack maps crops into them); textures, which must
        repeat, are an evenly spread subset of the folder."""
        if folder is None:
            from assets import default_images

            data = default_images(kind, size)
        else:
            from .images import load_image_folder

            limit = None if not repeat else self.ctx.info["GL_MAX_ARRAY_TEXTURE_LAYERS"]
            data = load_image_folder(folder, size, on_skip=report, limit=limit)
        self._image_counts[kind] = len(data)
        layers = self.ctx.info["GL_MAX_ARRAY_TEXTURE_LAYERS"]
        tiles = 1
        while math.ceil(len(data) / tiles ** 2) > layers:
            tiles *= 2
        tile_side = data.shape[1]
        if tiles > 1:
            data = _tile_layers(data, tiles)
        if kind == "backgrounds":
            # half a texel in from each tile's edge: bilinear filtering never reads the neighbour
            self._bg_tiles, self._bg_inset = tiles, 0.5 / tile_side if tiles > 1 else 0.0
        side = data.shape[1]
        tex = self.ctx.texture_array((side, side, len(data)), 4, np.ascontiguousarray(data).tobytes())
        if tiles == 1:
            tex.build_mipmaps()
            tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        else:  # no mipmaps over tiles (they would blend neighbours); folders this big are kept at low resolution
            tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        tex.repeat_x = tex.repeat_y = repeat
        return tex

    def _make_framebuffers(self) -> None:
        ctx, s = self.ctx, self.config.draw_size
        # the camera pass's atlases, at output size: pass 1 in float (no rounding between the passes)
        ow, oh = self._grid[0] * self.config.size, self._grid[1] * self.config.size
        between = ctx.texture((ow, oh), 4, dtype="f4")
        between.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self._cam_between = ctx.framebuffer(color_attachments=[between])
        self._cam_out = ctx.framebuffer(color_attachments=[ctx.texture((ow, oh), 4)])
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

    def _texture_fbo(self, w: int, h: int, depth: bool = False) -> moderngl.Framebuffer:
        color = self.ctx.texture((w, h), 4)
        mask = self.ctx.texture((w, h), 1)
        mask.filter = (moderngl.NEAREST, moderngl.NEAREST)
        return self.ctx.framebuffer(
            color_attachments=[color, mask],
            depth_attachment=self.ctx.depth_renderbuffer((w, h)) if depth else None,
        )

    def _program(self, vert: str, frag: str, defines: tuple = ()) -> moderngl.Program:
        """Compiled once per set of switches, with its uniforms and texture units set."""
        key = (vert, frag, defines)
        prog = self._programs.get(key)
        if prog is None:
            prog = _program(self.ctx, vert, frag, defines)
            units = {"u_model_tex": 0, "u_images": 1, "u_backgrounds": 2, "u_noise": 5}
            for name, unit in units.items():
                if name in prog:
                    prog[name].value = unit
            if "u_grid" in prog:
                prog["u_grid"].value = self._grid
            if "Lights" in prog:
                prog["Lights"].binding = 0
            self._programs[key] = prog
        return prog

    def _gpu_model(self, i: int) -> _GpuModel:
        g = self._gpu.get(i)
        if g is None:
            full = mesh = self.models[i].mesh  # one read of a cached model's arrays, dropped once uploaded
            if self.config.lod:
                if self._check is None:
                    self._check = SilhouetteCheck(self.ctx)
                mesh = cached_simplify_for(full, self.config.draw_size, self._check, _lod_cache()) or full
            g = _GpuModel(self.ctx, self._pool, full, mesh, self._blank)
            self._gpu[i] = g
        return g

    def _frame_points_of(self, models: list[int]) -> list[np.ndarray]:
        """The convex-hull vertices (P, 3) of each sample's model, one array per model, for framing."""
        for m in set(models) - set(self._frame_points):
            self._frame_points[m] = hull_points(self.models[m].mesh.positions)
        return [self._frame_points[m] for m in models]

    # ------------------------------------------------------------------ drawing

    def _render_batch(self, models: list[int], cells: np.ndarray, table: ParamTable, masks: bool):
        ctx, s = self.ctx, self.config.draw_size
        n = len(models)
        mark = self._timer.mark if self._timer is not None else _no_mark
        mark(None)
        gpus = [self._gpu_model(m) for m in models]
        variants = [_object_variant(int(table["tex_mode"][j]), int(table["tex_kind"][j]), gpus[j].has_uvs,
                                    gpus[j].has_texture) for j in range(n)]
        # slots: the batch sorted by (shader variant, model), so that each model's samples are one
        # instance range and each variant one multi-draw
        order = np.array(sorted(range(n), key=lambda j: (variants[j], models[j])), dtype=np.int64)
        rows, lights, occ = pack(table.take(order), cells=cells[order],
                                 has_uvs=np.array([gpus[j].has_uvs for j in order]),
                                 frame_points=self._frame_points_of([models[j] for j in order]),
                                 bg_tiles=self._bg_tiles, bg_inset=self._bg_inset)
        self._instances.write(rows.tobytes())
        self._lights.write(lights.tobytes())
        self._lights.bind_to_uniform_block(0)

        # indirect commands (count, instances, first index, base vertex, base instance)
        draws, commands = [], []  # draws: (program, first command, commands, texture or None)
        for variant, slots in _runs([variants[j] for j in order]):
            prog = self._program("object.vert", "object.frag", variant)
            own_texture = dict(variant)["MODEL_TEXTURE"]  # only textured models have this variant
            first = len(commands)
            for _, run in _runs([models[order[i]] for i in slots]):
                start = slots[run[0]]
                gpu = gpus[order[start]]
                commands.append(gpu.command(len(run), start))
                if own_texture:  # each model binds its own texture: a draw of its own
                    draws.append((prog, len(commands) - 1, 1, gpu.texture))
            if not own_texture:
                draws.append((prog, first, len(commands) - first, self._blank))
        occ_draws = []
        if len(occ):
            occ = occ[np.argsort(occ[:, 31], kind="stable")]
            for patterned, idx in _runs([int(p) for p in occ[:, 31]]):
                occ_draws.append((len(commands), self._occ_vaos[patterned]))
                commands.append((self._cube_indices, len(idx), 0, 0, idx[0]))
            self._occ_buf.write(occ.tobytes())
        self._commands.write(np.asarray(commands, np.uint32).tobytes())
        bg_order = np.argsort(rows[:, 48], kind="stable")
        self._bg_instances.write(rows[bg_order].tobytes())
        bg_draws, bg_commands = [], []
        for mode, idx in _runs([int(m) for m in rows[bg_order, 48]]):
            bg_draws.append((len(bg_commands), self._bg_vaos[mode]))
            bg_commands.append((4, len(idx), 0, idx[0], 0))  # moderngl strides commands by 20 bytes
        self._array_commands.write(np.asarray(bg_commands, np.uint32).tobytes())
        mark("pack (CPU)")

        cols = self._grid[0]
        row_lo, row_hi = int(cells.min()) // cols, int(cells.max()) // cols + 1
        region = (0, row_lo * s, cols * s, (row_hi - row_lo) * s)  # only the atlas rows in use
        self._main.use()
        self._main.clear(0.0, 0.0, 0.0, 0.0, depth=1.0, viewport=region)
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)
        _clip_to_cells(ctx, True)
        ctx.depth_func = "<"
        self._textures.use(1)
        self._noise.use(5)
        for prog, first, count, texture in draws:
            texture.use(0)
            vao = self._pool.vao(prog, self._instances, _OBJECT_INSTANCE, _attributes)
            vao.render_indirect(self._commands, moderngl.TRIANGLES, count=count, first=first)
        mark("objects")
        for g, vao in occ_draws:
            vao.render_indirect(self._commands, moderngl.TRIANGLES, count=1, first=g)
        _clip_to_cells(ctx, False)
        mark("occluders")
        ctx.depth_func = "<="
        self._backgrounds.use(2)
        for g, vao in bg_draws:
            vao.render_indirect(self._array_commands, moderngl.TRIANGLE_STRIP, count=1, first=g)
        mark("backgrounds")
        if (rows[:, 75] > 0).any():  # contact shadows: darken the ground the model does not hide
            self._draw_shadows(n)
            mark("contact shadows")
        ctx.disable(moderngl.DEPTH_TEST)
        if self._resolved is not self._main:
            ctx.copy_framebuffer(self._resolved, self._main)
        self._camera_pass(cells, table)
        mark("camera pass (filter, white balance, blur, noise)")
        out = self._read(cells - row_lo * cols, (row_lo, row_hi), masks)
        mark("read-back")
        return out

    def _draw_shadows(self, n: int) -> None:
        """One quad per sample (the instance rows in draw order), multiplied into colour; depth is tested,
        not written, so nothing drawn later is hidden by a shadow."""
        ctx = self.ctx
        _clip_to_cells(ctx, True)
        ctx.depth_func = "<"
        ctx.enable(moderngl.BLEND)
        ctx.blend_func = moderngl.ZERO, moderngl.ONE_MINUS_SRC_ALPHA
        self._main.depth_mask = False
        self._shadow_vao.render(moderngl.TRIANGLE_STRIP, vertices=4, instances=n)
        self._main.depth_mask = True
        ctx.disable(moderngl.BLEND)
        _clip_to_cells(ctx, False)

    def _camera_pass(self, cells: np.ndarray, table: ParamTable) -> None:
        """The drawn atlas -> the output-size atlas, through the camera's filter and effects."""
        self._cam_instances.write(camera_rows(table, cells).tobytes())
        sources = (self._resolved.color_attachments[0], self._cam_between.color_attachments[0])
        for fbo, source, vao in zip((self._cam_between, self._cam_out), sources, self._cam_vaos, strict=True):
            fbo.use()
            source.use(6)
            vao.render(moderngl.TRIANGLE_STRIP, vertices=4, instances=len(cells))

    def _read(self, cells: np.ndarray, atlas_rows: tuple[int, int], masks: bool):
        """One read-back of the output atlas's rows in use (and of the drawn masks), cut into cells."""
        cols, k = self._grid[0], self.config.supersample
        rows = atlas_rows[1] - atlas_rows[0]

        def cut(fbo: moderngl.Framebuffer, s: int, channels: int, attachment: int) -> np.ndarray:
            region = (0, atlas_rows[0] * s, cols * s, rows * s)
            data = fbo.read(viewport=region, components=channels, attachment=attachment, alignment=1)
            a = np.frombuffer(data, np.uint8).reshape(rows, s, cols, s, channels)
            a = a.transpose(0, 2, 1, 3, 4).reshape(rows * cols, s, s, channels)
            return a[cells, ::-1]  # GL rows run bottom-up

        images = cut(self._cam_out, self.config.size, 3, 0)
        if not masks:
            return images, None
        mask = cut(self._resolved, self.config.draw_size, 1, 1)[..., 0]
        if k > 1:  # a pixel is model where any of its samples is: the label of the most important thing in it
            n, h = mask.shape[0], mask.shape[1] // k
            mask = mask.reshape(n, h, k, h, k).max(axis=(2, 4))
        return images, mask


class PassTimer:
    """Wall time per rendering pass, summed over batches, and where the driver measures it, the GPU's own time
    (a GL_TIME_ELAPSED query per pass: `gpu_seconds`, empty where the driver gives none, as llvmpipe does). Each
    mark waits for the GL (ctx.finish), so a pass's time is its own and not the next one's; without a timer
    nothing waits. Wall time minus GPU time is what the CPU spends issuing the pass."""

    _NO_RESULT = 0xFFFFFFFF  # what moderngl reads back from a driver that does not time

    def __init__(self, ctx: moderngl.Context):
        self.ctx, self.seconds, self.gpu_seconds, self._t = ctx, {}, {}, None
        self._query = None
        try:
            self._query = ctx.query(time=True)
        except Exception:  # a context without timer queries: wall time only
            pass
        self._timing_gpu = False

    def mark(self, name: str | None) -> None:
        """End the pass called `name` (None: start timing here)."""
        import time

        if self._timing_gpu:
            self._query.__exit__(None, None, None)
            self._timing_gpu = False
        self.ctx.finish()
        now = time.perf_counter()
        if name is not None and self._t is not None:
            self.seconds[name] = self.seconds.get(name, 0.0) + now - self._t
            if self._query is not None:
                ns = self._query.elapsed
                if 0 <= ns < self._NO_RESULT:
                    self.gpu_seconds[name] = self.gpu_seconds.get(name, 0.0) + ns * 1e-9
        self._t = now
        if self._query is not None:
            self._query.__enter__()
            self._timing_gpu = True

    def stop(self) -> None:
        """End the open GPU query (a renderer whose timer is switched off must not leave one running)."""
        if self._timing_gpu:
            self._query.__exit__(None, None, None)
            self._timing_gpu = False


def _clip_to_cells(ctx: moderngl.Context, on: bool) -> None:
    """The four clip distances that keep each sample's geometry inside its atlas cell."""
    for i in range(4):
        (ctx.enable_direct if on else ctx.disable_direct)(CLIP_DISTANCE0 + i)


def _no_mark(name: str | None) -> None:
    pass


def hull_points(positions: np.ndarray, limit: int = 512) -> np.ndarray:
    """The vertices of the convex hull of `positions` (at most `limit`, evenly spread): what bounds the
    model's silhouette from any view."""
    from scipy.spatial import ConvexHull, QhullError

    pts = np.asarray(positions, dtype=np.float64)
    try:
        pts = pts[ConvexHull(pts).vertices]
    except (QhullError, ValueError):  # flat or degenerate: every vertex bounds it
        pass
    if len(pts) > limit:
        pts = pts[np.linspace(0, len(pts) - 1, limit).astype(int)]
    return pts


def _tile_layers(data: np.ndarray, tiles: int) -> np.ndarray:
    """(N, s, s, 4) images -> (ceil(N / tiles^2), tiles s, tiles s, 4) layers of tiles; image n is tile
    n mod tiles^2 (column-major from the bottom-left, as packing._tile_crop reads it) of layer n div tiles^2."""
    n, s = len(data), data.shape[1]
    per = tiles * tiles
    layers = -(-n // per)
    padded = np.zeros((layers * per, s, s, 4), np.uint8)
    padded[:n] = data
    # (layer, ty, tx, s, s, 4) -> (layer, ty s, tx s, 4): GL rows go bottom-up, and so does ty
    return padded.reshape(layers, tiles, tiles, s, s, 4).transpose(0, 1, 3, 2, 4, 5).reshape(
        layers, tiles * s, tiles * s, 4)
