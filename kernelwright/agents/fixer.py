"""The compiler-fixer role: repair a candidate that failed to build or run.

Offline policy (for candidates the offline coder wrote): rules keyed on the error. Resource
errors (shared memory, registers) halve the tiles; any other build or runtime error falls back
to the writer's default configuration, which the CPU tests cover. None when no rule applies.
LLM policy: the role's model repairs the source from the failure (agents/prompts/fixer.md).
"""

from __future__ import annotations

from kernelwright.config import RoleConfig
from kernelwright.core.problem import Problem
from kernelwright.core.records import Candidate
from kernelwright.core.results import Backend
from kernelwright.writer.schedule import KernelConfig

RESOURCE_WORDS = ("out of resources", "shared memory", "registers", "too many resources")


def offline_fix(failed: Candidate, default: list[KernelConfig]) -> tuple[list[KernelConfig], str] | None:
    """New launch configs for `failed` and the change in words, or None."""
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
    return None


def llm_fix(problem: Problem, failed: Candidate, role: RoleConfig, backend: Backend
            ) -> tuple[str, int]:
    """(repaired source, tokens) from the fixer's model; raises LLMError."""
    from kernelwright.agents.llm import ask, fenced_code, prompt
    from kernelwright.hardware.backends import get_backend

    reply = ask(role, prompt("fixer", reference=problem.source, source=failed.source or "",
                             status=failed.status, message=failed.message[-3000:],
                             target=get_backend(backend).prompt), want_code=True)
    return fenced_code(reply.text) or "", reply.tokens
