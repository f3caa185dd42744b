"""`run_graph()`: run the graph on one problem and return its best candidate and tree.

What watches a run (MLflow tracking: kernelwright/tracking.py) is an `Observer` handed in by
the caller; the public `kernelwright.optimize` (kernelwright/api.py) hands in the tracker.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernelwright.config import RunConfig
from kernelwright.core.errors import KernelwrightError
from kernelwright.core.records import Candidate, CandidateStatus, Observer, Result, Unobserved


def run_graph(problem: str | Path, config: RunConfig | None = None, *,
              checkpoint: str | Path | None = None, thread_id: str | None = None,
              resume: bool = False,
              progress: Callable[[str], None] = lambda _: None,
              status: Callable[[str], None] = lambda _: None,
              started: Callable[[str], None] | None = None,
              observer: Observer | None = None) -> Result:
    """Optimise the problem file at `problem`. With `checkpoint` (a SQLite file) every step is
    saved under `thread_id`; calling again with the same id resumes where the run stopped
    (with `resume`, an id the checkpoint does not hold is an error rather than a new run).
    `started` gets the thread id before the first step, `progress` each new log line, `status`
    a one-line summary after every step; `observer` sees the start, every step and the end."""
    from kernelwright.graph.graph import build_graph

    config = config or RunConfig()
    observer = observer or Unobserved()
    if resume and (checkpoint is None or thread_id is None):
        raise KernelwrightError("resuming needs a checkpoint file and the run's thread id")
    thread_id = thread_id or uuid.uuid4().hex[:12]
    run_config = {"configurable": {"thread_id": thread_id}, "recursion_limit": 10_000}
    if resume:
        _check_resumable(Path(str(checkpoint)), thread_id)
    if started is not None:
        started(thread_id)
    observer.start(thread_id)
    try:
        if checkpoint is None:
            result = _drive(build_graph(), {"problem_path": str(problem), "run_id": thread_id},
                            config, run_config, thread_id, progress, status, observer)
        else:
            from langgraph.checkpoint.sqlite import SqliteSaver

            with SqliteSaver.from_conn_string(str(checkpoint)) as saver:
                saver.serde = serializer()
                graph = build_graph(saver)
                begun = graph.get_state(run_config).values
                inputs = None if begun else {"problem_path": str(problem), "run_id": thread_id}
                if resume and retry_after_llm_failure(graph, run_config):
                    progress("resume: the run had ended on an LLM failure; retrying from the "
                             "next round")
                result = _drive(graph, inputs, config, run_config, thread_id, progress, status,
                                observer)
    except BaseException as exc:
        observer.fail(exc)
        raise
    result.mlflow_run_id = observer.run_id
    observer.finish(result)
    result.mlflow_run_id = observer.run_id  # None if tracking failed on the way
    return result


def retry_after_llm_failure(graph: Any, run_config: dict[str, Any]) -> bool:
    """Reopen a saved run that ended on an LLM failure, so that resuming it retries: its stop
    is cleared as if the memory node had just finished, and the next round is planned. True when
    it did; a run that ended for any other reason stays ended."""
    saved = graph.get_state(run_config)
    stop = saved.values.get("stop") or ""
    if saved.next or not (saved.values.get("failure") or stop.startswith("LLM failure")):
        return False
    graph.update_state(run_config, {"stop": None, "failure": None}, as_node="remember")
    return True


def serializer() -> Any:
    """The checkpointer's serializer, with the graph's own state types registered, so saved
    runs load without LangGraph's warning (and keep loading once it blocks unknown types)."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    return JsonPlusSerializer(allowed_msgpack_modules=[Candidate, CandidateStatus])


def _check_resumable(checkpoint: Path, thread_id: str) -> None:
    """KernelwrightError naming the file and the ids it holds, unless it holds `thread_id`."""
    import sqlite3

    if not checkpoint.exists():
        raise KernelwrightError(f"{checkpoint}: no such checkpoint file, so there is no run "
                                f"'{thread_id}' to resume. Fix: pass --checkpoint where the run "
                                "was saved, or start a new run without --resume.")
    with sqlite3.connect(checkpoint) as conn:
        try:
            ids = [r[0] for r in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")]
        except sqlite3.DatabaseError:
            ids = []
    if thread_id not in ids:
        known = ", ".join(ids[-8:]) or "none"
        raise KernelwrightError(f"{checkpoint}: no run with thread id '{thread_id}' to resume "
                                f"(it holds: {known}). Fix: use one of those ids, or start a new "
                                "run without --resume.")


def summary(state: dict[str, Any], config: RunConfig) -> str:
    """Round, best time with its speedup and SOL fraction, evaluations and tokens, in one line."""
    tree: list[Candidate] = state.get("tree", [])
    timed = [c for c in tree if c.correct and c.runtime_us]
    best = min(timed, key=lambda c: c.runtime_us or 0.0, default=None)
    if best is not None and best.runtime_us:
        against = best.versus_eager(best.runtime_us)
        speedup = f", {against}" if against else ""
        sol = f", {best.sol_fraction:.2f} of SOL" if best.sol_fraction else ""
        what = f"best #{best.id} {best.runtime_us:.1f} us{speedup}{sol}"
    else:
        correct = [c for c in tree if c.correct]
        what = f"best #{correct[0].id} (correct, not timed)" if correct else "no correct candidate yet"
    evaluated = sum(1 for c in tree if c.evaluated)
    return (f"round {state.get('round', 0)}/{config.iterations} | {what} | {evaluated} evaluated "
            f"| {state.get('tokens', 0)} tokens")


def _drive(graph: Any, inputs: dict[str, Any] | None, config: RunConfig,
           run_config: dict[str, Any], thread_id: str, progress: Callable[[str], None],
           status: Callable[[str], None], observer: Observer) -> Result:
    state: dict[str, Any] = {}
    for update in graph.stream(inputs, run_config, context=config, stream_mode="values"):
        for line in update.get("log", [])[len(state.get("log", [])):]:
            progress(line)
        state = update
        status(summary(state, config))
        observer.step(state)
    return result_of(state, thread_id)


def result_of(state: dict[str, Any], thread_id: str) -> Result:
    """A run's Result from its (last) state."""
    tree = state.get("tree", [])
    best = next((c for c in tree if c.id == state.get("best_id")), None)
    return Result(problem=Path(state.get("problem_path", "")).stem, thread_id=thread_id,
                  best=best, tree=tree, stop=state.get("stop"), tokens=state.get("tokens", 0),
                  seconds=state.get("seconds", 0.0),
                  log=state.get("log", []), size_overrides=state.get("size_overrides", {}),
                  reference=state.get("problem_source", ""))
