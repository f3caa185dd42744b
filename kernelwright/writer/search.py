"""Launch-configuration search: a tree of candidates, each evaluated by the harness.

Coordinate descent from the writer's default: for one kernel at a time, try its alternative
configurations (most promising first) with the others held at the best so far; a child that is
correct and faster becomes the new best. Every evaluation is a node of the tree (parent, change,
status, time). The search stops when the budget is spent or the best is near the SOL floor.
Without a GPU, times are not meaningful: the default is checked for correctness and kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic import BaseModel, Field

from kernelwright.core.results import EvalResult, EvalSettings
from kernelwright.tools import evaluate as harness
from kernelwright.writer.kinds import config_space
from kernelwright.writer.schedule import KernelConfig
from kernelwright.writer.write import Plan

log = logging.getLogger(__name__)



class TreeNode(BaseModel):
    """One evaluated candidate."""

    id: int
    parent: int | None
    change: str = Field(description="what differs from the parent, e.g. 'kernel0: BLOCK=2048'")
    configs: list[str]
    status: str
    runtime_us: float | None = None
    sol_fraction: float | None = None


class SearchResult(BaseModel):
    best_id: int
    best_source: str
    best_result: EvalResult
    tree: list[TreeNode]
    stopped: str = Field(description="why the search ended")








def neighbours(plan: Plan, configs: list[KernelConfig]) -> list[tuple[list[KernelConfig], str]]:
    """Configurations one change away from `configs`, most promising first, with the change."""
    out = []
    for i, group in enumerate(plan.groups):
        for alt in config_space(group, plan.backend):
            if alt != configs[i]:
                out.append((configs[:i] + [alt] + configs[i + 1:],
                            f"kernel{i}: {plan.describe(i, alt)}"))
    return out


def refine(plan: Plan, settings: EvalSettings, budget: int = 10, stop_at_sol: float = 0.92,
           evaluate: Callable[..., EvalResult] | None = None,
           progress: Callable[[str], None] = lambda _: None) -> SearchResult:
    """Search the plan's launch configurations; return the best correct candidate and the tree."""
    if evaluate is None:
        evaluate = harness.evaluate
    tree: list[TreeNode] = []

    def run(configs: list[KernelConfig], parent: int | None, change: str) -> EvalResult:
        result = evaluate(plan.problem, plan.source(configs), settings)
        tree.append(TreeNode(id=len(tree), parent=parent, change=change,
                             configs=[plan.describe(i, c) for i, c in enumerate(configs)],
                             status=result.status.value,
                             runtime_us=result.runtime_us, sol_fraction=result.sol_fraction))
        progress(f"{change}: {result.status.value} {result.runtime_us or '-'} us")
        return result

    best_configs = list(plan.configs)
    best = run(best_configs, None, "default configuration")
    best_id = 0
    stopped = "budget spent"
    if best.runtime_us is None:
        stopped = "no timings (not a GPU, or the default failed): kept the default"
    else:
        for i in range(len(plan.groups)):  # one kernel at a time, the others at the best
            for trial, change in neighbours(plan, best_configs):
                if trial[:i] != best_configs[:i] or trial[i + 1:] != best_configs[i + 1:]:
                    continue
                if len(tree) >= budget:
                    break
                if (best.sol_fraction or 0) >= stop_at_sol:
                    stopped = f"within {1 / stop_at_sol:.2f}x of the SOL floor"
                    break
                result = run(trial, best_id, change)
                if result.ok and result.runtime_us and result.runtime_us < best.runtime_us:
                    best, best_configs, best_id = result, trial, len(tree) - 1
    plan.configs = best_configs
    return SearchResult(best_id=best_id, best_source=plan.source(best_configs), best_result=best,
                        tree=tree, stopped=stopped)
