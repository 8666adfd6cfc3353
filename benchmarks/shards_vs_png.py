"""Writing and reading a rendered dataset: WebDataset shards against a PNG folder, same job, same run.

    python3 benchmarks/shards_vs_png.py [--models DIR] [--per-model 100] [--size 32]

Renders the job twice (`--format png`, then `--format webdataset`, shards of 1,000), then reads every image
back once through RenderedDataset (what `train classify --synthetic` uses). Prints images/s for each and the
number of files each leaves. No target: the issue asks for the figures.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None)
    ap.add_argument("--per-model", type=int, default=100)
    ap.add_argument("--size", type=int, default=32)
    args = ap.parse_args()
    from train.datasets import RenderedDataset

    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for fmt in ("png", "webdataset"):
            out = Path(tmp) / fmt
            cmd = [sys.executable, str(REPO / "cli.py"), "render", "--per-model", str(args.per_model), "--size",
                   str(args.size), "--format", fmt, "--out", str(out), "--quiet"]
            if args.models:
                cmd += ["--models", args.models]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            write = time.perf_counter() - t
            ds = RenderedDataset(out)
            t = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            read = time.perf_counter() - t
            files = sum(1 for p in out.rglob("*") if p.is_file())
            rows.append((fmt, len(ds), len(ds) / write, len(ds) / read, files))
    print(f"shards_vs_png | {datetime.date.today()} | {args.per_model} images per model at {args.size} px")
    print("| format | images | write img/s (whole command) | read img/s | files |\n|---|---:|---:|---:|---:|")
    for fmt, n, w, r, files in rows:
        print(f"| {fmt} | {n:,} | {w:,.0f} | {r:,.0f} | {files:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
