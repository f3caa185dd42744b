"""The planner role: which candidate to expand next, in which stage, with which strategy.

Both policies draft until a candidate is correct, then refine a parent from the tree.
Offline policy: the parent is chosen best-first (fastest, with a bonus for parents expanded
rarely) or by UCT; each coder takes its next idea in turn. LLM policy: the role's model reads
the tree and answers a PlanChoice (parent and strategy); a parent that is not a correct
candidate is replaced by the offline choice, and the log says so.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from kernelwright.agents.critic import lesson
from kernelwright.agents.llm import LLMError, ask, prompt
from kernelwright.config import RunConfig, run_config
from kernelwright.core.records import Candidate, State, Task
from kernelwright.memory.experience import Signature
from kernelwright.memory.learn import recall


class PlanChoice(BaseModel):
    """The planner model's structured reply."""

    parent: int | None = Field(description="id of the correct candidate to refine; null to draft")
    strategy: str = Field(description="what the coders should try next, in one sentence")


def offline_plan(tree: list[Candidate], config: RunConfig) -> list[Task]:
    """The next round's tasks: `config.candidates` of them."""
    correct = [c for c in tree if c.correct]
    if not correct:
        return tasks(tree, config, None, "")
    timed = [c for c in correct if c.runtime_us]
    return tasks(tree, config, select(timed or correct, tree, config).id, "")


def llm_plan(tree: list[Candidate], config: RunConfig, problem: str) -> tuple[list[Task], int, str]:
    """(tasks, tokens, note) from the planner's model; raises LLMError."""

    rows = "\n".join(f"- #{c.id} (parent {c.parent if c.parent is not None else '-'}, "
                     f"{c.stage}): {lesson(c)}" for c in tree) or "- (empty: nothing tried yet)"
    reply = ask(config.planner, prompt("planner", problem=problem, tree=rows,
                                       candidates=config.candidates), schema=PlanChoice)
    choice: PlanChoice = reply.parsed
    correct = [c for c in tree if c.correct]
    note = ""
    parent = choice.parent
    if not correct:
        parent = None
    elif parent not in {c.id for c in correct}:
        fallback = select([c for c in correct if c.runtime_us] or correct, tree, config)
        note = f"planner chose #{parent}, not a correct candidate: refining #{fallback.id}"
        parent = fallback.id
    return tasks(tree, config, parent, choice.strategy), reply.tokens, note


def tasks(tree: list[Candidate], config: RunConfig, parent: int | None, strategy: str) -> list[Task]:
    next_id = max((c.id for c in tree), default=-1) + 1
    stage: Literal["draft", "refine"] = "draft" if parent is None else "refine"
    return [Task(id=next_id + k, stage=stage, parent=parent, index=k, strategy=strategy, memory=[])
            for k in range(config.candidates)]


def select(options: list[Candidate], tree: list[Candidate], config: RunConfig) -> Candidate:
    """The parent to expand: best-first with an exploration bonus, or UCT."""
    children = {c.id: sum(1 for x in tree if x.parent == c.id) for c in options}
    if not any(c.runtime_us for c in options):
        return min(options, key=lambda c: (children[c.id], c.id))
    best = min(c.runtime_us or math.inf for c in options)
    total = sum(children.values()) + 1

    def score(c: Candidate) -> float:
        value = best / (c.runtime_us or math.inf)
        if config.selection == "uct":
            return value + config.exploration * math.sqrt(math.log(total + 1) / (children[c.id] + 1))
        return value + config.exploration / math.sqrt(children[c.id] + 1)

    return max(options, key=score)


def node(state: State, runtime: Any) -> dict[str, Any]:
    """The planner: the parent to expand, the stage and the strategy of this round's coders."""

    cfg = run_config(runtime)
    log, tokens = [], 0
    if cfg.planner.policy == "llm":
        try:
            tasks, tokens, note = llm_plan(state["tree"], cfg, Path(state["problem_path"]).stem)
        except LLMError as exc:
            failure = exc.outcome("planner")
            return {"tasks": [], "failure": failure, "stop": failure, "tokens": exc.tokens,
                    "log": [f"stop: {failure}"]}
        log += [f"  planner: {note}"] if note else []
    else:
        tasks = offline_plan(state["tree"], cfg)
    recalled = recall(cfg, tasks[0]["stage"], Signature(**state["signature"]), state["hardware"])
    for t in tasks:
        t["memory"] = recalled
    log += [f"  recalled: {len(recalled)} experience(s)"] if recalled else []
    what = f"{tasks[0]['stage']} x{len(tasks)}" + (
        f" from #{tasks[0]['parent']}" if tasks[0]["parent"] is not None else "") + (
        f": {tasks[0]['strategy']}" if tasks[0]["strategy"] else "")
    return {"tasks": tasks, "round": state["round"] + 1, "tokens": tokens,
            "log": [f"round {state['round'] + 1}: plan {what}"] + log}
