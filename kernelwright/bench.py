"""Suites: optimise every problem of a folder tree, one record each, and the field's metrics.

    find_problems(DIR)          KernelBench-format files under DIR (a KernelBench checkout too)
    run_suite(problems, config) one ProblemRecord per problem; resumable through `out`
    summarize(records)          correct %, fast_p vs eager and vs compile, geomean speedups, SOL

Metrics follow KernelBench: fast_p is the share of *all* problems whose kernel is correct and
more than p times faster; a problem without a correct kernel falls back to the eager reference
(1.0x vs eager). Without GPU timings (the CPU interpreter) no speedup is reported, none invented.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from kernelwright.config import RunConfig
    from kernelwright.graph.run import Result
    from kernelwright.tools.results import EvalSettings

FAST_P = (0.0, 1.0, 1.5)


class ProblemRecord(BaseModel):
    """One problem's outcome in a suite."""

    problem: str = Field(description="path under the suite folder, without .py")
    status: str = Field(description="correct | incorrect | uncovered | crashed | time_limit "
                        "(the per-problem limit passed before any correct kernel)")
    reason: str = Field("", description="why no correct kernel: the most frequent failure")
    eager_us: float | None = None
    compile_us: float | None = None
    best_us: float | None = None
    speedup_eager: float | None = None
    speedup_compile: float | None = None
    sol_fraction: float | None = None
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


def find_problems(folder: Path) -> list[Path]:
    """Every KernelBench-format file under `folder`, in natural order (2_ before 10_)."""
    found = [p for p in folder.rglob("*.py") if not p.name.startswith("_")
             and _looks_like_problem(p)]
    return sorted(found, key=lambda p: [int(t) if t.isdigit() else t
                                        for t in re.split(r"(\d+)", str(p.relative_to(folder)))])


def _looks_like_problem(path: Path) -> bool:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return "class Model" in text and "def get_inputs" in text


def record_of(name: str, result: Result, wall_s: float) -> ProblemRecord:
    """The record of a finished optimisation."""
    tree = result.tree
    evaluated = [c for c in tree if c.status not in {"pending", "uncovered", "exhausted"}]
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
    return ProblemRecord(
        **base, status="correct", best_us=timed, sol_fraction=best.sol_fraction if timed else None,
        speedup_eager=eager / timed if eager and timed else None,
        speedup_compile=compiled / timed if compiled and timed else None)


PROBLEM_LIMIT_S = 900.0  # per problem: 250 problems that all hit it still end within ~3 days


def limited(config: RunConfig, limit_s: float) -> RunConfig:
    """The config of one problem of a suite: its run stops once `limit_s` of coding and
    evaluating is spent (at the end of the round), and no one evaluation may take more than
    half of it, so a problem ends within about 1.5 x the limit whatever its candidates do."""
    budget = min(config.max_seconds or limit_s, limit_s)
    return config.model_copy(update={"max_seconds": budget,
                                     "timeout_s": min(config.timeout_s, limit_s / 2)})


def run_suite(problems: list[Path], root: Path, config: RunConfig, out: Path | None = None, *,
              parent_run_id: str | None = None, problem_limit_s: float = PROBLEM_LIMIT_S,
              on_problem: Callable[[str, ProblemRecord | None], None] = lambda *_: None,
              ) -> list[ProblemRecord]:
    """Optimise each problem in turn, each within `problem_limit_s` (`limited`). With `out`,
    records go to out/records.jsonl as they finish and every graph step to
    out/checkpoints.sqlite: running again skips finished problems and resumes the interrupted
    one. A problem that crashes is recorded and the suite goes on. `on_problem(name, None)` is
    called when a problem starts, with its record when it ends."""
    from kernelwright.graph.run import optimize

    each = limited(config, problem_limit_s)

    def solve(path: Path, name: str) -> ProblemRecord:
        started = time.perf_counter()
        result = optimize(path, each, thread_id=_thread_id(name, out),
                          checkpoint=out / "checkpoints.sqlite" if out else None,
                          parent_run_id=parent_run_id)
        record = record_of(name, result, time.perf_counter() - started)
        if (result.stop or "").startswith("time budget") and each.max_seconds == problem_limit_s:
            update: dict[str, Any] = {"time_limit_hit": True}
            if not record.correct:
                update.update(status="time_limit", reason=f"the {problem_limit_s:g} s "
                              f"per-problem limit passed ({record.reason or record.status})")
            record = record.model_copy(update=update)
        return record if record.eager_us else with_baselines(record, path, each)

    return _each(problems, root, out, on_problem, solve)


def with_baselines(record: ProblemRecord, path: Path, config: RunConfig) -> ProblemRecord:
    """Time eager and torch.compile for a problem no candidate was timed on (on a GPU): its
    eager fallback then counts in the geomean vs compile like every other problem's."""
    from kernelwright.problem import load_problem
    from kernelwright.tools.analyze import analyze
    from kernelwright.tools.evaluate import resolve_device

    if resolve_device(config.device, config.backend) != "cuda":
        return record  # no timings on the CPU interpreter
    analysis = analyze(load_problem(path), config.precision, "cuda", timeout_s=config.timeout_s)
    return record.model_copy(update={"eager_us": analysis.eager_us,
                                     "compile_us": analysis.compile_us})


def evaluate_suite(problems: list[Path], root: Path, candidates: Path, settings: EvalSettings,
                   out: Path | None = None, *,
                   on_problem: Callable[[str, ProblemRecord | None], None] = lambda *_: None,
                   ) -> list[ProblemRecord]:
    """Evaluate given candidates only: CANDIDATES/<problem path>.py for each problem (a problem
    without one is recorded as `no_candidate`)."""
    from kernelwright.problem import load_problem
    from kernelwright.tools.evaluate import evaluate

    def solve(path: Path, name: str) -> ProblemRecord:
        file = candidates / f"{name}.py"
        if not file.is_file():
            return ProblemRecord(problem=name, status="no_candidate", reason=f"no {file}")
        result = evaluate(load_problem(path), file.read_text(), settings)
        timed = result.runtime_us if result.ok else None
        return ProblemRecord(
            problem=name, status="correct" if result.ok else "incorrect",
            reason="" if result.ok else (result.reason or result.status.value),
            eager_us=result.eager_us, compile_us=result.compile_us, best_us=timed,
            speedup_eager=result.speedup_eager if timed else None,
            speedup_compile=result.speedup_compile if timed else None,
            sol_fraction=result.sol_fraction if timed else None, coverage="given candidate",
            evaluations=1, wall_s=result.wall_s)

    return _each(problems, root, out, on_problem, solve)


def _each(problems: list[Path], root: Path, out: Path | None,
          on_problem: Callable[[str, ProblemRecord | None], None],
          solve: Callable[[Path, str], ProblemRecord]) -> list[ProblemRecord]:
    done: dict[str, ProblemRecord] = {}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        done = {r.problem: r for r in read_records(out / "records.jsonl")}
    records = []
    for path in problems:
        name = path.relative_to(root).with_suffix("").as_posix()
        if name in done:
            records.append(done[name])
            on_problem(name, done[name])
            continue
        on_problem(name, None)
        started = time.perf_counter()
        try:
            record = solve(path, name)
        except Exception as exc:  # one problem's crash is its record; the suite goes on
            first = str(exc).splitlines()[0] if str(exc) else ""
            record = ProblemRecord(problem=name, status="crashed",
                                   reason=f"{type(exc).__name__}: {first}"[:300],
                                   wall_s=time.perf_counter() - started)
        if out is not None:
            with open(out / "records.jsonl", "a") as f:
                f.write(record.model_dump_json() + "\n")
        records.append(record)
        on_problem(name, record)
    return records


def claim(out: Path, settings: dict[str, Any]) -> None:
    """Mark `out` as holding a bench with these settings; refuse to resume another's."""
    from kernelwright.errors import KernelwrightError

    out.mkdir(parents=True, exist_ok=True)
    mark = out / "bench.json"
    if mark.exists():
        before = json.loads(mark.read_text())
        changed = sorted(k for k in {*before, *settings} if before.get(k) != settings.get(k))
        if changed:
            raise KernelwrightError(
                f"{out}: holds a bench run with other settings ({', '.join(changed[:5])} differ); "
                "resuming would mix them. Fix: pass another --out, or delete the folder.")
    mark.write_text(json.dumps(settings, indent=1, sort_keys=True))


def _thread_id(name: str, out: Path | None) -> str:
    """Stable within one results folder (its checkpoints resume), distinct across folders."""
    import hashlib
    import uuid

    where = str(out.resolve()) if out is not None else uuid.uuid4().hex
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + "-" + hashlib.sha1(where.encode()).hexdigest()[:8]


def read_records(path: Path) -> list[ProblemRecord]:
    if not path.exists():
        return []
    return [ProblemRecord.model_validate_json(line) for line in path.read_text().splitlines()
            if line.strip()]


def summarize(records: list[ProblemRecord]) -> SuiteSummary:
    n = max(len(records), 1)
    correct = [r for r in records if r.correct]
    timed = [r for r in correct if r.speedup_eager is not None]

    def fast(key: str) -> dict[str, float | None]:
        """fast_p: correct and more than p times faster, over all problems; None if untimed."""
        values = [getattr(r, key) for r in correct]
        known = all(v is not None for v in values)
        return {f"fast_{p:g}": len(correct) / n if p == 0 else
                (sum(1 for v in values if v > p) / n if known else None) for p in FAST_P}

    def geomean(values: list[float | None]) -> float | None:
        if not values or any(v is None for v in values):
            return None
        return math.exp(sum(math.log(v) for v in values if v) / len(values))

    eager = [(r.speedup_eager if r.correct else 1.0) for r in records]
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


COLUMNS = ["problem", "status", "reason", "eager_us", "compile_us", "best_us", "speedup_eager",
           "speedup_compile", "sol_fraction", "coverage", "evaluations", "tokens", "wall_s"]


def write_report(out: Path, records: list[ProblemRecord], summary: SuiteSummary,
                 title: str) -> list[Path]:
    """results.json, results.csv, results.md and speedup.png in `out`; returns their paths."""
    import csv

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", records, summary)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(r.model_dump() for r in records)
    (out / "results.md").write_text(markdown(records, summary, title))
    figure(records, title).savefig(out / "speedup.png", dpi=120)
    return [out / n for n in ("results.json", "results.csv", "results.md", "speedup.png")]


def _x(value: float | None, unit: str = "x") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def summary_lines(s: SuiteSummary) -> list[str]:
    """The summary in words, for the terminal and the Markdown report."""
    def shares(fast: dict[str, float | None]) -> str:
        return " / ".join("n/a" if v is None else f"{100 * v:.0f}%" for v in fast.values())

    return [
        f"correct: {s.correct}/{s.problems} ({s.correct_pct:.0f}%); timed: {s.timed}",
        f"fast_0 / fast_1 / fast_1.5 vs eager: {shares(s.fast_eager)}; "
        f"vs compile: {shares(s.fast_compile)}",
        f"geomean speedup (no correct kernel = eager): {_x(s.geomean_speedup_eager)} vs eager, "
        f"{_x(s.geomean_speedup_compile)} vs compile",
        f"SOL fraction: median {_x(s.median_sol_fraction, '')}, mean {_x(s.mean_sol_fraction, '')}",
        f"evaluations: {s.evaluations}; tokens: {s.tokens}; wall time: {s.wall_s:.0f} s",
        "failures: " + (", ".join(f"{k} ({v})" for k, v in sorted(s.failures.items())) or "none"),
    ]


def markdown(records: list[ProblemRecord], summary: SuiteSummary, title: str) -> str:
    head = ["problem", "status", "eager us", "compile us", "best us", "vs eager", "vs compile",
            "SOL", "evals", "tokens", "wall s"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        status = r.verdict().replace("|", "/")
        lines.append("| " + " | ".join([
            r.problem, status, _us(r.eager_us), _us(r.compile_us), _us(r.best_us),
            _x(r.speedup_eager), _x(r.speedup_compile), _x(r.sol_fraction, ""),
            str(r.evaluations), str(r.tokens), f"{r.wall_s:.0f}"]) + " |")
    return "\n".join(lines + [""] + [f"- {line}" for line in summary_lines(summary)]) + "\n"


def figure(records: list[ProblemRecord], title: str) -> Any:
    """Speedup vs eager and vs compile per problem, and the SOL fraction."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    names = [r.problem for r in records]
    fig = Figure(figsize=(max(6.0, 0.5 * len(names) + 2), 6))
    top, bottom = fig.subplots(2, 1, sharex=True)
    at = range(len(names))
    for shift, key, label in ((-0.2, "speedup_eager", "vs eager"),
                              (0.2, "speedup_compile", "vs compile")):
        top.bar([i + shift for i in at], [getattr(r, key) or 0.0 for r in records], 0.4,
                label=label)
    top.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    top.set(ylabel="speedup", title=title)
    top.legend()
    bottom.bar(list(at), [r.sol_fraction or 0.0 for r in records], 0.6, color="tab:green")
    bottom.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    bottom.set(ylabel="SOL fraction")
    bottom.set_xticks(list(at), names, rotation=60, ha="right", fontsize=7)
    if not any(r.speedup_eager for r in records):
        top.text(0.5, 0.5, "no timings (correctness only on this machine)", ha="center",
                 va="center", transform=top.transAxes)
    fig.tight_layout()
    return fig
