"""`optimize()`: the graph run on one problem, tracked in MLflow as the configuration says; and
`server_graph()`, the graph the LangGraph server serves (langgraph.json), tracked alike."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernelwright.config import RunConfig, run_config
from kernelwright.core.records import Result
from kernelwright.graph.graph import build_graph
from kernelwright.graph.run import result_of, run_graph
from kernelwright.tracking import Tracker


def optimize(problem: str | Path, config: RunConfig | None = None, *,
             checkpoint: str | Path | None = None, thread_id: str | None = None,
             resume: bool = False,
             progress: Callable[[str], None] = lambda _: None,
             status: Callable[[str], None] = lambda _: None,
             parent_run_id: str | None = None,
             started: Callable[[str], None] | None = None) -> Result:
    """Optimise the problem file at `problem` (graph/run.py's `run_graph`: checkpoints,
    resuming, progress) and track the run in MLflow (config.tracking), nested under
    `parent_run_id` when given."""
    config = config or RunConfig()
    tracker = Tracker(config, Path(problem).stem, parent_run_id=parent_run_id, say=progress)
    return run_graph(problem, config, checkpoint=checkpoint, thread_id=thread_id, resume=resume,
                     progress=progress, status=status, started=started, observer=tracker)


class ServedConfig(RunConfig):
    """RunConfig as the LangGraph server publishes it. The server drops every context key that
    its schema's `properties` do not list, so a misspelt setting would be ignored without a
    word; published without them, the context reaches RunConfig whole, which refuses an
    unknown key by name (the settings are listed in the schema's description instead)."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        schema = super().model_json_schema(*args, **kwargs)
        names = ", ".join(schema.pop("properties", {}))
        schema.pop("additionalProperties", None)
        return {**schema, "description": f"kernelwright's run settings: {names} (RunConfig)"}


def track(state: Any, runtime: Any) -> dict[str, Any]:
    """The served graph's `observe` node: the ended round, and at the end the result, into the
    thread's MLflow run (found again by its thread id each time, as a resumed CLI run is)."""
    from langgraph.config import get_config

    config = run_config(runtime)
    if not config.tracking.enabled or not state.get("problem_path"):
        return {}
    thread_id = str(get_config().get("configurable", {}).get("thread_id", "server"))
    tracker = Tracker(config, Path(state["problem_path"]).stem, say=logging.getLogger(__name__).info)
    tracker.start(thread_id)
    tracker.round_ended(state)
    if state.get("stop"):
        tracker.finish(result_of(state, thread_id))
    return {}


def server_graph() -> Any:
    """The graph langgraph.json serves (the server persists threads itself), tracked in
    MLflow like a CLI run, with unknown context settings refused."""
    return build_graph(context_schema=ServedConfig, observe=track)
