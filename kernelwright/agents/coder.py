"""The coder role. Its offline policy writes Triton from the reference's traced graph and
refines each kernel's launch configuration through the harness (see agents/offline/).

The LangGraph node and the LLM policy that share these interfaces come with the agent graph.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from kernelwright.problem import Problem
from kernelwright.tools.results import EvalSettings, GuardMode, Precision


class Draft(BaseModel):
    """A first candidate, or why there is none."""

    source: str | None = Field(None, description="candidate source defining ModelNew")
    covered: bool = Field(description="False: the writer lacks ops for this problem and mode")
    missing_ops: list[str] = Field(default_factory=list, description="aten ops without a rule")
    kernels: list[str] = Field(default_factory=list, description="one line per kernel")


def offline_draft(problem: Problem, precision: Precision = "fp32", guard: GuardMode = "strict"
                  ) -> Draft:
    """Write a candidate for `problem` (already shrunk, on a machine without a GPU)."""
    from kernelwright.agents.offline.write import Unsupported, plan

    try:
        made = plan(problem, precision, guard)
    except Unsupported as exc:
        return Draft(covered=False, missing_ops=exc.ops)
    return Draft(source=made.source(), covered=True,
                 kernels=[f"{g.kind} over {list(g.shape)}: {c.describe()}"
                          for g, c in zip(made.groups, made.configs, strict=True)])


def offline_refine(problem: Problem, settings: EvalSettings, budget: int = 10,
                   progress: Callable[[str], None] = lambda _: None):  # -> SearchResult
    """Search launch configurations of the offline draft; None when the problem is not covered."""
    from kernelwright.agents.offline.search import refine
    from kernelwright.agents.offline.write import Unsupported, plan

    try:
        made = plan(problem, settings.precision, settings.guard)
    except Unsupported:
        return None
    return refine(made, settings, budget=budget, progress=progress)
