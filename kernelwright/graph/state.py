"""The run's state: the problem, the device and the tree of candidates.

Nodes return partial updates. The tree is merged by candidate id, so candidates coded in
parallel (the fan-out) and later updates of one candidate (its evaluation) both land in place.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, Field


class Candidate(BaseModel):
    """One node of the candidate tree."""

    id: int
    parent: int | None = None
    stage: Literal["draft", "refine", "fix"]
    change: str = Field(description="what this candidate tries, in words")
    source: str | None = None
    configs: list[dict[str, Any]] = Field(default_factory=list, description="offline launch configs")
    status: str = "pending"  # pending, or an evaluation status (correct, build_error, ...)
    reason: str = ""
    message: str = ""
    runtime_us: float | None = None
    eager_us: float | None = Field(None, description="the reference in eager mode, same harness")
    compile_us: float | None = Field(None, description="torch.compile of the reference (timed once)")
    sol_fraction: float | None = None
    fixes: int = Field(0, description="repairs made along this candidate's fix chain")
    facts: str = Field("", description="the harness's measurements, in one line")
    diagnosis: str = Field("", description="the profiler's reading, for the next refinement")
    memory: list[str] = Field(default_factory=list, description="experiences in its coder's context")

    @property
    def correct(self) -> bool:
        return self.status == "correct"


def merge_tree(old: list[Candidate], new: list[Candidate]) -> list[Candidate]:
    by_id = {c.id: c for c in old}
    for c in new:
        by_id[c.id] = c
    return sorted(by_id.values(), key=lambda c: c.id)


class Task(TypedDict):
    """What the planner asks one coder to write."""

    id: int
    stage: Literal["draft", "refine"]
    parent: int | None
    index: int  # the coder's index-th idea for this parent
    strategy: str  # the planner's strategy ("" for the offline planner: each coder its own idea)
    memory: list[dict[str, Any]]  # recalled experiences: id, lesson, configs, score


class Inputs(TypedDict, total=False):
    """What a client sends: the problem as a path (on the machine running the graph) or as
    source text with a name; per-run settings go in the context (RunConfig)."""

    problem_path: str
    problem_source: str
    problem_name: str
    run_id: str


class Outputs(TypedDict, total=False):
    """What a run returns: the best candidate (source and figures) and the run's summary."""

    problem_path: str
    best: Candidate | None
    best_id: int | None
    tree: list[Candidate]
    stop: str | None
    round: int
    tokens: int
    seconds: float
    log: list[str]


class State(TypedDict, total=False):
    problem_path: str
    problem_name: str
    run_id: str
    signature: dict[str, Any]  # memory/experience.Signature of the task
    hardware: str
    problem_source: str
    size_overrides: dict[str, int]  # the CPU's smaller sizes where there is no GPU
    device: Literal["cuda", "cpu"]
    tree: Annotated[list[Candidate], merge_tree]
    tasks: list[Task]
    task: Task  # a coder's own task (in its Send payload only)
    evaluating: int  # the candidate an evaluate task evaluates (in its Send payload only)
    round: int
    stale_rounds: int  # rounds without a better candidate
    best_id: int | None
    best: Candidate | None  # the fastest correct candidate (its source and figures)
    lessons: dict[str, str]  # the critic's lesson of each candidate (by str(id)) of the last round
    stop: str | None  # why the run ended
    failure: str | None  # an LLM failure of the planner or profiler: the run ends, tree kept
    tokens: Annotated[int, operator.add]  # LLM tokens spent
    seconds: Annotated[float, operator.add]  # time spent coding and evaluating
    log: Annotated[list[str], operator.add]
