"""A models folder, loaded: every usable model with its label, and every skipped file with its reason."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .classnames import canonical
from .mesh_cache import default_mesh_cache, fill, load_and_key, reread
from .meshes import MeshData, ModelLoadError, ModelRef, discover_models


def report(message: str) -> None:
    """One line to stderr, above any tqdm bar."""
    try:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        print(message, file=sys.stderr)


@dataclass
class Model:
    """A usable model. Its arrays are held (`held`), or, when the mesh cache has them, read back from it on
    each use of `mesh` (a renderer reads a model twice: for its hull, and to upload its level of detail), so
    a process holds only what it draws: a ShapeNet class of thousands of models is GBs of arrays."""

    ref: ModelRef
    held: MeshData | None
    n_faces: int
    reload: Callable[[], MeshData] | None = None

    @property
    def mesh(self) -> MeshData:
        return self.held if self.held is not None else self.reload()

    @property
    def key(self) -> str:
        return self.ref.key

    @property
    def label(self) -> str:
        return self.ref.label


@dataclass
class ModelLibrary:
    root: Path
    models: list[Model]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return sorted({m.label for m in self.models})

    def class_table(self) -> list[dict]:
        """Per class, by the name mixreal matches it under (canonical): its folders, models and faces."""
        import numpy as np

        table = []
        for name in sorted({canonical(m.label) for m in self.models}):
            members = [m for m in self.models if canonical(m.label) == name]
            faces = [m.n_faces for m in members]
            table.append({"class": name, "folders": sorted({m.label for m in members}), "models": len(members),
                          "faces_median": int(np.median(faces)), "faces_max": max(faces)})
        return table

    def __len__(self) -> int:
        return len(self.models)

    @classmethod
    def load(
        cls,
        root: Path,
        on_skip: Callable[[str], None] = report,
        classes: list[str] | None = None,
        mesh_cache: Path | None | str = "default",
        progress: bool = False,
        workers: int = 1,
        keep_meshes: bool = False,
    ) -> ModelLibrary:
        """Load every model under `root`; each unusable file is reported once and skipped.

        `mesh_cache`: the folder of parsed models (mesh_cache.py; "default": $MIXREAL_CACHE/meshes unless
        MIXREAL_MESH_CACHE=0; None: parse every file); models not in it yet are parsed by `workers`
        processes first; a model whose entry is on disk is then not held in memory (`Model.mesh` reads it
        back) unless `keep_meshes`. Raises ModelLoadError when nothing under `root` could be loaded.
        """
        from tqdm import tqdm

        cache = default_mesh_cache() if mesh_cache == "default" else mesh_cache
        root = Path(root)
        refs, skipped = discover_models(root)
        if classes is not None:  # by canonical name: `--classes car` picks ShapeNet's 02958343/ and `cars/`
            wanted = {canonical(c) for c in classes}
            present = {canonical(r.label) for r in refs}
            missing = sorted(wanted - present)
            if missing:
                raise ModelLoadError(root, f"no class {', '.join(missing)} in models folder (it has "
                                           f"{', '.join(sorted(present)) or 'none'})")
            refs = [r for r in refs if canonical(r.label) in wanted]
        for path, reason in skipped:
            on_skip(f"skipped {path}: {reason}")
        models = []
        keys = fill([r.path for r in refs], cache, workers, progress)
        # shown only when loading takes a while (a large or cold folder), so quick commands print one line
        for ref in tqdm(refs, desc="loading models", unit="model", disable=not progress, delay=2, leave=False,
                        file=sys.stderr):
            try:
                mesh, key = load_and_key(ref.path, cache, key=keys.get(ref.path))
            except ModelLoadError as exc:
                skipped.append((exc.path, exc.reason))
                on_skip(f"skipped {exc.path}: {exc.reason}")
                continue
            for note in mesh.warnings:
                on_skip(f"warning {ref.path}: {note}")
            if key is None or keep_meshes:
                models.append(Model(ref, mesh, mesh.n_faces))
            else:  # on disk: read back when drawn (a deleted entry is parsed again)
                models.append(Model(ref, None, mesh.n_faces, partial(reread, ref.path, cache, key)))
        if not models:
            where = f"{len(refs)} candidate file(s), all skipped" if refs else "no model files found"
            raise ModelLoadError(root, f"no loadable model in models folder ({where}); "
                                       "expected MODELS/<class>/<model file or folder>")
        return cls(root=root, models=models, skipped=skipped)
