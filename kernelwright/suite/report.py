"""A suite's report: results.json, results.md (the table) and speedup.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernelwright.suite.records import ProblemRecord, SuiteSummary, write_json

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
            "no measurable difference" if r.within_noise else _x(r.speedup_eager),
            _x(r.speedup_compile), _x(r.sol_fraction, ""),
            str(r.evaluations), str(r.tokens), f"{r.wall_s:.0f}"]) + " |")
    return "\n".join(lines + [""] + [f"- {line}" for line in summary_lines(summary)]) + "\n"


def figure(records: list[ProblemRecord], title: str) -> Any:
    """Speedup vs eager and vs compile per problem, and the SOL fraction; a problem without a
    correct kernel shows its reason where its bars would be."""
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
    for i, r in enumerate(records):  # a failed problem is marked with its reason, not left blank
        if not r.correct:
            top.text(i, 0.05, f"failed: {r.verdict()}"[:48], rotation=90, ha="center", va="bottom",
                     fontsize=7, color="tab:red", transform=top.get_xaxis_transform())
    bottom.bar(list(at), [r.sol_fraction or 0.0 for r in records], 0.6, color="tab:green")
    bottom.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    bottom.set(ylabel="SOL fraction")
    bottom.set_xticks(list(at), names, rotation=60, ha="right", fontsize=7)
    if not any(r.speedup_eager for r in records):
        top.text(0.5, 0.85, "no timings (correctness only on this machine)", ha="center",
                 va="center", transform=top.transAxes)
    fig.tight_layout()
    return fig
