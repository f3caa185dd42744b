"""The coder role. Its offline policy writes Triton (or C++ for the cuda and cpu backends) from
the reference's traced graph and refines each kernel's launch configuration (writer/).

The graph's code node calls `offline_code` (a draft, or a refinement one launch configuration
away from its parent) or `llm_code` (the role's model, prompted from agents/prompts/).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from kernelwright.agents.llm import LLMError, ask, fenced_code, prompt
from kernelwright.config import RoleConfig, run_config
from kernelwright.core.problem import Problem
from kernelwright.core.records import Candidate, CandidateStatus, State, Task, problem_of
from kernelwright.core.results import Backend, EvalSettings, GuardMode, Precision
from kernelwright.hardware.backends import get_backend
from kernelwright.writer.kinds import describe, kind_of
from kernelwright.writer.schedule import KernelConfig, matmul_config, triton_next_pow2
from kernelwright.writer.search import neighbours, refine
from kernelwright.writer.sizes import hint
from kernelwright.writer.write import Unsupported, plan


class Draft(BaseModel):
    """A first candidate, or why there is none."""

    source: str | None = Field(None, description="candidate source defining ModelNew")
    covered: bool = Field(description="False: the writer lacks ops for this problem and mode")
    missing_ops: list[str] = Field(default_factory=list, description="aten ops without a rule")
    kernels: list[str] = Field(default_factory=list, description="one line per kernel")


def offline_draft(problem: Problem, precision: Precision = "fp32", guard: GuardMode = "strict"
                  ) -> Draft:
    """Write a candidate for `problem` (already shrunk, on a machine without a GPU): the first
    of `offline_plans` (in `library` mode, the one keeping vendor GEMMs where there is one)."""

    try:
        made = offline_plans(problem, precision, guard)[0][1]
    except Unsupported as exc:
        return Draft(covered=False, missing_ops=exc.ops)
    return Draft(source=made.source(), covered=True,
                 kernels=[f"{g.kind} over {list(g.shape)}: {describe(g, c)}"
                          for g, c in zip(made.groups, made.configs, strict=True)])


def offline_plans(problem: Problem, precision: Precision = "fp32", guard: GuardMode = "strict",
                  backend: Backend = "triton") -> list[tuple[str, Any]]:
    """The writer's plans for `problem`, labelled: one; in `library` mode, where the plan keeps
    a cuBLAS/cuDNN call, also the strict plan (the writer's own GEMMs, same epilogues), so the
    two can compete by measurement, and the strict plan alone where the library plan would be
    vendor calls only (a lone GEMM). Raises Unsupported when none covers the problem."""

    try:
        made = plan(problem, precision, guard, backend)
    except Unsupported:
        if guard != "library":
            raise
        return [("", plan(problem, precision, "strict", backend))]  # e.g. a lone GEMM: own only
    if guard != "library" or not any(kind_of(g).writer.vendor for g in made.groups):
        return [("", made)]
    try:
        return [("vendor GEMMs", made), ("own GEMMs", plan(problem, precision, "strict", backend))]
    except Unsupported:
        return [("vendor GEMMs", made)]


def plan_of(plans: list[tuple[str, Any]], configs: list[dict]) -> tuple[str, Any]:
    """The plan whose kernels `configs` configure: as many kernels, and a GEMM tile (BLOCK_K)
    exactly where the plan has its own GEMM."""
    for label, made in plans:
        if len(made.groups) == len(configs) and all(
                (g.kind == "matmul") == bool(c.get("block_k"))
                for g, c in zip(made.groups, configs, strict=True)):
            return label, made
    return plans[0]


def offline_refine(problem: Problem, settings: EvalSettings, budget: int = 10,
                   progress: Callable[[str], None] = lambda _: None,
                   evaluate: Callable[..., Any] | None = None):  # -> SearchResult | None
    """Search launch configurations of the offline draft; None when the problem is not covered.

    In `library` mode the writer's own GEMMs compete with the vendor's (`offline_plans`): each
    plan is searched with half the budget and the faster correct candidate wins, by
    measurement."""

    try:
        plans = offline_plans(problem, settings.precision, settings.guard)
    except Unsupported:
        return None
    if len(plans) == 1:
        return refine(plans[0][1], settings, budget=budget, progress=progress, evaluate=evaluate)

    def labelled(label: str) -> Callable[[str], None]:
        return lambda line: progress(f"[{label}] {line}")

    found = [refine(made, settings, budget=max(1, budget // 2), evaluate=evaluate,
                    progress=labelled(label)) for label, made in plans]
    return _faster(found, [label for label, _ in plans])


def _faster(found: list[Any], labels: list[str]) -> Any:
    """One search tree out of several (nodes renumbered, changes labelled), best = the fastest
    correct candidate; without timings the first correct one."""
    tree: list[Any] = []
    offsets: list[int] = []
    for result, label in zip(found, labels, strict=True):
        offsets.append(len(tree))
        for node in result.tree:
            tree.append(node.model_copy(update=dict(
                id=node.id + offsets[-1], change=f"{label}: {node.change}",
                parent=None if node.parent is None else node.parent + offsets[-1])))
    ok = [i for i, r in enumerate(found) if r.best_result.ok]
    timed = [i for i in ok if found[i].best_result.runtime_us]
    win = min(timed, key=lambda i: found[i].best_result.runtime_us) if timed else \
        (ok or [0])[0]
    times = ", ".join(f"{labels[i]} {found[i].best_result.runtime_us:.1f} us" for i in timed)
    return found[win].model_copy(update=dict(
        tree=tree, best_id=found[win].best_id + offsets[win],
        stopped=f"{labels[win]} chosen ({times or 'no timings'}); {found[win].stopped}"))


class Coded(BaseModel):
    """What the offline coder made of its task: a candidate, or why there is none."""

    outcome: Literal["written", "uncovered", "exhausted"]
    source: str | None = Field(None, description="the candidate (outcome `written`)")
    configs: list[dict] = Field(default_factory=list, description="its launch configurations")
    change: str = Field("", description="what it tries, in words")
    missing: list[str] = Field(default_factory=list, description="uncovered: aten ops without a rule")
    message: str = Field("", description="uncovered or exhausted: why, in words")


def offline_code(problem: Problem, stage: str, index: int, parent_configs: list[dict] | None,
                 tried: list[list[dict]], precision: Precision = "fp32",
                 guard: GuardMode = "strict", backend: Backend = "triton",
                 remembered: list[list[dict]] | None = None) -> Coded:
    """The index-th offline idea not in `tried`: configurations remembered from similar tasks
    first, then the writer's default (drafts; in `library` mode the vendor-GEMM plan's and the
    own-GEMM plan's, which then compete by measurement), then neighbours of the parent's
    configuration in the parent's plan."""
    from dataclasses import asdict


    try:
        plans = offline_plans(problem, precision, guard, backend)
    except Unsupported as exc:
        return Coded(outcome="uncovered", missing=exc.ops, message=str(exc))
    ideas: list[tuple[Any, list[KernelConfig], str]] = []  # (plan, configs, change)
    if parent_configs is None:
        for label, made in plans:
            named = f"{label}: " if label else ""
            ideas += [(made, cfgs, f"{named}remembered from a similar task: " + "; ".join(
                made.describe(i, c) for i, c in enumerate(cfgs)))
                for cfgs in (transfer(made, r) for r in remembered or []) if cfgs is not None]
        ideas += [(made, made.configs, f"{label}: the writer's default" if label
                   else "the writer's default") for label, made in plans]
        starts = [(label, made, made.configs) for label, made in plans]
    else:
        label, made = plan_of(plans, parent_configs)
        starts = [(label, made, [KernelConfig(**c) for c in parent_configs])]
    for label, made, start in starts:
        ideas += [(made, cfgs, f"{label}: {change}" if label else change)
                  for cfgs, change in neighbours(made, start)]
    seen = {tuple(tuple(sorted(c.items())) for c in t) for t in tried}
    fresh = [idea for idea in ideas
             if tuple(tuple(sorted(asdict(c).items())) for c in idea[1]) not in seen]
    if index >= len(fresh):
        return Coded(outcome="exhausted", message="no untried configuration left")
    made, configs, change = fresh[index]
    return Coded(outcome="written", source=made.source(configs),
                 configs=[asdict(c) for c in configs], change=change)


def transfer(made, remembered: list[dict]):  # (Plan, ...) -> list[KernelConfig] | None
    """A remembered configuration set ({kind, cols, config} per kernel) mapped onto this plan's
    kernels: each takes the config of the remembered kernel of its kind with the nearest row
    length, within 4x; a whole row held in registers is resized to this row. None when no
    kernel of the plan has a match."""

    out, matched = [], False
    for group, default in zip(made.groups, made.configs, strict=True):
        cols = hint(group.cols) if group.kind in {"reduction", "scan"} else 0
        same = [r for r in remembered if r["kind"] == group.kind and r["config"].get("split", 1) == 1
                and (cols == 0) == (r["cols"] == 0)
                and (cols == 0 or 0.25 <= r["cols"] / cols <= 4)]
        if not same:
            out.append(default)
            continue
        best = min(same, key=lambda r: abs((r["cols"] or 1) - (cols or 1)))
        config = KernelConfig(**best["config"])
        if group.kind == "matmul" and made.backend == "triton":  # the tile, fitted to this GEMM
            config = matmul_config(group, config.block_r, config.block_c, config.block_k,
                                   config.num_warps, config.num_stages, config.group_m,
                                   dot=config.dot)
        if config.persistent and made.backend == "triton":
            config = KernelConfig(**{**best["config"], "block_c": triton_next_pow2(cols)})
        out.append(config)
        matched = True
    return out if matched and out != made.configs else None


GUARD_RULES = {
    "strict": "no torch compute in the forward: every op runs in your own kernels",
    "library": "torch GEMM and convolution calls (torch.matmul, F.linear, F.conv2d) are "
               "allowed; every other op runs in your own kernels",
}
STRATEGIES = [
    "one fused kernel for the whole forward where possible",
    "one program per row with the row held in registers",
    "a grid that fills every SM, with large blocks and few launches",
    "minimise bytes moved: read each input once, write each output once",
]


class CodeRequest(BaseModel):
    """What the coder's model is asked for: a draft, or a refinement of a parent."""

    stage: str
    index: int = Field(description="the coder's index this round (picks a default strategy)")
    strategy: str = Field("", description="the planner's strategy; empty: the index-th default")
    parent_source: str | None = None
    measurement: str = Field("not timed", description="the parent's time, in words")
    diagnosis: str = Field("", description="the profiler's reading of the parent")
    lessons: list[str] = Field(default_factory=list, description="recalled from the memory")


def llm_code(problem: Problem, role: RoleConfig, request: CodeRequest, precision: Precision,
             guard: GuardMode, backend: Backend) -> tuple[str, str, int]:
    """(source, strategy, tokens) from the coder's model; raises LLMError. Without a
    planner's strategy, the index-th coder takes the index-th of STRATEGIES."""

    strategy = request.strategy or STRATEGIES[request.index % len(STRATEGIES)]
    values = dict(reference=problem.source, strategy=strategy, guard=guard,
                  guard_rule=GUARD_RULES[guard], precision=precision,
                  target=get_backend(backend).prompt,
                  memory="\n".join(f"- {x}" for x in request.lessons) or "- (none yet)")
    if request.stage == "draft" or request.parent_source is None:
        text = prompt("coder_draft", **values)
    else:
        text = prompt("coder_refine", source=request.parent_source,
                      measurement=request.measurement, diagnosis=request.diagnosis, **values)
    reply = ask(role, text, want_code=True)
    return fenced_code(reply.text) or "", strategy, reply.tokens


def node(state: State, runtime: Any) -> dict[str, Any]:
    """The graph's code node: one coder, the offline writer or the coder role's model."""

    task: Task = state["task"]
    cfg = run_config(runtime)
    tree: list[Candidate] = state["tree"]
    parent = next((c for c in tree if c.id == task["parent"]), None)
    base = dict(id=task["id"], parent=task["parent"], stage=task["stage"],
                memory=[m["id"] for m in task["memory"]], round=state.get("round", 0))
    started = time.perf_counter()
    if cfg.coder.policy == "llm":
        request = CodeRequest(
            stage=task["stage"], index=task["index"], strategy=task["strategy"],
            parent_source=parent.source if parent else None,
            measurement=f"{parent.runtime_us} us" if parent and parent.runtime_us else "not timed",
            diagnosis=parent.diagnosis if parent else "",
            lessons=[m["lesson"] for m in task["memory"]])
        try:
            source, strategy, tokens = llm_code(problem_of(state), cfg.coder, request,
                                                cfg.precision, cfg.guard, cfg.backend)
        except LLMError as exc:
            return {"tree": [Candidate(**base, change="coder model failed",
                                       status=CandidateStatus.LLM_ERROR,
                                       message=exc.outcome("coder"))], "tokens": exc.tokens}
        return {"tree": [Candidate(**base, change=strategy, source=source)], "tokens": tokens,
                "seconds": time.perf_counter() - started}
    out = offline_code(problem_of(state), task["stage"], task["index"],
                       parent.configs if parent else None, [c.configs for c in tree if c.configs],
                       cfg.precision, cfg.guard, cfg.backend,
                       [m["configs"] for m in task["memory"] if m["configs"]])
    if out.outcome != "written":
        return {"tree": [Candidate(**base, change=out.message, status=CandidateStatus(out.outcome),
                                   message=out.message)]}
    return {"tree": [Candidate(**base, change=out.change, source=out.source, configs=out.configs)],
            "seconds": time.perf_counter() - started}
