"""Loading a models folder: trimesh parsing every file against the parsed-model cache, same folder, same run.

    python3 benchmarks/model_loading.py [--models DIR] [--synthetic 24] [--faces 80000]

Every render command, render worker, Ray actor and RenderStream worker loads the whole models folder; with
ShapeNet- or VisDA-sized folders (hundreds to thousands of OBJ files of 10^4-10^5 faces) parsing is minutes
per process. Times ModelLibrary.load four ways: no cache (parse every file), a cold cache (parse + write), a
cold cache filled by one process per CPU (what the CLI does), a warm cache (read).
Folders: `--models` (default $MIXREAL_DATA/meshes when present) and a generated folder
of `--synthetic` textured OBJ models (model folders with .obj + .mtl + .png, as ShapeNet ships them) of about
`--faces` faces each. Target: a warm cache loads the generated folder at least 10x faster than parsing it (for
a folder of small models, such as the shared 51, reading .npz entries costs a few ms a model and the ratio is
smaller; printed, not a target). Exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TARGET = 10.0


def heavy_models(root: Path, n: int, faces: int) -> Path:
    """n textured, displaced spheres of about `faces` faces, in four classes of model folders."""
    import numpy as np
    import trimesh
    from PIL import Image

    subdivisions = max(1, int(round(np.log(faces / 20) / np.log(4))))
    rng = np.random.default_rng(0)
    for i in range(n):
        m = trimesh.creation.icosphere(subdivisions=subdivisions)
        m.vertices *= 1 + 0.2 * rng.random((len(m.vertices), 1))
        uv = (m.vertices[:, :2] + 1.3) / 2.6
        texture = Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8))
        m.visual = trimesh.visual.TextureVisuals(uv=uv, image=texture)
        folder = root / f"class{i % 4}" / f"model{i:03d}"
        folder.mkdir(parents=True)
        m.export(folder / f"model{i:03d}.obj")
    return root


def timed(root: Path, cache, workers: int = 1) -> tuple[float, int, int]:
    from renderer import ModelLibrary

    t = time.perf_counter()
    lib = ModelLibrary.load(root, on_skip=lambda m: None, mesh_cache=cache, workers=workers)
    return time.perf_counter() - t, len(lib.models), sum(m.n_faces for m in lib.models)


def held_mb(root: Path, cache, keep: bool) -> float:
    """Megabytes of mesh arrays and textures the loaded library keeps in memory."""
    from renderer import ModelLibrary

    lib = ModelLibrary.load(root, on_skip=lambda m: None, mesh_cache=cache, keep_meshes=keep)
    held = [m.held for m in lib.models if m.held is not None]
    arrays = [a for mesh in held for a in (mesh.positions, mesh.normals, mesh.uvs, mesh.colors, mesh.layers,
                                            mesh.indices, *mesh.textures)]
    return sum(a.nbytes for a in arrays) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="a models folder (default: $MIXREAL_DATA/meshes if present)")
    ap.add_argument("--synthetic", type=int, default=24, help="generated textured OBJ models (0: none)")
    ap.add_argument("--faces", type=int, default=80_000)
    args = ap.parse_args()
    data = Path(os.environ.get("MIXREAL_DATA", REPO.parent / "shared" / "data"))
    folders = []
    if args.models or (data / "meshes").is_dir():
        folders.append(Path(args.models) if args.models else data / "meshes")
    misses = 0
    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            folders.append(heavy_models(Path(tmp) / "heavy", args.synthetic, args.faces))
        print(f"model_loading | {datetime.datetime.now():%Y-%m-%d %H:%M} | {platform.node()}, {os.cpu_count()} CPUs")
        workers = os.cpu_count() or 1
        print(f"| folder | models | faces | parse every file (s) | cold cache (s) "
              f"| cold cache, {workers} processes (s) | warm cache (s) | speed-up | held (MB): all / cached |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for folder in folders:
            parse, n, faces = timed(folder, None)
            cold, _, _ = timed(folder, Path(tmp) / f"cache-{folder.name}-1")
            cold_parallel, _, _ = timed(folder, Path(tmp) / f"cache-{folder.name}-{workers}", workers)
            cache = Path(tmp) / f"cache-{folder.name}-1"
            warm = min(timed(folder, cache)[0] for _ in range(3))
            ratio = parse / warm
            memory = f"{held_mb(folder, cache, True):.0f} / {held_mb(folder, cache, False):.0f}"
            generated = folder.name == "heavy"
            misses += generated and ratio < TARGET
            name = "generated textured OBJ" if generated else str(folder)
            print(f"| {name} | {n} | {faces:,} | {parse:.2f} | {cold:.2f} | {cold_parallel:.2f} | {warm:.3f} "
                  f"| {ratio:.0f}x | {memory} |")
    print(f"target: warm cache >= {TARGET:.0f}x faster than parsing the generated folder: "
          f"{'met' if not misses else 'MISSED'}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
