"""`kernelwright compare`: one suite, several agent configurations, side by side.

In MLflow (tracking.py) a comparison is one parent run; each configuration is a child run with
the configuration as params and the suite's summary as metrics; each problem's optimisation is
nested under its configuration's run. Filter the experiment by `tags.kind = 'configuration'` to
see configurations as rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kernelwright.config import RunConfig
from kernelwright.core.errors import KernelwrightError
from kernelwright.suite.records import ProblemRecord, SuiteSummary, summarize, summary_metrics
from kernelwright.suite.runner import find_problems, run_suite


class Comparison(BaseModel):
    suite: str
    problems: list[str]
    summaries: dict[str, SuiteSummary]
    records: dict[str, list[ProblemRecord]]
    parent_run_id: str | None
    child_run_ids: dict[str, str | None]


def load_configs(paths: list[Path]) -> dict[str, RunConfig]:
    """Each YAML file, named by its stem; two files of one name are an error."""
    configs: dict[str, RunConfig] = {}
    for path in paths:
        if path.stem in configs:
            raise KernelwrightError(f"{path}: a configuration named {path.stem!r} is already given; "
                                    "rename one of the files (names label the columns)")
        configs[path.stem] = RunConfig.from_yaml(path)
    return configs


def compare(configs: dict[str, RunConfig], suite: Path, out: Path, *,
            on_problem: Callable[[str, str, ProblemRecord | None], None] = lambda *_: None,
            say: Callable[[str], None] = lambda _: None) -> Comparison:
    """Run the suite under each configuration. Every run is tracked where the first
    configuration says (tracking.uri, tracking.experiment); results also go to out/NAME/, so
    running the same comparison again skips the problems already done."""
    from kernelwright.tracking import MlflowRun, flatten, policy_tags

    problems = find_problems(suite)
    if not problems:
        raise KernelwrightError(f"{suite}: no KernelBench-format problem (a .py file with "
                                "`class Model` and `get_inputs`) under this folder")
    tracking = next(iter(configs.values())).tracking
    parent = MlflowRun(next(iter(configs.values())), say=say)
    parent.open(f"compare {' vs '.join(configs)}", {"kind": "compare", "suite": str(suite),
                                                    "configs": ", ".join(configs)})
    summaries, records, children = {}, {}, {}
    for name, config in configs.items():
        config = config.model_copy(update={"tracking": tracking})
        child = MlflowRun(config, parent_run_id=parent.run_id, say=say)
        child.open(name, {"kind": "configuration", "config": name, "suite": str(suite),
                          **policy_tags(config)}, flatten(config))
        done = run_suite(problems, suite, config, out / name, parent_run_id=child.run_id,
                         on_problem=functools.partial(on_problem, name))
        summaries[name], records[name], children[name] = summarize(done), done, child.run_id
        child.close(summary_metrics(summaries[name]), {"summary.json": summaries[name].model_dump_json(
            indent=1)}, "FINISHED")
    result = Comparison(suite=str(suite), summaries=summaries, records=records,
                        problems=[p.relative_to(suite).with_suffix("").as_posix() for p in problems],
                        parent_run_id=parent.run_id, child_run_ids=children)
    parent.close({}, {"comparison.md": markdown(result), "problems.md": problem_table(result)},
                 "FINISHED")
    if parent.run_id is not None:
        parent.log_table(per_problem(result), "problems.json")  # MLflow shows it as a table
    return result


def per_problem(comparison: Comparison) -> dict[str, list[Any]]:
    """One row per problem and configuration: its verdict and figures (a column each)."""
    table: dict[str, list[Any]] = {k: [] for k in (
        "problem", "config", "status", "best_us", "speedup_eager", "speedup_compile",
        "sol_fraction", "evaluations")}
    for problem in comparison.problems:
        for name, records in comparison.records.items():
            r = next((x for x in records if x.problem == problem), None)
            if r is None:
                continue
            for key, value in (("problem", problem), ("config", name), ("status", r.verdict()),
                               ("best_us", r.best_us), ("speedup_eager", r.speedup_eager),
                               ("speedup_compile", r.speedup_compile),
                               ("sol_fraction", r.sol_fraction), ("evaluations", r.evaluations)):
                table[key].append(value)
    return table


def problem_table(comparison: Comparison) -> str:
    """The per-problem table in Markdown: a row per problem, each configuration's verdict and
    speedups side by side."""
    names = list(comparison.records)
    lines = ["| problem | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for problem in comparison.problems:
        cells = []
        for name in names:
            r = next((x for x in comparison.records[name] if x.problem == problem), None)
            if r is None:
                cells.append("-")
            elif not r.correct:
                cells.append(r.verdict().replace("|", "/"))
            else:
                speed = (f"{r.speedup_eager:.2f}x eager" if r.speedup_eager else "not timed")
                cells.append(f"correct, {speed}")
        lines.append(f"| {problem} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rows(comparison: Comparison) -> list[tuple[str, list[str]]]:
    """The side-by-side table: one row per metric, one column per configuration."""
    s = list(comparison.summaries.values())

    def num(value: float | None, unit: str = "x", digits: int = 2) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}{unit}"

    def share(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.0f}%"

    return [
        ("correct", [f"{x.correct}/{x.problems} ({x.correct_pct:.0f}%)" for x in s]),
        ("fast_1 vs eager", [share(x.fast_eager["fast_1"]) for x in s]),
        ("fast_1 vs compile", [share(x.fast_compile["fast_1"]) for x in s]),
        ("geomean speedup vs eager", [num(x.geomean_speedup_eager) for x in s]),
        ("geomean speedup vs compile", [num(x.geomean_speedup_compile) for x in s]),
        ("mean SOL fraction", [num(x.mean_sol_fraction, "") for x in s]),
        ("evaluations", [str(x.evaluations) for x in s]),
        ("tokens", [str(x.tokens) for x in s]),
        ("wall time", [f"{x.wall_s:.0f} s" for x in s]),
    ]


def markdown(comparison: Comparison) -> str:
    names = list(comparison.summaries)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(values) + " |" for label, values in rows(comparison)]
    return "\n".join(lines) + "\n"
