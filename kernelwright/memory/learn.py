"""What the graph asks of the memory: recall before coding, remember after the critic.

`recall` retrieves a stage's experiences for a task (the planner puts them in each coder's
context). `remember` scores each evaluated candidate of a round (experience.py's rewards),
moves the Q-values of the experiences its coder saw, and stores what it taught.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernelwright.config import RunConfig, run_config
from kernelwright.core.records import Candidate, State
from kernelwright.memory.experience import (
    Experience,
    Outcome,
    Signature,
    Stage,
    draft_reward,
    refine_reward,
)
from kernelwright.memory.store import open_store
from kernelwright.writer.sizes import hint
from kernelwright.writer.write import Unsupported, plan

EVALUATED = {"correct", "incorrect", "build_error", "runtime_error", "rejected", "timeout",
             "crashed"}


def signature_of(problem: Any, config: RunConfig) -> Signature:
    """The task's signature: the writer's kernels (kind, shape) when it covers the problem,
    else the ops it lacks."""

    try:
        made = plan(problem, config.precision, config.guard)
    except Unsupported as exc:
        return Signature(ops=exc.ops)
    return Signature(ops=[g.kind + (f":{g.values[0].op}" if g.kind == "extern" else "")
                          for g in made.groups],
                     shapes=[list(hint(g.shape)) for g in made.groups],  # the sizes planned
                     cols=[hint(g.cols) if g.kind in {"reduction", "scan"} else 0  # at: a read
                           for g in made.groups])  # of a Size itself would specialise the plan


def recall(config: RunConfig, stage: Stage, signature: Signature, hardware: str
           ) -> list[dict[str, Any]]:
    """The experiences for one round's coders: id, lesson and remembered configurations."""
    m = config.memory
    n, w = (m.n_draft, m.w_draft) if stage == "draft" else (m.n_refine, m.w_refine)
    if not m.enabled or n == 0:
        return []
    query = f"{signature.text()} on {hardware} ({config.backend}), {stage}:"
    found = open_store(m).retrieve(stage, query, n, m.k_factor, w, m.bonus,
                                   hardware if m.same_hardware else None, config.backend,
                                   signature.ops if m.same_op_kinds else None)
    return [{"id": e.id, "lesson": e.lesson, "configs": e.configs, "score": round(s, 3)}
            for e, s in found]


ERROR_CHARS = 400  # of a failure's message kept in its lesson


def lesson_of(c: Candidate, parent: Candidate | None, signature: Signature, hardware: str,
              critic: str = "") -> str:
    """What an attempt teaches a later coder, read on its own: what was tried, on what shape
    class and device, and what it measured against its parent, eager and the SOL floor; for a
    failure, its error. The critic's words are added where they say more than the figures."""
    head = f"{c.stage}: tried {c.change} on {signature.text()}, {hardware}"
    if not c.correct:
        error = " ".join((c.message or c.reason).split())
        text = f"{head}: {c.status}" + (f": {error[:ERROR_CHARS]}" if error else "")
    elif c.runtime_us is None:
        text = f"{head}: correct; not timed on this machine"
    else:
        figures = [f"{c.runtime_us:.1f} us"]
        if parent is not None and parent.runtime_us:
            figures.append(f"{parent.runtime_us / c.runtime_us:.2f}x its parent "
                           f"({parent.runtime_us:.1f} us)")
        if c.eager_us:
            figures.append(f"{c.eager_us / c.runtime_us:.2f}x eager")
        if c.sol_fraction is not None:
            figures.append(f"{c.sol_fraction:.2f} of the SOL floor")
        text = f"{head}: correct, " + ", ".join(figures)
    if critic and not critic.startswith(c.change) and critic not in text:
        text += f". Critic: {critic}"
    return text


def remember(config: RunConfig, problem: str, signature: Signature, hardware: str,
             round_: list[Candidate], best_before_us: float | None, lessons: dict[str, str],
             run_id: str, tree: list[Candidate] | None = None) -> list[str]:
    """Update Q for what each coder saw and store each evaluated candidate; log lines back.
    `tree` (the whole candidate tree) gives each candidate's parent for its lesson."""
    m = config.memory
    if not m.enabled:
        return []
    store = open_store(m)
    by_id = {c.id: c for c in tree or round_}
    log = []
    for c in (c for c in round_ if c.status in EVALUATED):
        stage: Stage = "refine" if c.stage == "refine" else "draft"
        reward = draft_reward(c.status, c.runtime_us, c.eager_us, c.sol_fraction) \
            if stage == "draft" else \
            refine_reward(c.status, best_before_us, c.runtime_us, c.sol_fraction)
        if c.memory:
            qs = store.update_q(c.memory, stage, reward, m.alpha)
            log.append(f"  memory: #{c.id} reward {reward:+.2f} -> {len(qs)} experience(s) "
                       f"updated")
        speedup = best_before_us / c.runtime_us if best_before_us and c.runtime_us else None
        configs = [{"kind": kind, "cols": cols, "config": cfg} for kind, cols, cfg in
                   zip(signature.ops, signature.cols, c.configs, strict=False)]
        store.add(Experience(
            problem=problem, signature=signature, hardware=hardware, backend=config.backend,
            stage=stage, lesson=lesson_of(c, by_id.get(c.parent) if c.parent is not None else None,
                                          signature, hardware, lessons.get(str(c.id), "")),
            code=c.change if c.configs else
            (c.source or "")[:4000], configs=configs if c.correct else [],
            outcome=Outcome(status=c.status, runtime_us=c.runtime_us, speedup=speedup,
                            sol_fraction=c.sol_fraction),
            **{f"q_{stage}": reward},  # a new lesson starts at the value of its own attempt
            run_id=run_id), m.merge_above)
    return log


def node(state: State, runtime: Any) -> dict[str, Any]:
    """The memory node: rewards for this round, Q updates, the round's experiences stored."""
    first = min(t["id"] for t in state["tasks"])
    before = [c.runtime_us for c in state["tree"] if c.id < first and c.correct and c.runtime_us]
    log = remember(run_config(runtime), Path(state["problem_path"]).stem,
                      Signature(**state["signature"]), state["hardware"],
                      [c for c in state["tree"] if c.id >= first], min(before, default=None),
                      state.get("lessons", {}), state.get("run_id", ""), state["tree"])
    return {"log": log}
