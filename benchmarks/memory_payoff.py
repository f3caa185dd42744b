"""Does the memory pay off? The offline policy on a set of problems with a cold memory, against
a memory warmed on another set, under the same budget; and Q-driven retrieval (w > 0) against
similarity only (w = 0).

    python benchmarks/memory_payoff.py warm --memory M --out OUT  WARM_PROBLEMS...
    python benchmarks/memory_payoff.py measure --memory M --out OUT  PROBLEMS...

`warm` runs every warm problem against the memory folder M. `measure` copies M for each
condition (so each starts from the same warmed state), adds a cold one, runs every problem once
per condition and prints the table: evaluations until the run first reached 95% of its final
best speedup over eager, and that final speedup.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import tempfile
from pathlib import Path


def run(problem: Path, memory: Path, w: float, args: argparse.Namespace) -> dict:
    from kernelwright.api import optimize
    from kernelwright.config import MemoryConfig, RunConfig

    config = RunConfig(device=args.device, iterations=args.iterations, candidates=args.candidates,
                       stop_sol=10.0, patience=args.iterations, memory=MemoryConfig(
                           path=memory, embedder=args.embedder, w_draft=w, w_refine=w))
    result = optimize(problem, config, progress=lambda line: print(line, flush=True))
    evaluated = [c for c in result.tree if c.status not in {"pending", "uncovered", "exhausted"}]
    speedups = [c.eager_us / c.runtime_us if c.correct and c.eager_us and c.runtime_us else 0.0
                for c in evaluated]
    best = max(speedups, default=0.0)
    reached = next((i + 1 for i, s in enumerate(speedups) if best and s >= 0.95 * best), None)
    return {"problem": problem.stem, "w": w, "evaluations": len(evaluated),
            "to_95": reached, "best_speedup": best, "stop": result.stop,
            "tree": [c.model_dump(exclude={"source"}) for c in result.tree]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["warm", "measure"])
    parser.add_argument("problems", nargs="+", type=Path)
    parser.add_argument("--memory", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=1)
    parser.add_argument("--w", type=float, default=0.5)
    parser.add_argument("--embedder", default="local", choices=["local", "hash"])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    if args.phase == "warm":
        records = [run(p, args.memory, args.w, args) for p in args.problems]
        (args.out / "warm.json").write_text(json.dumps(records, indent=2))
        return
    conditions = {"cold": (None, args.w), f"warm, w={args.w}": (args.memory, args.w),
                  "warm, w=0": (args.memory, 0.0)}
    table = {}
    for name, (source, w) in conditions.items():
        folder = Path(tempfile.mkdtemp(prefix="kw-payoff-")) / "memory"
        if source is not None:
            shutil.copytree(source, folder)
        table[name] = [run(p, folder, w, args) for p in args.problems]
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    record = {"date": datetime.date.today().isoformat(), "device": device,
              "torch": torch.__version__, "embedder": args.embedder,
              "iterations": args.iterations, "candidates": args.candidates, "conditions": table}
    (args.out / "measure.json").write_text(json.dumps(record, indent=2))
    print(f"\n{record['date']}, {record['device']}, torch {record['torch']}, embedder "
          f"{args.embedder}; RunConfig(iterations={args.iterations}, candidates={args.candidates},"
          " stop_sol=10, offline policy)\n")
    print("| condition | problem | evaluations to 95% of best | best speedup vs eager |")
    print("|---|---|---:|---:|")
    for name, rows in table.items():
        for r in rows:
            print(f"| {name} | {r['problem']} | {r['to_95']} | {r['best_speedup']:.3f} |")
        reached = [r["to_95"] for r in rows if r["to_95"]]
        print(f"| {name} | mean | {statistics.mean(reached) if reached else '-'} | "
              f"{statistics.mean(r['best_speedup'] for r in rows):.3f} |")


if __name__ == "__main__":
    main()
