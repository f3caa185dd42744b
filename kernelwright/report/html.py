"""`kernelwright report RUN_DIR|BENCH_DIR`: one self-contained HTML page per run or suite.

A run folder (what `kernelwright run` writes) holds summary.json, the run's Result: its
candidate tree with every source, verdict, profile and lesson, and the reference module. A
bench folder (`kernelwright bench --out`) holds results.json and, per problem, runs/NAME/
summary.json; its page links to each problem's run page.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from kernelwright.core.errors import KernelwrightError
from kernelwright.core.records import Candidate, Result
from kernelwright.report.charts import per_round, rounds_chart, svg
from kernelwright.suite.records import ProblemRecord, SuiteSummary

PAGE = "report.html"


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("kernelwright.report", "templates"),
                              autoescape=True, trim_blocks=True, lstrip_blocks=True)


def diff(old: str | None, new: str | None, old_name: str, new_name: str) -> str:
    """A unified diff of two sources ("" where either is missing)."""
    if not old or not new:
        return ""
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        old_name, new_name))


def tree_of(tree: list[Candidate]) -> list[dict[str, Any]]:
    """The candidates as nested nodes (children under their parent, in id order)."""
    ids = {c.id for c in tree}
    children: dict[int | None, list[Candidate]] = {}
    for c in tree:
        children.setdefault(c.parent if c.parent in ids else None, []).append(c)

    def node(c: Candidate) -> dict[str, Any]:
        return {"c": c, "children": [node(k) for k in children.get(c.id, [])]}

    return [node(c) for c in children.get(None, [])]


def run_page(result: Result) -> str:
    """A run's page: the candidate tree (a node opens its source, verdict, profile, lesson and
    memory items), the rounds against eager, compile and the floor, the best kernel beside the
    reference, and its diff to its parent."""
    by_id = {c.id: c for c in result.tree}
    diffs = {c.id: diff(by_id[c.parent].source, c.source, f"#{c.parent}", f"#{c.id}")
             for c in result.tree if c.parent in by_id}
    best = result.best
    rounds = per_round(result.tree)
    return _environment().get_template("run.html.j2").render(
        r=result, roots=tree_of(result.tree), diffs=diffs, best=best, rounds=rounds,
        chart=rounds_chart(rounds, result.problem),
        best_diff=diffs.get(best.id, "") if best else "",
        evaluated=sum(1 for c in result.tree if c.evaluated))


def suite_page(records: list[ProblemRecord], summary: SuiteSummary, title: str,
               links: dict[str, str]) -> str:
    """A suite's page: every problem (a failure with its reason), the field's metrics and the
    speedup and SOL chart, each problem linked to its run page where there is one."""
    from kernelwright.suite.report import figure, summary_lines

    return _environment().get_template("suite.html.j2").render(
        title=title, records=records, summary=summary, lines=summary_lines(summary), links=links,
        chart=svg(figure(records, title)))


def write_run_report(folder: Path) -> Path:
    """folder/report.html from folder/summary.json."""
    file = folder / "summary.json"
    try:
        result = Result.model_validate_json(file.read_text())
    except (OSError, ValueError) as exc:
        raise KernelwrightError(f"{file}: not a run's summary ({type(exc).__name__}). Fix: pass a "
                                "folder written by `kernelwright run` (it holds summary.json) or "
                                "by `kernelwright bench` (results.json).") from None
    page = folder / PAGE
    page.write_text(run_page(result))
    return page


def write_suite_report(folder: Path, title: str | None = None) -> list[Path]:
    """folder/report.html from folder/results.json, and each problem's run page under
    folder/runs/; the suite page first in the list."""
    file = folder / "results.json"
    try:
        data = json.loads(file.read_text())
        records = [ProblemRecord.model_validate(r) for r in data["problems"]]
        summary = SuiteSummary.model_validate(data["summary"])
    except (OSError, ValueError, KeyError) as exc:
        raise KernelwrightError(f"{file}: not a bench's results ({type(exc).__name__}). Fix: pass "
                                "the --out folder of `kernelwright bench`.") from None
    pages, links = [], {}
    for r in records:
        run = folder / "runs" / r.problem
        if (run / "summary.json").is_file():
            pages.append(write_run_report(run))
            links[r.problem] = f"runs/{r.problem}/{PAGE}"
    page = folder / PAGE
    page.write_text(suite_page(records, summary, title or f"kernelwright bench: {folder.name}",
                               links))
    return [page, *pages]


def write_report(path: Path) -> list[Path]:
    """The page(s) for a run folder or a bench folder, whichever `path` is."""
    if (path / "results.json").is_file():
        return write_suite_report(path)
    if (path / "summary.json").is_file():
        return [write_run_report(path)]
    raise KernelwrightError(f"{path}: holds neither summary.json (a run) nor results.json (a "
                            "bench). Fix: pass the folder `kernelwright run` printed after "
                            "'summary in', or the --out folder of `kernelwright bench`.")
