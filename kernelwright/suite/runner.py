"""Suites: optimise (or evaluate) every problem of a folder tree, one record each.

    find_problems(DIR)          KernelBench-format files under DIR (a KernelBench checkout too)
    run_suite(problems, config) one ProblemRecord per problem; resumable through `out`
    records.py                  the records and the field's metrics (fast_p, geomeans, SOL)
    report.py                   results.json, results.md and the plot
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernelwright.suite.records import ProblemRecord, read_records, record_of

if TYPE_CHECKING:
    from kernelwright.config import RunConfig
    from kernelwright.core.results import EvalSettings


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
    from kernelwright.api import optimize

    each = limited(config, problem_limit_s)

    def solve(path: Path, name: str) -> ProblemRecord:
        started = time.perf_counter()
        result = optimize(path, each, thread_id=_thread_id(name, out),
                          checkpoint=out / "checkpoints.sqlite" if out else None,
                          parent_run_id=parent_run_id)
        record = record_of(name, result, time.perf_counter() - started)
        if out is not None:  # the run itself, for its report page (kernelwright report OUT)
            (out / "runs" / name).mkdir(parents=True, exist_ok=True)
            (out / "runs" / name / "summary.json").write_text(result.model_dump_json(indent=1))
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
    from kernelwright.core.problem import load_problem
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
    from kernelwright.core.problem import load_problem
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
    from kernelwright.core.errors import KernelwrightError

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


