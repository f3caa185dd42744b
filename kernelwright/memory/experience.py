"""An experience: what one attempt taught, with one learned value per stage (EvoKernel).

Rewards: drafting +1 when the candidate passed guard, build and correctness, -1 otherwise;
refining -1 when infeasible, else tanh(log(best_before) - log(latency)), so matching the best
scores 0 and halving its time scores tanh(log 2) = 0.6. Each experience that was in a coder's
context moves toward that coder's reward: Q <- Q + alpha (r - Q).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Stage = Literal["draft", "refine"]


class Signature(BaseModel):
    """What the task was: the kinds of kernels it needed and their shapes."""

    ops: list[str] = Field(description="kernel kinds, e.g. reduction, pointwise, extern:mm")
    shapes: list[list[int]] = Field(default_factory=list)
    cols: list[int] = Field(default_factory=list, description="reduced elements per row, per kernel")
    dtype: str = "float32"

    def text(self) -> str:
        shapes = ", ".join("x".join(map(str, s)) for s in self.shapes)
        return f"{' + '.join(self.ops)} over {shapes} ({self.dtype})"


class Outcome(BaseModel):
    status: str
    runtime_us: float | None = None
    speedup: float | None = Field(None, description="over the best before it (refine) or eager")
    sol_fraction: float | None = None


class Experience(BaseModel):
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    problem: str
    signature: Signature
    hardware: str
    backend: str
    stage: Stage
    lesson: str
    code: str = Field("", description="the candidate's source, or the change it made")
    configs: list[dict[str, Any]] = Field(
        default_factory=list, description="offline policy: per kernel kind, cols and config")
    outcome: Outcome
    q_draft: float = 0.0
    q_refine: float = 0.0
    visits_draft: int = 0
    visits_refine: int = 0
    run_id: str = ""
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def text(self) -> str:
        """What is embedded: the task, the stage and the lesson."""
        return f"{self.signature.text()} on {self.hardware} ({self.backend}), {self.stage}: " \
               f"{self.lesson}"


def draft_reward(status: str) -> float:
    return 1.0 if status == "correct" else -1.0


def refine_reward(status: str, best_before_us: float | None, latency_us: float | None) -> float:
    if status != "correct" or not latency_us:
        return -1.0
    if not best_before_us:
        return 0.0  # nothing to compare with (no timings on this machine)
    return math.tanh(math.log(best_before_us) - math.log(latency_us))


def q_update(q: float, reward: float, alpha: float) -> float:
    return q + alpha * (reward - q)
