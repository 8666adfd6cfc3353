"""Finding models in a models folder and loading them into flat, normalised vertex arrays.

Models folder convention (VisDA / ShapeNet style): the first-level folder name is the label.

    MODELS/<class>/<model>.glb                  one file per model
    MODELS/<class>/<model>/<model>.obj (+.mtl)  one folder per model (any depth inside)

Every model is flattened (scene-graph transforms applied), centred on its bounding-box centre
and scaled so that it fits in the unit sphere, so that one camera distance frames every model.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import numpy as np

log = logging.getLogger("mixreal")

MODEL_EXTENSIONS = (".obj", ".glb", ".gltf", ".ply", ".off", ".stl")
# 3D formats users have that trimesh cannot read: reported rather than silently ignored
KNOWN_UNSUPPORTED = (".fbx", ".blend", ".3ds", ".max", ".c4d", ".dae", ".usd", ".usdz", ".ma", ".mb")
# glTF extensions a file may *require* that our loader handles (trimesh reads these)
SUPPORTED_GLTF_EXTENSIONS = {
    "KHR_materials_unlit",
    "KHR_texture_transform",
    "KHR_materials_pbrSpecularGlossiness",
    "KHR_materials_emissive_strength",
    "KHR_mesh_quantization",
}
MAX_TEXTURE_SIZE = 512


class ModelLoadError(Exception):
    """A model file that cannot be used; `reason` is one short line for the user."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass(frozen=True)
class ModelRef:
    """A model found in a models folder, before loading."""

    label: str  # class name: the first-level folder
    name: str  # unique within its class: file stem or model folder name
    path: Path  # the file to load

    @property
    def key(self) -> str:
        return f"{self.label}/{self.name}"


@dataclass
class MeshData:
    """One model as flat indexed arrays, ready for the GPU.

    colors are linear RGBA (material base colour x vertex colour); `layers` indexes
    `textures` (-1 = untextured vertex). Positions fit the unit sphere around the origin.
    """

    positions: np.ndarray  # (V, 3) float32
    normals: np.ndarray  # (V, 3) float32
    uvs: np.ndarray  # (V, 2) float32
    colors: np.ndarray  # (V, 4) uint8, linear
    layers: np.ndarray  # (V,) float32
    indices: np.ndarray  # (F, 3) uint32
    textures: list[np.ndarray] = field(default_factory=list)  # sRGB RGBA uint8 (S, S, 4), one size
    has_uvs: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def n_faces(self) -> int:
        return int(len(self.indices))


# --------------------------------------------------------------------------- discovery


def discover_models(root: Path) -> tuple[list[ModelRef], list[tuple[Path, str]]]:
    """All models under `root` (sorted, so indices are stable) and files skipped on sight."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: models folder not found")
    models: list[ModelRef] = []
    skipped: list[tuple[Path, str]] = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        names: set[str] = set()
        for entry in sorted(class_dir.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                main = _main_file(entry)
                if main is None:
                    continue
                name = entry.name
            else:
                ext = entry.suffix.lower()
                if ext in KNOWN_UNSUPPORTED:
                    skipped.append((entry, f"unsupported format {ext}: convert it to GLB or OBJ"))
                    continue
                if ext not in MODEL_EXTENSIONS:
                    continue  # companions: .mtl, textures, readmes
                main, name = entry, entry.stem
            unique = name
            n = 1
            while unique in names:
                n += 1
                unique = f"{name}-{n}"
            names.add(unique)
            models.append(ModelRef(label=class_dir.name, name=unique, path=main))
    return models, skipped


def _main_file(folder: Path) -> Path | None:
    """The model file inside a model folder: the one named like the folder, else ShapeNet's, else first."""
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MODEL_EXTENSIONS
    )
    if not files:
        return None
    for p in files:
        if p.stem == folder.name:
            return p
    for p in files:
        if p.stem == "model_normalized":
            return p
    return files[0]


# --------------------------------------------------------------------------- loading


def load_mesh(path: Path, max_texture_size: int = MAX_TEXTURE_SIZE) -> MeshData:
    """Load one model file; raises ModelLoadError with a one-line reason when it is unusable."""
    import trimesh

    path = Path(path)
    _precheck(path)
    notes = _missing_textures(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("trimesh").disabled = True
            try:
                scene = trimesh.load(str(path), force="scene", process=False)
            finally:
                logging.getLogger("trimesh").disabled = False
    except ModelLoadError:
        raise
    except Exception as exc:  # trimesh raises anything from IndexError to JSONDecodeError
        raise ModelLoadError(path, f"cannot parse ({type(exc).__name__}: {_first_line(exc)})") from None
    parts = _scene_parts(scene)
    if not parts:
        raise ModelLoadError(path, "no triangles in file")
    mesh = _flatten(parts, max_texture_size)
    if not np.all(np.isfinite(mesh.positions)):
        raise ModelLoadError(path, "vertex positions are not finite")
    _normalise(mesh, path)
    mesh.warnings = notes
    return mesh


def _precheck(path: Path) -> None:
    if not path.is_file():
        raise ModelLoadError(path, "file not found")
    size = path.stat().st_size
    if size == 0:
        raise ModelLoadError(path, "empty file")
    ext = path.suffix.lower()
    if ext not in MODEL_EXTENSIONS:
        raise ModelLoadError(path, f"unsupported format {ext or '(no extension)'}")
    if ext == ".glb":
        _check_glb(path, size)
    elif ext == ".gltf":
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(path, f"truncated / corrupt glTF JSON ({_first_line(exc)})") from None
        _check_gltf_extensions(path, doc)


def _check_glb(path: Path, size: int) -> None:
    with open(path, "rb") as f:
        header = f.read(20)
        if len(header) < 20 or header[:4] != b"glTF":
            raise ModelLoadError(path, "truncated / corrupt file (not a GLB: bad magic)")
        _, _, declared = struct.unpack("<4sII", header[:12])
        if declared > size:
            raise ModelLoadError(path, f"truncated / corrupt file ({size} of {declared} bytes)")
        chunk_len, chunk_type = struct.unpack("<II", header[12:20])
        if chunk_type != 0x4E4F534A or 20 + chunk_len > size:
            raise ModelLoadError(path, "truncated / corrupt file (bad JSON chunk)")
        try:
            doc = json.loads(f.read(chunk_len).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelLoadError(path, "truncated / corrupt file (unreadable JSON chunk)") from None
    _check_gltf_extensions(path, doc)


def _check_gltf_extensions(path: Path, doc: dict) -> None:
    required = [e for e in doc.get("extensionsRequired", []) if e not in SUPPORTED_GLTF_EXTENSIONS]
    if required:
        raise ModelLoadError(path, f"unsupported glTF extension {', '.join(required)}")


def _obj_references(path: Path) -> list[tuple[str, str, Path]]:
    """(kind, name as written, path) of every material library an OBJ names and every texture those name."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    refs: list[tuple[str, str, Path]] = []
    for lib in _obj_statements(data, b"mtllib"):
        mtl = path.parent / lib
        refs.append(("material library", lib, mtl))
        if mtl.is_file():
            for tex in re.findall(r"^\s*map_\w+\s+(?:-\S+\s+\S+\s+)*(.+?)\s*$", mtl.read_text(errors="replace"),
                                  re.M):
                refs.append(("texture", tex, mtl.parent / tex))
    return refs


def _obj_statements(data: bytes, keyword: bytes) -> list[str]:
    """The arguments of every `keyword` line of an OBJ, found by byte search: a regex over a ShapeNet-sized
    file's text costs more than reading its parsed arrays back from the cache."""
    found, start = [], 0
    while (i := data.find(keyword, start)) >= 0:
        end = data.find(b"\n", i)
        end = len(data) if end < 0 else end
        parts = data[data.rfind(b"\n", 0, i) + 1:end].decode(errors="replace").split(None, 1)
        if len(parts) == 2 and parts[0] == keyword.decode():
            found.append(parts[1].strip())
        start = end
    return found


def _gltf_references(path: Path) -> list[Path]:
    """The external buffers and images a .gltf names (data: URIs are inside the file)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    uris = [item.get("uri") for key in ("buffers", "images") for item in doc.get(key, []) if isinstance(item, dict)]
    return [path.parent / unquote(u) for u in uris if isinstance(u, str) and not u.startswith("data:")]


def companion_files(path: Path) -> list[Path]:
    """Files other than `path` that loading it reads: an OBJ's material libraries and their textures, a
    .gltf's external buffers and images (named ones, whether they exist or not)."""
    ext = path.suffix.lower()
    if ext == ".obj":
        return [p for _, _, p in _obj_references(path)]
    if ext == ".gltf":
        return _gltf_references(path)
    return []


def _missing_textures(path: Path) -> list[str]:
    """Texture files an OBJ's materials name but that do not exist (the model still loads)."""
    if path.suffix.lower() != ".obj":
        return []
    notes = {"material library": "material library {} not found; loading without materials",
             "texture": "texture {} not found; loading without it"}
    return [notes[kind].format(name) for kind, name, p in _obj_references(path) if not p.is_file()]


def _scene_parts(scene) -> list:
    """Every mesh of the scene with its world transform applied."""
    import trimesh

    parts = []
    for node in scene.graph.nodes_geometry:
        transform, geom_name = scene.graph[node]
        geom = scene.geometry.get(geom_name)
        if not isinstance(geom, trimesh.Trimesh) or len(geom.faces) == 0:
            continue
        g = geom.copy()
        g.apply_transform(transform)
        parts.append(g)
    return parts


def _flatten(parts: list, max_texture_size: int) -> MeshData:
    positions, normals, uvs, colors, layers, indices = [], [], [], [], [], []
    texture_images: list = []
    texture_ids: dict[int, int] = {}
    any_uv = False
    offset = 0
    for g in parts:
        color, image, uv, vcolor = _material(g)
        if vcolor is not None and vcolor.shape[0] == len(g.faces) and vcolor.shape[0] != len(g.vertices):
            # face colours: give every face its own vertices so colours stay crisp
            if uv is not None and len(uv) == len(g.vertices):
                uv = np.asarray(uv)[np.asarray(g.faces).reshape(-1)]
            g = g.copy()
            g.unmerge_vertices()
            vcolor = np.repeat(vcolor, 3, axis=0)
        n = len(g.vertices)
        positions.append(np.asarray(g.vertices, dtype=np.float32))
        normals.append(_vertex_normals(g))
        if uv is not None and len(uv) == n:
            uvs.append(np.asarray(uv, dtype=np.float32))
            any_uv = True
        else:
            uvs.append(np.zeros((n, 2), np.float32))
            image = None if uv is None or len(uv) != n else image
        base = np.asarray(color, dtype=np.float32) / 255.0
        if vcolor is not None and len(vcolor) == n:
            vc = np.asarray(vcolor, dtype=np.float32)[:, :4] / 255.0
            rgba = base[None, :] * _srgb_to_linear_rgba(vc)
        else:
            rgba = np.broadcast_to(base, (n, 4))
        colors.append(np.clip(rgba * 255.0 + 0.5, 0, 255).astype(np.uint8))
        layer = -1.0
        if image is not None:
            key = id(image)
            if key not in texture_ids:
                texture_ids[key] = len(texture_images)
                texture_images.append(image)
            layer = float(texture_ids[key])
        layers.append(np.full(n, layer, np.float32))
        indices.append(np.asarray(g.faces, dtype=np.uint32) + offset)
        offset += n
    textures = _texture_stack(texture_images, max_texture_size)
    return MeshData(
        positions=np.concatenate(positions),
        normals=np.concatenate(normals),
        uvs=np.concatenate(uvs),
        colors=np.concatenate(colors),
        layers=np.concatenate(layers),
        indices=np.concatenate(indices),
        textures=textures,
        has_uvs=any_uv,
    )


def _material(g) -> tuple[np.ndarray, object, np.ndarray | None, np.ndarray | None]:
    """(linear base colour RGBA uint8, PIL texture or None, uv or None, vertex/face colours or None)."""
    visual = g.visual
    white = np.array([255, 255, 255, 255], np.uint8)
    if getattr(visual, "kind", None) == "texture" or hasattr(visual, "material"):
        mat = getattr(visual, "material", None)
        uv = getattr(visual, "uv", None)
        color, image = white, None
        if mat is not None:
            factor = getattr(mat, "baseColorFactor", None)
            if factor is None:
                factor = getattr(mat, "diffuse", None)
            if factor is not None:
                color = np.asarray(factor, dtype=np.uint8).reshape(-1)[:4]
                if color.size == 3:
                    color = np.append(color, 255).astype(np.uint8)
            image = getattr(mat, "baseColorTexture", None)
            if image is None:
                image = getattr(mat, "image", None)
        vcolor = None
        attrs = getattr(g, "vertex_attributes", {}) or {}
        if "color" in attrs:
            vcolor = np.asarray(attrs["color"])
        return color, image, uv, vcolor
    # ColorVisuals: vertex or face colours, already sRGB bytes
    vcolor = None
    kind = getattr(visual, "kind", None)
    if kind == "vertex":
        vcolor = np.asarray(visual.vertex_colors)
    elif kind == "face":
        vcolor = np.asarray(visual.face_colors)
    return white, None, None, vcolor


def _vertex_normals(g) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = np.asarray(g.vertex_normals, dtype=np.float32)
    bad = ~np.isfinite(n).all(axis=1)
    if bad.any():
        n[bad] = (0.0, 1.0, 0.0)
    return n


def _srgb_to_linear_rgba(c: np.ndarray) -> np.ndarray:
    out = c.copy()
    rgb = out[:, :3]
    out[:, :3] = rgb * rgb  # display gamma 2, as the shaders use
    return out


def _texture_stack(images: list, max_size: int) -> list[np.ndarray]:
    """Textures of one model at one square power-of-two size, so they fit one texture array."""
    if not images:
        return []
    from PIL import Image

    largest = max(max(im.size) for im in images)
    size = 1
    while size < min(largest, max_size):
        size *= 2
    out = []
    for im in images:
        im = im.convert("RGBA").resize((size, size), Image.BILINEAR)
        # OpenGL's texture origin is bottom-left, glTF/OBJ UVs assume it
        out.append(np.ascontiguousarray(np.asarray(im, dtype=np.uint8)[::-1]))
    return out


def _normalise(mesh: MeshData, path: Path) -> None:
    lo, hi = mesh.positions.min(axis=0), mesh.positions.max(axis=0)
    centre = (lo + hi) / 2.0
    mesh.positions -= centre
    radius = float(np.linalg.norm(mesh.positions, axis=1).max())
    if not np.isfinite(radius) or radius <= 1e-12:
        raise ModelLoadError(path, "degenerate geometry (all vertices at one point)")
    mesh.positions /= radius


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]
