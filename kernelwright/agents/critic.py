"""The critic role: the lesson of each evaluated candidate, and whether the run goes on.

Offline policy: stop when the best reaches the SOL target, when W rounds bring no improvement,
when the budget is spent, when nothing can be timed (no GPU: a correct candidate is the end),
or when the coder cannot cover the problem. Faster-than-SOL results are flagged, never kept
silently. LLM policy: the role's model writes the round's lesson and may stop earlier (a
structured Critique); the hard stops above still apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kernelwright.agents.llm import LLMError, ask, prompt
from kernelwright.config import RoleConfig, RunConfig, run_config
from kernelwright.core.records import Candidate, CandidateStatus, State


class Critique(BaseModel):
    """The critic model's structured reply."""

    lesson: str = Field(description="one or two sentences: what this round taught")
    stop: bool = Field(description="true when more attempts are unlikely to pay off")


def lesson(c: Candidate) -> str:
    if c.status == CandidateStatus.UNCOVERED:
        return f"not covered: {c.message}"
    if not c.correct:
        return f"{c.change}: {c.status} ({c.reason or c.message[:80]})"
    if c.runtime_us is None:
        return f"{c.change}: correct (not timed)"
    sol = f", {c.sol_fraction:.2f} of SOL" if c.sol_fraction is not None else ""
    flag = " -- faster than the SOL floor: check the harness" if (c.sol_fraction or 0) > 1.05 else ""
    return f"{c.change}: {c.runtime_us:.1f} us{sol}{flag}"


def stop_reason(tree: list[Candidate], this_round: list[Candidate], best: Candidate | None,
                round_: int, stale: int, tokens: int, seconds: float, failure: str | None,
                config: RunConfig) -> str | None:
    """Why the run stops after this round, or None to go on: an LLM failure (of the planner or
    profiler, or a coder's or fixer's candidate), the offline verdict, a coder without ideas,
    then the token and time budgets."""
    stop = offline_verdict(tree, best, round_, stale, config)
    failed = next((c for c in this_round if c.status == CandidateStatus.LLM_ERROR), None)
    if failure:
        return failure
    if failed is not None:
        return failed.message
    if stop is None and all(c.status in {CandidateStatus.EXHAUSTED, CandidateStatus.UNCOVERED}
                            for c in this_round):
        stop = "the coder has no untried idea left"
    if stop is None and tokens >= config.max_tokens:
        stop = f"token budget spent ({tokens} of {config.max_tokens})"
    if stop is None and config.max_seconds and seconds >= config.max_seconds:
        stop = f"time budget spent ({seconds:.0f} of {config.max_seconds:g} s)"
    return stop


def offline_verdict(tree: list[Candidate], best: Candidate | None, round_: int, stale: int,
                    config: RunConfig) -> str | None:
    """Why the run stops now by the offline critic's rules, or None to go on."""
    if best is None and any(c.status == CandidateStatus.UNCOVERED for c in tree):
        return next(c for c in tree if c.status == CandidateStatus.UNCOVERED).message
    if best is not None and best.runtime_us is None:
        return "a correct candidate; on the CPU timings are not meaningful, so nothing to refine"
    if best is not None and (best.sol_fraction or 0) >= config.stop_sol:
        return f"reached {best.sol_fraction:.2f} of the SOL floor (target {config.stop_sol})"
    if stale >= config.patience:
        return f"{stale} rounds without improvement"
    if round_ >= config.iterations:
        return f"iteration budget spent ({config.iterations} rounds)"
    return None


def llm_critique(problem: str, floor: str, best: Candidate | None, round_: list[Candidate],
                 role: RoleConfig) -> tuple[Critique, int]:
    """(critique, tokens) from the critic's model; raises LLMError."""

    text = prompt("critic", problem=problem, floor=floor,
                  best=lesson(best) if best else "none correct yet",
                  round="\n".join(f"- #{c.id}: {lesson(c)}" for c in round_))
    reply = ask(role, text, schema=Critique)
    return reply.parsed, reply.tokens


def node(state: State, runtime: Any) -> dict[str, Any]:
    """The round's lessons and the decision to go on; LLM failures end the run cleanly."""

    cfg = run_config(runtime)
    tree = state["tree"]
    first = min(t["id"] for t in state["tasks"])
    this_round = [c for c in tree if c.id >= first]
    best = min((c for c in tree if c.correct), key=lambda c: c.runtime_us or float("inf"),
               default=None)
    before = next((c for c in tree if c.id == state.get("best_id")), None)
    improved = best is not None and (before is None or (best.runtime_us or 0) <
                                     (before.runtime_us or float("inf")))
    stale = 0 if improved else state["stale_rounds"] + 1
    stop = stop_reason(tree, this_round, best, state["round"], stale, state.get("tokens", 0),
                       state.get("seconds", 0.0), state.get("failure"), cfg)
    failed = state.get("failure") or any(c.status == CandidateStatus.LLM_ERROR for c in this_round)
    lessons = [lesson(c) for c in this_round]
    tokens = 0
    if cfg.critic.policy == "llm" and not failed:
        try:
            floor = (f"{best.runtime_us * best.sol_fraction:.1f} us" if best and best.runtime_us
                     and best.sol_fraction else "unknown (no GPU timing yet)")
            verdict, tokens = llm_critique(Path(state["problem_path"]).stem, floor, best,
                                           this_round, cfg.critic)
        except LLMError as exc:
            verdict, stop = None, exc.outcome("critic")
        if verdict is not None:
            lessons = [verdict.lesson]
            stop = stop or (f"critic: {verdict.lesson}" if verdict.stop else None)
    return {"best_id": best.id if best else None, "best": best, "stale_rounds": stale, "stop": stop,
            "tree": [c.model_copy(update={"lesson": lesson(c)}) for c in this_round],
            "tokens": tokens, "lessons": {str(c.id): lesson(c) for c in this_round},
            "log": [f"  critic: {'; '.join(lessons)}"] + ([f"stop: {stop}"] if stop else [])}
