"""The reports' charts, drawn by matplotlib as SVG text to inline in a page."""

from __future__ import annotations

import io
from typing import Any

from kernelwright.core.records import Candidate


def svg(fig: Any) -> str:
    """A matplotlib figure as an inline <svg> element (the XML prologue dropped)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def per_round(tree: list[Candidate]) -> list[dict[str, float | int | None]]:
    """Each round's best correct time so far, beside one eager, one compile and one floor figure
    for the whole run (the first measured: every round is held to the same baselines)."""
    timed = [c for c in tree if c.correct and c.runtime_us]
    eager = next((c.eager_us for c in tree if c.eager_us), None)
    compiled = next((c.compile_us for c in tree if c.compile_us), None)
    floor = next((c.runtime_us * c.sol_fraction for c in timed if c.runtime_us and c.sol_fraction),
                 None)
    rows = []
    for r in sorted({c.round for c in tree}):
        upto = [c.runtime_us for c in timed if c.round <= r and c.runtime_us]
        rows.append({"round": r, "best_us": min(upto) if upto else None, "eager_us": eager,
                     "compile_us": compiled, "floor_us": floor})
    return rows


def rounds_chart(rows: list[dict[str, Any]], title: str) -> str:
    """The best time per round against eager, torch.compile and the SOL floor (microseconds)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 3.2))
    ax = fig.add_subplot()
    points = [(r["round"], r["best_us"]) for r in rows if r["best_us"]]
    if points:
        ax.plot(*zip(*points, strict=True), marker="o", label="best kernel")
        first = rows[0]
        for key, label, style in (("eager_us", "eager", "--"), ("compile_us", "torch.compile", ":"),
                                  ("floor_us", "SOL floor", "-.")):
            if first[key]:
                ax.axhline(first[key], linestyle=style, color="grey" if key != "floor_us"
                           else "tab:green", linewidth=1, label=label)
        ax.set(ylim=(0, None))
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no timings (correctness only on this machine)", ha="center",
                va="center", transform=ax.transAxes)
    ax.set(xlabel="round", ylabel="time (us)", title=title)
    fig.tight_layout()
    return svg(fig)
