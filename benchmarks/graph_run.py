"""`optimize()` with the offline policy on a GPU, set against the offline benchmark's best times.

Run on a GPU machine from the repo root:
    python benchmarks/graph_run.py --out OUT [--backend cuda] examples/problems/level1/03_softmax.py ...
writes OUT/<level>__<problem>.json (the run's result and tree) and prints a markdown table
comparing each run's best time with benchmarks/results/offline-part1-h100/strict__*.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

OFFLINE = Path(__file__).parent / "results" / "offline-part1-h100"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("problems", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--backend", default="triton", choices=["triton", "cuda"])
    args = parser.parse_args()

    import torch
    import triton

    from kernelwright.api import optimize
    from kernelwright.config import RunConfig

    args.out.mkdir(parents=True, exist_ok=True)
    config = RunConfig(device="cuda", iterations=args.iterations, candidates=args.candidates,
                       backend=args.backend)
    rows = []
    for file in args.problems:
        label = f"{file.parent.name}__{file.stem}"
        started = time.perf_counter()
        result = optimize(file, config, progress=lambda line: print(line, flush=True))
        wall = time.perf_counter() - started
        record = {"label": label, "date": datetime.date.today().isoformat(),
                  "device": torch.cuda.get_device_name(), "torch": torch.__version__,
                  "triton": triton.__version__, "wall_s": wall, "config": config.model_dump(),
                  "result": result.model_dump()}
        (args.out / f"{label}.json").write_text(json.dumps(record, indent=2))
        offline = OFFLINE / f"strict__{label}.json"
        ref = json.loads(offline.read_text())["result"]["runtime_us"] if offline.exists() else None
        best = result.best.runtime_us if result.best else None
        evaluated = sum(1 for c in result.tree if c.status not in {"pending", "uncovered"})
        rows.append((label, best, ref, evaluated, wall, result.stop))
    print(f"\n{datetime.date.today()}, {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"triton {triton.__version__}; RunConfig(iterations={args.iterations}, "
          f"candidates={args.candidates}, backend={args.backend}), offline policy, fp32, strict\n")
    print("| problem | run best us | offline benchmark (Triton) us | ratio | evaluations | wall s "
          "| stop |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for label, best, ref, n, wall, stop in rows:
        ratio = f"{best / ref:.3f}" if best and ref else "-"
        print(f"| {label.replace('__', '/')} | {best or '-'} | {ref or '-'} | {ratio} | {n} | "
              f"{wall:.0f} | {stop} |")


if __name__ == "__main__":
    main()
