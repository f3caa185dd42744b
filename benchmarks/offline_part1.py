"""Refine the offline writer's candidate for each covered problem on a GPU and compare it with
eager, torch.compile and the SOL floor (fp32 policy; `strict` guard, or `library` with --guard).

Run on a GPU machine from the repo root:
    python benchmarks/offline_part1.py --out OUT examples/problems/level1/01_relu.py ...
writes OUT/<guard>__<level>__<problem>.json as it goes; then
    python benchmarks/offline_part1.py --report OUT > benchmarks/offline-part1-h100.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
from pathlib import Path


def measure(args: argparse.Namespace) -> None:
    from kernelwright.agents.coder import offline_refine
    from kernelwright.core.problem import load_problem
    from kernelwright.core.results import EvalSettings
    from kernelwright.tools.evaluate import evaluate

    args.out.mkdir(parents=True, exist_ok=True)
    search = EvalSettings(device="cuda", compile_baseline=False, reps=50, sequence_checks=2,
                          guard=args.guard)
    final = EvalSettings(device="cuda", guard=args.guard)
    for file in args.problems:
        label = f"{file.parent.name}/{file.stem}"
        problem = load_problem(file)
        found = offline_refine(problem, search, budget=args.budget,
                               progress=lambda line, lb=label: print(f"  {lb} {line}", flush=True))
        if found is None:
            print(f"{label}: not covered", flush=True)
            continue
        result = evaluate(problem, found.best_source, final)
        record = {"label": label, "result": result.model_dump(mode="json"),
                  "tree": [n.model_dump() for n in found.tree], "stopped": found.stopped,
                  "source": found.best_source, "date": datetime.date.today().isoformat(),
                  "python": platform.python_version()}
        name = f"{args.guard}__{label.replace('/', '__')}.json"
        (args.out / name).write_text(json.dumps(record, indent=2))
        print(f"{label}: {result.status} cand {result.runtime_us} eager {result.eager_us} "
              f"compile {result.compile_us} floor {result.sol.floor_us if result.sol else None}",
              flush=True)


def report(folder: Path) -> None:
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    first = records[0]["result"]
    print(f"# Offline policy, part 1, on {first['device']}\n")
    sol0 = first["sol"]
    print(f"{records[0]['date']}, torch {first['torch_version']}, triton {first['triton_version']}, "
          f"Python {records[0]['python']}; precision `fp32`; SOL profile "
          f"`{sol0['profile']}` ({'calibrated' if sol0['calibrated'] else 'datasheet'}: "
          f"{sol0['bandwidth_gbps']:.0f} GB/s).\n")
    sets = {"The targets: suite problems, `strict` guard": [
                r for r in records if r["result"]["guard"] == "strict"
                and r["label"].startswith("level")],
            "Beyond the targets: `library` mode, and shapes that need split or column "
            "reductions (`benchmarks/problems/`)": [
                r for r in records if r["result"]["guard"] != "strict"
                or not r["label"].startswith("level")]}
    for title, chosen in sets.items():
        if chosen:
            print(f"## {title}\n")
            table(chosen)


def table(records: list[dict]) -> None:
    print("| problem | guard | status | candidate us | eager us | compile us | floor us | vs eager | "
          "vs compile | SOL fraction | x floor | evals | best config |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    speedups, misses = [], []
    for rec in records:
        r = rec["result"]
        floor = r["sol"]["floor_us"] if r["sol"] else None
        x_floor = r["runtime_us"] / floor if floor and r["runtime_us"] else None
        if r["speedup_compile"]:
            speedups.append(r["speedup_compile"])
        if r["status"] != "correct" or x_floor is None or x_floor > 1.25:
            misses.append(rec["label"])
        best = next(n for n in rec["tree"] if n["runtime_us"] == min(
            (m["runtime_us"] for m in rec["tree"] if m["runtime_us"] and m["status"] == "correct"),
            default=None)) if any(n["runtime_us"] for n in rec["tree"]) else rec["tree"][0]
        f = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
        print(f"| {rec['label']} | {r['guard']} | {r['status']} | {f(r['runtime_us'])} | "
              f"{f(r['eager_us'])} | {f(r['compile_us'])} | {f(floor)} | "
              f"{f(r['speedup_eager'], 2)}x | {f(r['speedup_compile'], 2)}x | "
              f"{f(r['sol_fraction'], 2)} | {f(x_floor, 2)} | {len(rec['tree'])} | "
              f"{'; '.join(best['configs'])} |")
    geo = math.exp(sum(math.log(s) for s in speedups) / len(speedups)) if speedups else None
    print(f"\nGeomean speedup vs torch.compile: {geo:.3f}x over {len(speedups)} problems." if geo
          else "")
    print(f"Over 1.25x the floor or incorrect: {', '.join(misses) or 'none'}.\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("problems", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/offline-part1"))
    parser.add_argument("--budget", type=int, default=8, help="evaluations per problem")
    parser.add_argument("--report", type=Path)
    parser.add_argument("--guard", choices=["strict", "library"], default="strict")
    args = parser.parse_args()
    if args.report:
        report(args.report)
    else:
        measure(args)


if __name__ == "__main__":
    main()
