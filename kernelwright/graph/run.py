"""`optimize()`: run the graph on one problem and return its best candidate and tree."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kernelwright.config import RunConfig
from kernelwright.graph.state import Candidate


class Result(BaseModel):
    """What a run found."""

    problem: str
    thread_id: str
    best: Candidate | None = Field(None, description="the fastest correct candidate")
    tree: list[Candidate]
    stop: str | None
    tokens: int = Field(0, description="LLM tokens spent")
    seconds: float = Field(0.0, description="time spent coding and evaluating")
    log: list[str]


def optimize(problem: str | Path, config: RunConfig | None = None, *,
             checkpoint: str | Path | None = None, thread_id: str | None = None,
             progress: Callable[[str], None] = lambda _: None,
             status: Callable[[str], None] = lambda _: None) -> Result:
    """Optimise the problem file at `problem`. With `checkpoint` (a SQLite file) every step is
    saved under `thread_id`; calling again with the same id resumes where the run stopped.
    `progress` gets each new log line, `status` a one-line summary after every step."""
    from kernelwright.graph.graph import build_graph

    config = config or RunConfig()
    thread_id = thread_id or uuid.uuid4().hex[:12]
    run_config = {"configurable": {"thread_id": thread_id}, "recursion_limit": 10_000}
    if checkpoint is None:
        return _drive(build_graph(), {"problem_path": str(problem), "run_id": thread_id}, config,
                      run_config, thread_id, progress, status)
    from langgraph.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(checkpoint)) as saver:
        graph = build_graph(saver)
        started = graph.get_state(run_config).values
        inputs = None if started else {"problem_path": str(problem), "run_id": thread_id}
        return _drive(graph, inputs, config, run_config, thread_id, progress, status)


def summary(state: dict[str, Any], config: RunConfig) -> str:
    """Round, best time with its speedup and SOL fraction, evaluations and tokens, in one line."""
    tree: list[Candidate] = state.get("tree", [])
    timed = [c for c in tree if c.correct and c.runtime_us]
    best = min(timed, key=lambda c: c.runtime_us or 0.0, default=None)
    if best is not None and best.runtime_us:
        speedup = f", {best.eager_us / best.runtime_us:.2f}x eager" if best.eager_us else ""
        sol = f", {best.sol_fraction:.2f} of SOL" if best.sol_fraction else ""
        what = f"best #{best.id} {best.runtime_us:.1f} us{speedup}{sol}"
    else:
        correct = [c for c in tree if c.correct]
        what = f"best #{correct[0].id} (correct, not timed)" if correct else "no correct candidate yet"
    evaluated = sum(1 for c in tree if c.status not in {"pending", "uncovered", "exhausted"})
    return (f"round {state.get('round', 0)}/{config.iterations} | {what} | {evaluated} evaluated "
            f"| {state.get('tokens', 0)} tokens")


def _drive(graph: Any, inputs: dict[str, Any] | None, config: RunConfig,
           run_config: dict[str, Any], thread_id: str, progress: Callable[[str], None],
           status: Callable[[str], None]) -> Result:
    state: dict[str, Any] = {}
    for update in graph.stream(inputs, run_config, context=config, stream_mode="values"):
        for line in update.get("log", [])[len(state.get("log", [])):]:
            progress(line)
        state = update
        status(summary(state, config))
    tree = state.get("tree", [])
    best = next((c for c in tree if c.id == state.get("best_id")), None)
    return Result(problem=Path(state.get("problem_path", "")).stem, thread_id=thread_id,
                  best=best, tree=tree, stop=state.get("stop"), tokens=state.get("tokens", 0),
                  seconds=state.get("seconds", 0.0),
                  log=state.get("log", []))
