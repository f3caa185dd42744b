"""`optimize()`: the graph run on one problem, tracked in MLflow as the configuration says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kernelwright.config import RunConfig
from kernelwright.core.records import Result
from kernelwright.graph.run import run_graph
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
