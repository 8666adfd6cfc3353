"""What a training run leaves for people: metrics.csv, an accuracy-curve PNG, summary.json."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from renderer.export import atomic_write_bytes, atomic_write_text

COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "val_acc", "val_loss", "test_acc", "seconds", "images_per_s"]


INT_COLUMNS = {"epoch", "step", "iteration"}


def read_metrics(path: Path) -> list[dict]:
    """Rows of a metrics CSV; an empty cell (a column that row did not measure) is left out of its row."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return [{k: int(v) if k in INT_COLUMNS else float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(f)]


def write_metrics(path: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    """Atomically; columns default to the classifier's, or (rows of mixed kinds) every key seen, in order."""
    if columns is None:
        seen = dict.fromkeys(k for r in rows for k in r)
        columns = COLUMNS if set(seen) <= set(COLUMNS) else list(seen)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns)
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k, "")) for k in columns})
    atomic_write_text(Path(path), buf.getvalue())


def tensorboard_writer(path: Path):
    """A TensorBoard SummaryWriter, or None where tensorboard is not installed (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))


def plot_curves(path: Path, rows: list[dict], title: str) -> None:
    """Train / validation / test accuracy per epoch, and the learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [r["epoch"] + 1 for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for key, label in (("train_acc", "train (real + synthetic)"), ("val_acc", "validation (real)"),
                       ("test_acc", "test (real)")):
        ax.plot(epochs, [100 * r[key] for r in rows], label=label, marker="o" if len(rows) < 30 else None, ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    lr = ax.twinx()
    lr.plot(epochs, [r["lr"] for r in rows], color="grey", lw=0.8, ls="--")
    lr.set_ylabel("learning rate", color="grey")
    if all(r["lr"] > 0 for r in rows):  # a run fine-tuned at lr 0 (a frozen check) has no log scale
        lr.set_yscale("log")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())


def plot_table(path: Path, results: dict[str, list[float]], title: str, paper: dict[str, float] | None = None) -> None:
    """One bar per configuration: mean test accuracy over seeds, each seed a dot, std as an error bar,
    the paper's figure (in %) as a red tick where one is given."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib import pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2), dpi=110)
    paper = paper or {}
    for i, name in enumerate(names):
        if name in paper:
            ax.plot([paper[name]] * 2, [i - 0.4, i + 0.4], color="#c0392b", lw=2, zorder=3)  # over the bar
        accs = 100 * np.asarray(results[name], dtype=float)
        if not len(accs):
            ax.text(1, i, "not run", va="center", fontsize=8, color="grey")
            continue
        ax.barh(i, accs.mean(), xerr=accs.std(ddof=1) if len(accs) > 1 else 0, color="#7aa6c2", capsize=3)
        ax.plot(accs, [i] * len(accs), "k.", ms=4)
        ax.text(1, i, f"{accs.mean():.1f}", va="center", fontsize=8, color="white")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("test accuracy on real images (%)\nbar = mean, dots = seeds, whisker = std"
                  + (", red = paper" if paper else ""), fontsize=9)  # one line was cut off at the figure's edge
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())


def samples_sheet(path: Path, rows: list[tuple[str, object]], zoom: int = 2) -> None:
    """A labelled grid, one row of uint8 CHW images per (label, images): what a table's runs trained on."""
    import numpy as np
    from PIL import Image, ImageDraw

    label_w, pad = 190, 2
    rows = [(label, np.asarray(images)) for label, images in rows]
    n = max(len(images) for _, images in rows)
    h, w = (rows[0][1].shape[-2] * zoom, rows[0][1].shape[-1] * zoom)
    sheet = Image.new("RGB", (label_w + n * (w + pad), len(rows) * (h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, images) in enumerate(rows):
        y = r * (h + pad)
        draw.text((4, y + h // 2 - 6), label, fill="black")
        for c, image in enumerate(images):
            tile = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).resize((w, h), Image.NEAREST)
            sheet.paste(tile, (label_w + c * (w + pad), y))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())


def write_summary(path: Path, summary: dict) -> None:
    atomic_write_text(Path(path), json.dumps(summary, indent=2) + "\n")


def plot_kid_panels(path: Path, panels: dict[str, dict[str, dict]], title: str) -> None:
    """One panel per GAN stage: KID x 100 by step, one line per run (e.g. seed), the generators the stage kept
    as a star. panels: {panel title: {line label: {"steps", "kid", "kept"}}} (kid as measured, not x 100;
    kept: a step or None)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=100, squeeze=False)
    for ax, (name, lines) in zip(axes[0], panels.items(), strict=True):
        for label, line in lines.items():
            (drawn,) = ax.plot(line["steps"], [100 * k for k in line["kid"]], marker="o", ms=3, label=label)
            if line.get("kept") in line["steps"]:
                i = line["steps"].index(line["kept"])
                ax.plot(line["kept"], 100 * line["kid"][i], "*", ms=13, color=drawn.get_color(), mec="black")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step (pre-training included)")
        ax.set_ylabel("KID x 100 to the stage's target")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title + "  (star: the generators the stage kept)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
