"""Parsed models kept on disk, so that a folder of thousands of OBJ files is parsed by trimesh once, not by
every command, every render worker and every RenderStream worker again.

An entry is keyed by the bytes the parse reads (the model file, and the material libraries, textures and
buffers it names), the loader's version and trimesh's, never by path or modification time: a copied,
moved or re-mounted models folder (another node of a cluster) hits the same entries, and an edited texture
misses. Entries are plain .npz arrays read with allow_pickle=False; an unreadable one is parsed again, and a
cache folder that cannot be written only makes loading slower.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np

from .meshes import MAX_TEXTURE_SIZE, MeshData, companion_files, load_mesh

CACHE_VERSION = 1  # bump when load_mesh's output changes: older entries are then ignored
# model files (bytes) worth parsing in a process pool: trimesh parses ~15 MB of OBJ a second, and a spawned
# worker takes ~1.5 s to start (the shared 51 models, 13 MB: 1.4 s in one process, 2.6 s in two)
PARALLEL_BYTES = 32 << 20
ARRAYS = ("positions", "normals", "uvs", "colors", "layers", "indices")


def default_mesh_cache() -> Path | None:
    """$MIXREAL_CACHE/meshes (default ~/.cache/mixreal/meshes); None when MIXREAL_MESH_CACHE=0."""
    if os.environ.get("MIXREAL_MESH_CACHE", "1").strip().lower() in ("0", "off", "no", "false"):
        return None
    from assets.models import cache_dir

    return cache_dir() / "meshes"


# What np.load(allow_pickle=False) and reading its arrays raise for a torn, foreign or incomplete file: a torn
# zip is BadZipFile (not an OSError), a non-zip ValueError (it will not unpickle), a missing array KeyError.
NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def mesh_npz(mesh: MeshData, **extra) -> bytes:
    """A mesh's vertex and index arrays (and `extra` arrays) as .npz bytes."""
    return npz_bytes(**{name: getattr(mesh, name) for name in ARRAYS}, **extra)


def mesh_from_npz(d, textures: list[np.ndarray], has_uvs: bool) -> MeshData:
    return MeshData(**{name: d[name] for name in ARRAYS}, textures=textures, has_uvs=has_uvs)


def source_key(path: Path, max_texture_size: int = MAX_TEXTURE_SIZE) -> str:
    """What a parse of `path` depends on, hashed: the bytes of the file and of every file it names (a named
    file that is missing counts as missing, so adding it later changes the key)."""
    import trimesh

    h = hashlib.sha256()  # hardware-accelerated on most x86 CPUs: 3x blake2b here
    h.update(f"mesh v{CACHE_VERSION} trimesh {trimesh.__version__} textures {max_texture_size} "
             f"{path.suffix.lower()}\n".encode())
    for i, p in enumerate([path, *companion_files(path)]):
        h.update(f"\n{i}:{p.relative_to(path.parent) if p.is_relative_to(path.parent) else p.name}:".encode())
        if not p.is_file():
            h.update(b"missing")
            continue
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _entry(cache: Path, key: str) -> Path:
    return Path(cache) / key[:2] / f"{key}.npz"


def _parse_into(args: tuple[Path, Path]) -> None:
    try:
        load_mesh_cached(*args)
    except Exception:  # noqa: BLE001 - reported by the caller's own load, in order, once
        pass


def fill(paths: list[Path], cache: Path | None, workers: int, progress: bool = False) -> dict[Path, str]:
    """Parse the models not yet in `cache` in `workers` processes (a first load of a large folder: each
    parse is independent), so that the loads that follow only read. Returns the keys it computed, for
    load_mesh_cached (hashing a large folder twice would cost what the cache saves)."""
    if cache is None or workers < 2:
        return {}
    keys: dict[Path, str] = {}
    for path in paths:
        try:
            keys[path] = source_key(path)
        except OSError:
            pass
    todo = [p for p, key in keys.items() if not _entry(cache, key).is_file()]
    if len(todo) < 2 * workers or sum(p.stat().st_size for p in todo) < PARALLEL_BYTES:
        return keys  # parsed faster in this process than new processes start (trimesh's import: ~1.5 s)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    # spawned, not forked: the caller may already hold a GL context
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = pool.map(_parse_into, [(p, Path(cache)) for p in todo], chunksize=4)
        for _ in tqdm(jobs, total=len(todo), desc=f"parsing models ({workers} processes, once)", unit="model",
                      disable=not progress, delay=2, leave=False):
            pass
    return keys


def load_mesh_cached(path: Path, cache: Path | None, max_texture_size: int = MAX_TEXTURE_SIZE,
                     key: str | None = None) -> MeshData:
    """load_mesh, remembered in `cache` (None: parse every time). The same MeshData, array for array.
    `key`: source_key(path), when the caller has it."""
    return load_and_key(path, cache, max_texture_size, key)[0]


def reread(path: Path, cache: Path, key: str) -> MeshData:
    """A model loaded earlier from entry `key`: the entry again, or, if it has gone since (a cleared cache),
    the file parsed under its key of now (it may have changed too)."""
    if _entry(cache, key).is_file():
        return load_mesh_cached(path, cache, key=key)
    return load_mesh_cached(path, cache)


def load_and_key(path: Path, cache: Path | None, max_texture_size: int = MAX_TEXTURE_SIZE,
                 key: str | None = None) -> tuple[MeshData, str | None]:
    """load_mesh_cached, and the key of the cache entry that now holds the mesh (None: none does)."""
    path = Path(path)
    if cache is None or not path.is_file():
        return load_mesh(path, max_texture_size), None  # a missing file: load_mesh's own one-line error
    try:
        key = key or source_key(path, max_texture_size)
    except OSError:
        return load_mesh(path, max_texture_size), None
    entry = _entry(cache, key)
    if entry.is_file():
        try:
            with np.load(entry, allow_pickle=False) as d:
                cached = mesh_from_npz(d, list(d["textures"]), bool(d["has_uvs"]))
                cached.warnings = [str(w) for w in d["warnings"]]
                return cached, key
        except NPZ_ERRORS:
            pass  # unreadable or foreign entry: parse again and replace it
    mesh = load_mesh(path, max_texture_size)
    try:
        from .export import atomic_write_bytes

        textures = np.stack(mesh.textures) if mesh.textures else np.zeros((0, 1, 1, 4), np.uint8)
        warnings = np.array(mesh.warnings, dtype=str) if mesh.warnings else np.zeros(0, dtype="<U1")
        atomic_write_bytes(entry, mesh_npz(mesh, textures=textures, has_uvs=np.bool_(mesh.has_uvs),
                                           warnings=warnings))
    except OSError:
        return mesh, None  # a read-only or full cache folder is only slower
    return mesh, key
