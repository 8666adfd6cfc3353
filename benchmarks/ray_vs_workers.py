"""Ray with N actors against `--workers N` on one machine: the cluster backend's overhead.

    python3 benchmarks/ray_vs_workers.py [--models DIR] [--per-model 150] [--workers 2]

Renders the same job both ways into fresh folders and compares images/s as `mixreal render` reports it
(rendering time, start-up not counted: Ray's start and each process's GL context and model loading are paid
once per job). Target: Ray >= 0.9 x the workers' rate. Exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.9


def rate(args, extra: list[str], out: Path) -> float:
    cmd = [sys.executable, str(REPO / "cli.py"), "render", "--per-model", str(args.per_model), "--size", "32",
           "--out", str(out), "--quiet", "--workers", str(args.workers), *extra]
    if args.models:
        cmd += ["--models", args.models]
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(re.search(r"([\d.]+) images/s", text).group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None)
    ap.add_argument("--per-model", type=int, default=150)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workers = rate(args, [], Path(tmp) / "w")
        ray = rate(args, ["--ray", "local"], Path(tmp) / "r")
    ratio = ray / workers
    print(f"ray_vs_workers | {datetime.date.today()} | {args.workers} processes, {args.per_model} images per "
          "model, 32 px")
    print(f"  --workers {args.workers}: {workers:,.0f} img/s; --ray local with {args.workers} actors: "
          f"{ray:,.0f} img/s; ratio {ratio:.2f} (target >= {TARGET})")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
