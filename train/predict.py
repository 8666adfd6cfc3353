"""A trained classifier on new photos: `mixreal predict`.

A run's best.pt (the weights chosen on the validation split) is loaded with weights_only=True and checked; each
photo is read and brought to the size the run's real images had, exactly as `mixreal data photos` does
(train/photos.load_photo), then normalised and resized to the model's input as in training. Where a photo sits
in a folder named like one of the run's classes (PHOTOS/<class>/..., or a class's folder given alone), that is
its true label, and the run is scored on those photos as well: accuracy with its 95 % interval, per class, and
a confusion matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from renderer.images import IMAGE_EXTENSIONS

from .classes import canonical


@dataclass
class Classifier:
    model: torch.nn.Module
    class_names: list[str]
    input_size: int  # the model's input side (ResNet-20 32, AlexNet 224)
    image_size: int  # the side of the real images it was trained on
    device: torch.device
    source: str

    @classmethod
    def load(cls, run: Path, device: torch.device | str = "cpu") -> Classifier:
        """A run folder (its best.pt) or a checkpoint file; a one-line ValueError for anything else."""
        from .loop import load_trained

        model, state, path = load_trained(Path(run))
        cfg = state["config"]
        names = [str(c) for c in state["class_names"]]
        device = torch.device(device)
        model = model.to(device, memory_format=torch.channels_last).eval()
        size = int(state.get("real_image_size", cfg["image_size"]))  # runs before it was recorded: the input
        return cls(model, names, int(cfg["image_size"]), size, device, str(path))

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> class probabilities (N, C) on the CPU."""
        from .loop import normalise

        out = []
        for i in range(0, len(images), batch):
            x = normalise(images[i:i + batch].to(self.device), self.input_size)
            out.append(torch.softmax(self.model(x).float(), 1).cpu())
        return torch.cat(out) if out else torch.zeros(0, len(self.class_names))


def image_paths(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """(file, the input it came from) for every image file named or found under a named folder, sorted."""
    out = []
    for src in inputs:
        src = Path(src)
        if src.is_dir():
            out += [(p, src) for p in sorted(src.rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
        elif src.is_file():
            out.append((src, src.parent))
        else:
            raise FileNotFoundError(f"{src}: no such file or folder")
    return out


def true_label(path: Path, root: Path, class_names: list[str]) -> int | None:
    """The run's class that `path`'s folder names: the folder directly under the input `root` that holds it
    (PHOTOS/<class>/...), else `root` itself (a class's folder, or a photo in one, given alone); None when
    neither is one of the run's classes."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return None
    for name in (parts[0],) * (len(parts) > 1) + (Path(root).resolve().name,):
        if canonical(name) in class_names:
            return class_names.index(canonical(name))
    return None


def confusion(truth: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """(n, n) counts: rows the true class, columns the predicted one."""
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (truth, pred), 1)
    return m


def plot_confusion(path: Path, matrix: np.ndarray, class_names: list[str], title: str) -> None:
    """Row-normalised confusion matrix with counts, written atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from renderer.export import atomic_write_bytes

    n = len(class_names)
    share = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * n, 1.0 + 0.6 * n))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{matrix[i, j]}\n{100 * share[i, j]:.0f}%", ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def score(truth: np.ndarray, pred: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy with its Wilson 95 % interval, overall and per class, on the labelled photos."""
    from .stats import wilson

    ok = truth == pred
    lo, hi = wilson(int(ok.sum()), len(ok))
    per_class = {}
    for c, name in enumerate(class_names):
        mine = truth == c
        if mine.any():
            a, b = wilson(int(ok[mine].sum()), int(mine.sum()))
            per_class[name] = {"accuracy": float(ok[mine].mean()), "interval95": [a, b], "n": int(mine.sum())}
    return {"accuracy": float(ok.mean()) if len(ok) else 0.0, "interval95": [lo, hi], "n": int(len(ok)),
            "per_class": per_class}
