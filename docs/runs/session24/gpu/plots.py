"""The session-24 GPU pictures from the records beside this file (no GPU needed):
docs/img/gpu_render_processes.png (processes on one H200 at 64 px, from breakdown.txt) and
docs/img/gpu_vs_llvmpipe.png (the same 16 samples rendered by the H200 and by llvmpipe here, and their
difference x8). Run from the repository root: python3 docs/runs/session24/gpu/plots.py"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[3]
sys.path.insert(0, str(REPO))


def processes_chart(out: Path) -> None:
    text = (HERE / "breakdown.txt").read_text()
    rows = [(int(n), float(v.replace(",", ""))) for n, v in
            re.findall(r"(\d+) process\(es\) on one GPU, 64 px: ([\d,]+) img/s", text)]
    n, rate = zip(*rows, strict=True)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.bar([str(k) for k in n], rate, color="#4472c4")
    ax.axhline(50_000, color="#c00000", ls="--", lw=1)
    ax.text(0, 51_500, "target 50,000 img/s", color="#c00000", fontsize=8)
    for i, v in enumerate(rate):
        ax.text(i, v + 800, f"{v:,.0f}", ha="center", fontsize=8)
    ax.set_xlabel("render processes on the one GPU")
    ax.set_ylabel("images/s at 64 px (sum)")
    ax.set_title("mixreal on one NVIDIA H200 (16 cores), today's defaults, 2026-12-04", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def backends_picture(out: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu_figures import sample_images

    gpu = np.load(HERE / "samples_gpu.npz")["images"][:16]
    meshes = Path(os.environ.get("MIXREAL_DATA", REPO.parent / "shared" / "data")) / "meshes"
    cpu, _ = sample_images(str(meshes), size=gpu.shape[1], count=len(gpu), device=None)
    diff = np.clip(np.abs(cpu.astype(np.int16) - gpu.astype(np.int16)) * 8, 0, 255).astype(np.uint8)
    fig, axes = plt.subplots(3, 1, figsize=(10, 2.4))
    names = ("H200 (NVIDIA EGL)", "llvmpipe (CPU)", "|difference| x 8")
    for ax, row, name in zip(axes, (gpu, cpu, diff), names, strict=True):
        ax.imshow(np.concatenate(list(row), axis=1))
        ax.set_axis_off()
        ax.set_title(name, fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(out, dpi=130)


if __name__ == "__main__":
    processes_chart(REPO / "docs" / "img" / "gpu_render_processes.png")
    backends_picture(REPO / "docs" / "img" / "gpu_vs_llvmpipe.png")
    print("wrote docs/img/gpu_render_processes.png, docs/img/gpu_vs_llvmpipe.png")
