"""The planner role: which candidate to expand next, in which stage, with how many coders.

Offline policy: draft until a candidate is correct, then refine a parent chosen from the tree,
best-first (fastest, with a bonus for parents expanded rarely) or UCT.
"""

from __future__ import annotations

import math

from kernelwright.config import RunConfig
from kernelwright.graph.state import Candidate, Task


def offline_plan(tree: list[Candidate], config: RunConfig) -> list[Task]:
    """The next round's tasks: `config.candidates` of them."""
    next_id = max((c.id for c in tree), default=-1) + 1
    timed = [c for c in tree if c.correct and c.runtime_us]
    if not any(c.correct for c in tree):
        return [Task(id=next_id + k, stage="draft", parent=None, index=k)
                for k in range(config.candidates)]
    parent = select(timed or [c for c in tree if c.correct], tree, config)
    return [Task(id=next_id + k, stage="refine", parent=parent.id, index=k)
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
