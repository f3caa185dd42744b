"""The profiler role: a diagnosis of each correct candidate, for the refinement that follows.

The harness measures (tools/profile.py: kernel census, SOL bound and fraction, extra launches);
`facts` reads those out in one line. Offline policy: the diagnosis is the facts. LLM policy:
the role's model reads the facts and the source and names the bottleneck and what to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kernelwright.agents.llm import LLMError, ask, prompt
from kernelwright.config import RoleConfig, run_config
from kernelwright.core.records import Candidate, State
from kernelwright.core.results import EvalResult


class Diagnosis(BaseModel):
    """The profiler model's structured reply."""

    bottleneck: str = Field(description="what limits this kernel, in one sentence")
    advice: str = Field(description="the change most likely to make it faster")


def facts(result: EvalResult) -> str:
    """The harness's measurements of one evaluation, in one line."""
    if result.profile is not None and result.profile.diagnosis:
        return result.profile.diagnosis
    if result.runtime_us is None:
        return "not timed (no GPU): correctness only"
    if result.sol is not None and result.sol_fraction is not None:
        return f"{result.sol.bound}-bound, {result.sol_fraction:.2f} of the SOL floor"
    return f"{result.runtime_us:.1f} us"


def llm_profile(problem: str, candidate: Candidate, role: RoleConfig) -> tuple[str, int]:
    """(diagnosis, tokens) from the profiler's model; raises LLMError."""

    measured = f"{candidate.runtime_us:.1f} us" if candidate.runtime_us else "not timed"
    reply = ask(role, prompt("profiler", problem=problem, measured=measured, facts=candidate.facts,
                             source=candidate.source or ""), schema=Diagnosis)
    d: Diagnosis = reply.parsed
    return f"{d.bottleneck} Next: {d.advice}", reply.tokens


def node(state: State, runtime: Any) -> dict[str, Any]:
    """The profiler: a diagnosis of each correct candidate not yet diagnosed."""

    cfg = run_config(runtime)
    made, tokens = [], 0
    for c in (c for c in state["tree"] if c.correct and not c.diagnosis):
        if cfg.profiler.policy != "llm":
            made.append(c.model_copy(update={"diagnosis": c.facts}))
            continue
        try:
            text, used = llm_profile(Path(state["problem_path"]).stem, c, cfg.profiler)
        except LLMError as exc:
            return {"tree": made, "tokens": tokens + exc.tokens, "failure": exc.outcome("profiler")}
        tokens += used
        made.append(c.model_copy(update={"diagnosis": text}))
    return {"tree": made, "tokens": tokens,
            "log": [f"  profile #{c.id}: {c.diagnosis}" for c in made]}
