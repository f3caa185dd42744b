"""The compiler-fixer role: repair a candidate that failed to build, run or match the reference.

Offline policy (for candidates the offline coder wrote): rules keyed on the error. Resource
errors (shared memory, registers) halve the tiles; any other failure falls back to the
writer's default configuration, which the CPU tests cover, and a wrong answer at the default to
each kernel's safest configuration (writer/schedule.py). None when no rule applies.
LLM policy: the role's model repairs the source from the failure, a wrong answer's mismatch
report included (agents/prompts/fixer.md).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from kernelwright.agents.coder import offline_plans, plan_of
from kernelwright.agents.llm import LLMError, ask, fenced_code, prompt
from kernelwright.config import RoleConfig, RunConfig, run_config
from kernelwright.core.problem import Problem
from kernelwright.core.records import FIXABLE, Candidate, CandidateStatus, State, problem_of
from kernelwright.core.results import Backend
from kernelwright.hardware.backends import get_backend
from kernelwright.writer.schedule import KernelConfig

RESOURCE_WORDS = ("out of resources", "shared memory", "registers", "too many resources")


def offline_fix(failed: Candidate, default: list[KernelConfig], safe: list[KernelConfig] | None = None
                ) -> tuple[list[KernelConfig], str] | None:
    """New launch configs for `failed` and the change in words, or None. A wrong answer at the
    default configuration falls back to `safe`, every kernel at its kind's safest one."""
    configs = [KernelConfig(**c) for c in failed.configs]
    if not configs:
        return None
    text = f"{failed.reason} {failed.message}".lower()
    if any(w in text for w in RESOURCE_WORDS):
        smaller = [KernelConfig(block_r=max(1, c.block_r // 2) if c.block_c > 1 else
                                max(128, c.block_r // 2),
                                block_c=max(1, c.block_c // 2) if not c.persistent else c.block_c,
                                num_warps=c.num_warps, persistent=c.persistent, split=c.split)
                   for c in configs]
        if smaller != configs:
            return smaller, "halved the tiles after a resource error"
    if configs != default:
        return default, "back to the writer's default configuration"
    if failed.status == CandidateStatus.INCORRECT and safe is not None and safe != configs:
        return safe, "the safest configuration of each kernel after a wrong answer"
    return None


def llm_fix(problem: Problem, failed: Candidate, role: RoleConfig, backend: Backend
            ) -> tuple[str, int]:
    """(repaired source, tokens) from the fixer's model; raises LLMError."""

    reply = ask(role, prompt("fixer", reference=problem.source, source=failed.source or "",
                             status=failed.status, message=failed.message[-3000:],
                             target=get_backend(backend).prompt), want_code=True)
    return fenced_code(reply.text) or "", reply.tokens


def node(state: State, runtime: Any) -> dict[str, Any]:
    """Repair each fixable failure of this round with the fixer's policy."""

    cfg = run_config(runtime)
    next_id = max(c.id for c in state["tree"]) + 1
    made: list[Candidate] = []
    tokens = 0
    plans: list[Any] = []  # the offline writer's plans, captured once for all repairs
    for failed in to_fix(state, cfg):
        made.append(failed.model_copy(update={"fixes": cfg.fix_tries}))  # repaired once only
        child = dict(id=next_id, parent=failed.id, stage="fix", fixes=failed.fixes + 1,
                     round=state.get("round", 0))
        if cfg.fixer.policy == "llm":
            try:
                source, used = llm_fix(problem_of(state), failed, cfg.fixer, cfg.backend)
            except LLMError as exc:
                made.append(Candidate(**child, change="fixer model failed",
                                      status=CandidateStatus.LLM_ERROR, message=exc.outcome("fixer")))
                tokens += exc.tokens
                break
            tokens += used
            made.append(Candidate(**child, change=f"repair of #{failed.id}", source=source))
        else:
            plans = plans or offline_plans(problem_of(state), cfg.precision, cfg.guard, cfg.backend)
            _, writer = plan_of(plans, failed.configs)  # the plan the failed candidate came from
            repair = offline_fix(failed, writer.configs, writer.safe_configs())
            if repair is None:
                continue
            configs, change = repair
            made.append(Candidate(**child, change=change, source=writer.source(configs),
                                  configs=[asdict(c) for c in configs]))
        next_id += 1
    repairs = [c for c in made if c.stage == "fix" and c.status == CandidateStatus.PENDING]
    return {"tree": made, "tokens": tokens, "log": [f"  fix: {len(repairs)} repair(s)"]}


def to_fix(state: State, cfg: RunConfig) -> list[Candidate]:
    """The failures of the tree the fixer can still repair (build and runtime errors)."""
    return [c for c in state["tree"] if c.status in FIXABLE and c.fixes < cfg.fix_tries
            and (c.configs or cfg.fixer.policy == "llm")]
