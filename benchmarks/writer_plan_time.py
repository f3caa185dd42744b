"""Time for the offline writer to plan and write the level-2 example problems (CPU only).

    python benchmarks/writer_plan_time.py

For each problem: the first plan-and-write (trace, lower, partition, emit), then the median of
eight more, as a run asks for them (each coder, repair and memory signature of a round asks for
the same problem's plans). Results and the figures before the plan cache: writer-plan-time.md.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from kernelwright.agents.coder import offline_plans
from kernelwright.core.problem import load_problem

PROBLEMS = Path(__file__).resolve().parents[1] / "examples" / "problems" / "level2"


def plan_and_write(problem) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _, made in offline_plans(problem, "fp32", "library"):
        made.source()
    return time.perf_counter() - start


def main() -> None:
    for path in sorted(PROBLEMS.glob("*.py")):
        problem = load_problem(path)
        first = plan_and_write(problem)
        again = statistics.median(plan_and_write(problem) for _ in range(8))
        print(f"{path.stem}: first {first * 1e3:.1f} ms, repeated median {again * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
