"""The records of a run: the candidate tree, a coder's task, the graph's state and the run's
result.

Nodes return partial updates of `State`. The tree is merged by candidate id, so candidates coded
in parallel (the fan-out) and later updates of one candidate (its evaluation) both land in place.
"""

from __future__ import annotations

import operator
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol, TypedDict

from pydantic import BaseModel, Field

from kernelwright.core.problem import Problem
from kernelwright.core.results import Figures, Status


class CandidateStatus(StrEnum):
    """Where a candidate stands: waiting for its evaluation, the evaluation's `Status`, or why
    no source was written (the writer lacks ops, has no untried idea, or its model failed)."""

    PENDING = "pending"
    CORRECT = Status.CORRECT.value
    REJECTED = Status.REJECTED.value
    BUILD_ERROR = Status.BUILD_ERROR.value
    RUNTIME_ERROR = Status.RUNTIME_ERROR.value
    INCORRECT = Status.INCORRECT.value
    TIMEOUT = Status.TIMEOUT.value
    CRASHED = Status.CRASHED.value
    PROBLEM_ERROR = Status.PROBLEM_ERROR.value
    TOO_LARGE = Status.TOO_LARGE.value
    UNCOVERED = "uncovered"
    EXHAUSTED = "exhausted"
    LLM_ERROR = "llm_error"


NOT_EVALUATED = {CandidateStatus.PENDING, CandidateStatus.UNCOVERED, CandidateStatus.EXHAUSTED}
FIXABLE = {CandidateStatus.BUILD_ERROR, CandidateStatus.RUNTIME_ERROR, CandidateStatus.INCORRECT}


class Candidate(Figures):
    """One node of the candidate tree."""

    id: int
    parent: int | None = None
    stage: Literal["draft", "refine", "fix"]
    change: str = Field(description="what this candidate tries, in words")
    source: str | None = None
    configs: list[dict[str, Any]] = Field(default_factory=list, description="offline launch configs")
    status: CandidateStatus = CandidateStatus.PENDING
    reason: str = ""
    message: str = ""
    runtime_us: float | None = None
    fixes: int = Field(0, description="repairs made along this candidate's fix chain")
    facts: str = Field("", description="the harness's measurements, in one line")
    diagnosis: str = Field("", description="the profiler's reading, for the next refinement")
    round: int = Field(0, description="the round it was written in")
    lesson: str = Field("", description="the critic's lesson of it")
    memory: list[str] = Field(default_factory=list, description="experiences in its coder's context")

    @property
    def correct(self) -> bool:
        return self.status == CandidateStatus.CORRECT

    @property
    def evaluated(self) -> bool:
        """The harness (or the coder's model) gave it an outcome: what runs count as attempts."""
        return self.status not in NOT_EVALUATED


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
    mlflow_run_id: str | None = Field(None, description="where the run is tracked, if it is")
    reference: str = Field("", description="the problem's source: the reference module")
    size_overrides: dict[str, int] = Field(
        default_factory=dict, description="module-level sizes shrunk where there is no GPU "
        "(name -> value): the candidates were checked at these sizes, not the file's")


class Observer(Protocol):
    """What watches a run (the MLflow tracker): told of its start, each step's state and its
    end; `run_id` names where it recorded the run (None: nowhere)."""

    run_id: str | None

    def start(self, thread_id: str) -> None: ...

    def step(self, state: dict[str, Any]) -> None: ...

    def finish(self, result: Result) -> None: ...

    def fail(self, error: BaseException) -> None: ...


class Unobserved:
    """The observer of a run nobody watches."""

    run_id: str | None = None

    def start(self, thread_id: str) -> None:
        pass

    def step(self, state: dict[str, Any]) -> None:
        pass

    def finish(self, result: Result) -> None:
        pass

    def fail(self, error: BaseException) -> None:
        pass


def problem_of(state: State) -> Problem:
    """The run's problem, as the analyze node loaded (and, on the CPU, shrank) it."""
    return Problem(state["problem_path"], state["problem_source"], state["size_overrides"])
