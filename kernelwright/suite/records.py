"""A suite's records: one ProblemRecord per problem, and the field's metrics over them.

Metrics follow KernelBench: fast_p is the share of *all* problems whose kernel is correct and
more than p times faster; a problem without a correct kernel falls back to the eager reference
(1.0x vs eager). Without GPU timings (the CPU interpreter) no speedup is reported, none invented.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kernelwright.core.records import Result
from kernelwright.core.results import Figures

FAST_P = (0.0, 1.0, 1.5)


class ProblemRecord(Figures):
    """One problem's outcome in a suite."""

    problem: str = Field(description="path under the suite folder, without .py")
    status: str = Field(description="correct | incorrect | uncovered | crashed | time_limit "
                        "(the per-problem limit passed before any correct kernel)")
    reason: str = Field("", description="why no correct kernel: the most frequent failure")
    best_us: float | None = None
    coverage: str = Field("", description="the offline writer: covered, or the missing ops")
    evaluations: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    stop: str = ""
    time_limit_hit: bool = Field(False, description="the run was stopped by the per-problem limit")
    thread_id: str = ""
    mlflow_run_id: str | None = None

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    def verdict(self) -> str:
        """The status, and for a failure why (the missing ops of an uncovered problem)."""
        if self.correct:
            return self.status
        why = (self.reason if self.reason not in {"", self.status}
               else self.coverage.rpartition(": ")[2])  # the missing ops
        return f"{self.status}: {why}" if why else self.status


class SuiteSummary(BaseModel):
    """A suite in the field's terms; speedups are None where nothing was timed."""

    problems: int
    correct: int
    correct_pct: float
    timed: int = Field(description="correct problems with a GPU (or cpu-backend) time")
    fast_eager: dict[str, float | None] = Field(description="fast_p vs eager, p -> share")
    fast_compile: dict[str, float | None] = Field(description="fast_p vs torch.compile")
    geomean_speedup_eager: float | None
    geomean_speedup_compile: float | None
    median_sol_fraction: float | None
    mean_sol_fraction: float | None
    evaluations: int
    tokens: int
    wall_s: float
    failures: dict[str, int] = Field(description="problems without a correct kernel, by reason")


def record_of(name: str, result: Result, wall_s: float) -> ProblemRecord:
    """The record of a finished optimisation."""
    tree = result.tree
    evaluated = [c for c in tree if c.evaluated]
    uncovered = [c for c in tree if c.status == "uncovered"]
    missing = uncovered[0].message.rpartition(": ")[2] if uncovered else ""
    coverage = f"not covered: {missing}" if uncovered else "covered"
    compiled = next((c.compile_us for c in tree if c.compile_us), None)
    eager = next((c.eager_us for c in tree if c.eager_us), None)
    base = dict(problem=name, coverage=coverage, evaluations=len(evaluated), tokens=result.tokens,
                wall_s=wall_s, stop=result.stop or "", thread_id=result.thread_id,
                mlflow_run_id=result.mlflow_run_id, eager_us=eager, compile_us=compiled)
    best = result.best
    if best is None:
        reasons = Counter(c.reason or c.status for c in evaluated)
        reason = reasons.most_common(1)[0][0] if reasons else (missing or result.stop
                                                                 or "no candidate")
        return ProblemRecord(**base, status="incorrect" if evaluated else "uncovered",
                             reason=reason)
    timed = best.runtime_us
    eager = best.eager_us or eager  # the best's own eager figure: the one its verdict holds
    base["eager_us"] = eager
    return ProblemRecord(
        **base, status="correct", best_us=timed, sol_fraction=best.sol_fraction if timed else None,
        within_noise=best.within_noise,
        speedup_eager=eager / timed if eager and timed and not best.within_noise else None,
        speedup_compile=compiled / timed if compiled and timed else None)


def read_records(path: Path) -> list[ProblemRecord]:
    if not path.exists():
        return []
    return [ProblemRecord.model_validate_json(line) for line in path.read_text().splitlines()
            if line.strip()]


def summarize(records: list[ProblemRecord]) -> SuiteSummary:
    n = max(len(records), 1)
    correct = [r for r in records if r.correct]
    timed = [r for r in correct if r.speedup_eager is not None or r.within_noise]

    def ratio(r: ProblemRecord, key: str) -> float | None:
        """A speedup for the metrics: one within the noise of eager counts as parity."""
        return 1.0 if key == "speedup_eager" and r.within_noise else getattr(r, key)

    def fast(key: str) -> dict[str, float | None]:
        """fast_p: correct and more than p times faster, over all problems; None if untimed."""
        values = [ratio(r, key) for r in correct]
        known = all(v is not None for v in values)
        return {f"fast_{p:g}": len(correct) / n if p == 0 else
                (sum(1 for v in values if v is not None and v > p) / n if known else None)
                for p in FAST_P}

    def geomean(values: list[float | None]) -> float | None:
        if not values or any(v is None for v in values):
            return None
        return math.exp(sum(math.log(v) for v in values if v) / len(values))

    eager = [(ratio(r, "speedup_eager") if r.correct else 1.0) for r in records]
    compiled = [(r.speedup_compile if r.correct else
                 (r.compile_us / r.eager_us if r.compile_us and r.eager_us else None))
                for r in records]
    sols = [r.sol_fraction for r in timed if r.sol_fraction is not None]
    return SuiteSummary(
        problems=len(records), correct=len(correct), correct_pct=100.0 * len(correct) / n,
        timed=len(timed), fast_eager=fast("speedup_eager"), fast_compile=fast("speedup_compile"),
        geomean_speedup_eager=geomean(eager), geomean_speedup_compile=geomean(compiled),
        median_sol_fraction=statistics.median(sols) if sols else None,
        mean_sol_fraction=statistics.fmean(sols) if sols else None,
        evaluations=sum(r.evaluations for r in records), tokens=sum(r.tokens for r in records),
        wall_s=sum(r.wall_s for r in records),
        failures=dict(Counter(r.verdict() for r in records if not r.correct)))


def summary_metrics(summary: SuiteSummary) -> dict[str, float]:
    """The summary as MLflow metrics (what was not measured is left out)."""
    flat: dict[str, Any] = {**summary.model_dump(exclude={"fast_eager", "fast_compile",
                                                          "failures"}),
                            **{f"{k}_eager": v for k, v in summary.fast_eager.items()},
                            **{f"{k}_compile": v for k, v in summary.fast_compile.items()}}
    return {k: float(v) for k, v in flat.items() if v is not None}


def write_json(path: Path, records: list[ProblemRecord], summary: SuiteSummary) -> None:
    path.write_text(json.dumps({"summary": summary.model_dump(mode="json"),
                                "problems": [r.model_dump(mode="json") for r in records]},
                               indent=1))
