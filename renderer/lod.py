"""Levels of detail: simplified meshes for images too small to show every triangle.

On a CPU rasteriser most triangles of a detailed model cover less than a pixel at 32-128 px, and the
time goes into vertex and triangle setup, not pixels. Two simplifiers:

- quadric-error edge collapse (fast-simplification), run on each material's part separately so
  colours stay where they were, to a face budget that grows with the image size;
- vertex clustering on a grid tied to the pixel size, for textured models (it keeps UV seams apart).

Either can eat a thin part or tear a many-part model, so a level is used only when its silhouettes
match the full mesh from 15 views at the output size (IoU and Hausdorff distance, `SilhouetteCheck`);
otherwise the full mesh is.
"""

from __future__ import annotations

from pathlib import Path

import moderngl
import numpy as np

from .camera import projection_matrices, view_matrices
from .mesh_cache import NPZ_ERRORS, mesh_from_npz, mesh_npz, npz_bytes
from .meshes import MeshData

# Silhouette agreement a simplified mesh must reach (intersection over union of the model's pixels,
# at the output size). At 64 px a mean IoU of 0.94 is about a third of a pixel of boundary shift, which
# side-by-side renders do not show; torn or eaten parts fall far below it.
MIN_MEAN_IOU = 0.94
MIN_VIEW_IOU = 0.88
# IoU hardly sees a thin part (a mast, a spoke) vanish; distances do: at most MAX_FAR_PIXELS pixels
# of either silhouette may lie more than FAR_PX pixels from the other (a few stray aliasing pixels
# pass, a lost part of any length does not).
FAR_PX = 2.0
MAX_FAR_PIXELS = 3
MIN_SAVING = 0.7  # a level must have at most this fraction of the faces to be worth it


LOD_VERSION = 3  # bump when simplification or the check change: old cache entries are then ignored


def cluster(mesh: MeshData, cells: int) -> MeshData:
    """Vertex clustering on a `cells`^3 grid over the unit-sphere model's bounding cube."""
    p = mesh.positions.astype(np.float64)
    q = np.clip(np.floor((p + 1.0) * (cells / 2.0)), 0, cells - 1).astype(np.int64)
    n = mesh.normals
    axis = np.abs(n).argmax(axis=1)
    bucket = axis * 2 + (n[np.arange(len(n)), axis] > 0)
    material_rows = np.concatenate([mesh.colors.astype(np.int64), mesh.layers[:, None].astype(np.int64) + 1], axis=1)
    _, material = np.unique(material_rows, axis=0, return_inverse=True)
    key = ((material.reshape(-1) * 6 + bucket) * cells + q[:, 0]) * cells + q[:, 1]
    key = key * cells + q[:, 2]
    if mesh.textures:  # keep UV seams apart: averaging across a seam smears the texture
        uvq = np.clip(np.floor(mesh.uvs * 8.0), -64, 63).astype(np.int64) + 64
        key = (key * 128 + uvq[:, 0]) * 128 + uvq[:, 1]
    _, first, cid = np.unique(key, return_index=True, return_inverse=True)
    cid = cid.reshape(-1)
    k = len(first)
    counts = np.bincount(cid, minlength=k).astype(np.float64)[:, None]

    def mean(values: np.ndarray) -> np.ndarray:
        out = np.zeros((k, values.shape[1]))
        np.add.at(out, cid, values)
        return out / counts

    positions = mean(p)
    normals = mean(n.astype(np.float64))
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    uvs = mean(mesh.uvs.astype(np.float64))
    faces = cid[mesh.indices.astype(np.int64)]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[keep]
    # the same triangle twice (clusters merged two faces): keep one per winding
    smallest = faces.argmin(axis=1)
    rolled = np.stack([faces[np.arange(len(faces)), (smallest + i) % 3] for i in range(3)], axis=1)
    _, unique_rows = np.unique(rolled, axis=0, return_index=True)
    faces = faces[np.sort(unique_rows)]
    return MeshData(
        positions=positions.astype(np.float32),
        normals=normals.astype(np.float32),
        uvs=uvs.astype(np.float32),
        colors=mesh.colors[first],
        layers=mesh.layers[first],
        indices=faces.astype(np.uint32),
        textures=mesh.textures,
        has_uvs=mesh.has_uvs,
    )


def face_budget(size: int) -> int:
    """Faces worth drawing for a model that fills at most size x size pixels.

    Linear in size: what a simplification loses shows along the outline, whose length in pixels grows
    with the size (the silhouette check at the output size has the last word).
    """
    return max(256, 8 * size)


def simplify_qem(mesh: MeshData, target_faces: int) -> MeshData | None:
    """Quadric-error simplification per material, flat shaded. None for textured models."""
    import fast_simplification

    if mesh.textures:
        return None
    ratio = min(1.0, target_faces / max(mesh.n_faces, 1))
    material_rows = np.concatenate([mesh.colors.astype(np.int64), mesh.layers[:, None].astype(np.int64) + 1], axis=1)
    _, material = np.unique(material_rows, axis=0, return_inverse=True)
    face_material = material.reshape(-1)[mesh.indices[:, 0]]
    positions, normals, colours, indices = [], [], [], []
    offset = 0
    for g in np.unique(face_material):
        faces = mesh.indices[face_material == g]
        # weld: parts often arrive with split vertices, which the collapse would treat as borders
        points, inverse = np.unique(np.round(mesh.positions[faces.reshape(-1)].astype(np.float64), 6), axis=0,
                                    return_inverse=True)
        welded = inverse.reshape(-1, 3)
        distinct = (welded[:, 0] != welded[:, 1]) & (welded[:, 1] != welded[:, 2]) & (welded[:, 0] != welded[:, 2])
        welded = welded[distinct]
        if len(welded) == 0:
            continue
        target = max(4, int(round(len(welded) * ratio)))
        if len(welded) > 16 and target < len(welded):
            points, welded = fast_simplification.simplify(points, welded.astype(np.int32), target_count=target, agg=7)
        p, n, f = _share_by_facing(points, welded)
        positions.append(p)
        normals.append(n)
        colours.append(np.repeat(mesh.colors[faces[0, 0]][None, :], len(p), axis=0))
        indices.append(f + offset)
        offset += len(p)
    if not positions:
        return None
    v = offset
    return MeshData(
        positions=np.concatenate(positions).astype(np.float32),
        normals=np.concatenate(normals).astype(np.float32),
        uvs=np.zeros((v, 2), np.float32),
        colors=np.concatenate(colours),
        layers=np.full(v, -1.0, np.float32),
        indices=np.concatenate(indices).astype(np.uint32),
        has_uvs=False,
    )


def _share_by_facing(points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indexed vertices shared only by faces facing the same way (dominant normal axis and sign).

    Keeps hard edges hard, as a flat-shaded low-poly model wants, with ~1.5 instead of 3 vertices a
    face: on a CPU rasteriser vertex work is what a small image costs.
    """
    corners = points[faces]
    fn = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area2 = np.linalg.norm(fn, axis=1)
    unit = fn / np.maximum(area2[:, None], 1e-20)
    axis = np.abs(unit).argmax(axis=1)
    bucket = axis * 2 + (unit[np.arange(len(unit)), axis] > 0)
    key = faces.astype(np.int64) * 6 + bucket[:, None]
    uniq, inverse = np.unique(key.reshape(-1), return_inverse=True)
    inverse = inverse.reshape(-1)
    normal = np.zeros((len(uniq), 3))
    np.add.at(normal, inverse, np.repeat(fn, 3, axis=0))  # area-weighted
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    return points[uniq // 6], normal, inverse.reshape(-1, 3)


_VIEWS = np.array([(az, el) for el in (-15.0, 25.0, 70.0) for az in (0.0, 60.0, 135.0, 225.0, 300.0)])


class SilhouetteCheck:
    """Renders a mesh's silhouette from fixed views, to compare a simplified mesh with the original."""

    VERT = """#version 330
    uniform mat4 u_mvp;
    in vec3 in_pos;
    void main() { gl_Position = u_mvp * vec4(in_pos, 1.0); }
    """
    FRAG = """#version 330
    out vec4 f;
    void main() { f = vec4(1.0); }
    """

    def __init__(self, ctx: moderngl.Context):
        self.ctx = ctx
        self.program = ctx.program(vertex_shader=self.VERT, fragment_shader=self.FRAG)
        b = len(_VIEWS)
        dist, fov = np.full(b, 1.0), np.full(b, 40.0)
        view = view_matrices(_VIEWS[:, 0], _VIEWS[:, 1], dist, np.zeros(b), fov)
        proj = projection_matrices(dist, fov, np.zeros((b, 2)))
        self.mvps = [np.ascontiguousarray((p @ v).T, dtype=np.float32) for p, v in zip(proj, view, strict=True)]
        self._fbos: dict[int, moderngl.Framebuffer] = {}

    def masks(self, mesh: MeshData, size: int) -> np.ndarray:
        fbo = self._fbos.get(size)
        if fbo is None:
            fbo = self.ctx.simple_framebuffer((size, size), components=1)
            self._fbos[size] = fbo
        vbo = self.ctx.buffer(np.ascontiguousarray(mesh.positions, dtype=np.float32).tobytes())
        ibo = self.ctx.buffer(np.ascontiguousarray(mesh.indices, dtype=np.uint32).tobytes())
        vao = self.ctx.vertex_array(self.program, [(vbo, "3f", "in_pos")], index_buffer=ibo, index_element_size=4)
        out = []
        fbo.use()
        self.ctx.disable(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        for mvp in self.mvps:
            fbo.clear(0.0)
            self.program["u_mvp"].write(mvp.tobytes())
            vao.render(moderngl.TRIANGLES)
            out.append(np.frombuffer(fbo.read(components=1, alignment=1), np.uint8) > 0)
        vao.release()
        vbo.release()
        ibo.release()
        return np.stack(out)

    def agreement(self, full: MeshData, simple: MeshData, size: int) -> tuple[float, float, int]:
        """(mean IoU, worst IoU, most pixels in one view lying over FAR_PX from the other silhouette)."""
        from scipy.ndimage import distance_transform_edt

        a, b = self.masks(full, size), self.masks(simple, size)
        inter = (a & b).sum(axis=1)
        union = np.maximum((a | b).sum(axis=1), 1)
        iou = inter / union
        far = 0
        for x, y in zip(a.reshape(-1, size, size), b.reshape(-1, size, size), strict=True):
            if not x.any() or not y.any():
                far = max(far, int(x.sum() + y.sum()))
                continue
            to_y, to_x = distance_transform_edt(~y), distance_transform_edt(~x)
            far = max(far, int((to_y[x] > FAR_PX).sum() + (to_x[y] > FAR_PX).sum()))
        return float(iou.mean()), float(iou.min()), far

    def accepts(self, full: MeshData, simple: MeshData, size: int) -> bool:
        mean, worst, far = self.agreement(full, simple, size)
        return mean >= MIN_MEAN_IOU and worst >= MIN_VIEW_IOU and far <= MAX_FAR_PIXELS


def simplify_for(mesh: MeshData, size: int, check: SilhouetteCheck) -> MeshData | None:
    """The simplest candidate that passes the silhouette check at `size` px; None: draw the full mesh."""
    candidates = []
    for factor in (0.5, 1, 2, 4):
        budget = int(face_budget(size) * factor)
        if budget > MIN_SAVING * mesh.n_faces:
            break
        candidates.append(lambda b=budget: simplify_qem(mesh, b))
    for px_per_cell in (1.0, 0.5):
        cells = max(8, int(round(size / px_per_cell / 2.0)))
        candidates.append(lambda c=cells: cluster(mesh, c))
    for make in candidates:
        simple = make()
        if simple is None or simple.n_faces > MIN_SAVING * mesh.n_faces:
            continue
        if check.accepts(mesh, simple, size):
            return simple
    return None


def _mesh_key(mesh: MeshData, size: int) -> str:
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for a in (mesh.positions, mesh.normals, mesh.colors, mesh.layers, mesh.indices, mesh.uvs):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(f"{size}:{LOD_VERSION}:{MIN_MEAN_IOU}:{MIN_VIEW_IOU}:{FAR_PX}:{MAX_FAR_PIXELS}".encode())
    return h.hexdigest()


def cached_simplify_for(mesh: MeshData, size: int, check: SilhouetteCheck, cache: Path | None) -> MeshData | None:
    """simplify_for, remembered on disk: the check renders 30 silhouettes per candidate, and every
    render job, worker and rerun at the same size would otherwise repeat it."""
    if cache is None:
        return simplify_for(mesh, size, check)
    path = Path(cache) / f"{_mesh_key(mesh, size)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as d:
                if int(d["simplified"]) == 0:
                    return None
                return mesh_from_npz(d, mesh.textures, mesh.has_uvs)
        except NPZ_ERRORS:
            pass  # unreadable cache entry: rebuild it
    simple = simplify_for(mesh, size, check)
    try:
        from .export import atomic_write_bytes

        atomic_write_bytes(path, mesh_npz(simple, simplified=1) if simple is not None else npz_bytes(simplified=0))
    except OSError:
        pass  # a read-only cache is only slower
    return simple
