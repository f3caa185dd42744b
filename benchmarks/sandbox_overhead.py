"""What confining the worker costs per candidate: the same evaluations with and without the
sandbox (tools/sandbox.py), alternating, and an empty worker alone (start and confinement only).

    python benchmarks/sandbox_overhead.py --reps 7 --out benchmarks/results/sandbox-overhead.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import triton

from kernelwright.core.problem import load_problem
from kernelwright.core.results import EvalSettings
from kernelwright.tools.evaluate import evaluate, resolve_device, sandbox_for
from kernelwright.tools.process import spawn

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = ROOT / "examples" / "problems" / "level1" / "01_relu.py"
CANDIDATE = ROOT / "examples" / "candidates" / "level1" / "01_relu.py"


def seconds(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    problem, source = load_problem(PROBLEM), CANDIDATE.read_text()
    confinement: list[str] = []
    times: dict[str, list[float]] = {k: [] for k in ("eval_on", "eval_off", "probe_on", "probe_off")}
    for sandbox in (True, False):  # warm the caches both ways first
        evaluate(problem, source, EvalSettings(device=args.device, sandbox=sandbox))
    for _ in range(args.reps):
        for sandbox, key in ((True, "on"), (False, "off")):
            settings = EvalSettings(device=args.device, sandbox=sandbox)
            result = evaluate(problem, source, settings)
            assert result.ok, result.message
            confinement = result.sandbox if sandbox else confinement
            times[f"eval_{key}"].append(result.wall_s)
            box = sandbox_for(settings, cuda=resolve_device(args.device) == "cuda")
            times[f"probe_{key}"].append(seconds(lambda box=box: spawn(
                "kernelwright.tools.sandbox:probe", "{}", 60, "kernelwright-probe", box)))
    medians = {k: statistics.median(v) for k, v in times.items()}
    report = {"device": result.device, "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "triton": triton.__version__, "reps": args.reps,
              "median_s": medians, "all_s": times, "confinement": confinement,
              "date": time.strftime("%Y-%m-%d", time.gmtime())}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    print(f"{'':>22} {'sandbox on':>11} {'off':>8} {'overhead':>9}")
    for what in ("eval", "probe"):
        on, off = medians[f"{what}_on"], medians[f"{what}_off"]
        label = "evaluate (relu)" if what == "eval" else "empty worker"
        print(f"{label:>22} {on:>10.3f}s {off:>7.3f}s {on - off:>+8.3f}s")


if __name__ == "__main__":
    main()
