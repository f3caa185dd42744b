"""An experience: what one attempt taught, with one learned value per stage (EvoKernel).

Rewards see speed, not only pass/fail (EvoKernel's +1/-1 is where no timing exists). Two terms
in [-1, 1]: speed s = tanh(log(baseline / latency)), 0 when as fast as the baseline, 0.6 when
twice as fast; floor f = 2 min(SOL fraction, 1) - 1, 0 at half the SOL floor, 1 at it.
- drafting: -1 when the candidate failed guard, build or correctness; when correct,
  0.5 + 0.25 s + 0.25 f against eager (in [0, 1]: a correct kernel 7x slower than eager at 0.05
  of the floor scores about 0, one twice as fast as eager at 0.9 of it 0.85), 0.5 when not timed
  (correct, speed unknown);
- refining: -1 when infeasible; when correct, 0.75 s + 0.25 f against the best before it (the
  same time at half the floor scores 0), s alone without a floor, 0 when not timed.
Each experience that was in a coder's context moves toward that coder's reward:
Q <- Q + alpha (r - Q).
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


def speed_term(baseline_us: float, latency_us: float) -> float:
    return math.tanh(math.log(baseline_us) - math.log(latency_us))


def floor_term(sol_fraction: float) -> float:
    return 2 * min(max(sol_fraction, 0.0), 1.0) - 1


def draft_reward(status: str, latency_us: float | None = None, eager_us: float | None = None,
                 sol_fraction: float | None = None) -> float:
    if status != "correct":
        return -1.0
    if not latency_us or not eager_us:
        return 0.5  # correct; its speed unknown (no timings on this machine)
    f = floor_term(sol_fraction) if sol_fraction is not None else 0.0
    return 0.5 + 0.25 * speed_term(eager_us, latency_us) + 0.25 * f


def refine_reward(status: str, best_before_us: float | None, latency_us: float | None,
                  sol_fraction: float | None = None) -> float:
    if status != "correct":
        return -1.0
    if not best_before_us or not latency_us:
        return 0.0  # nothing to compare with (no timings on this machine)
    s = speed_term(best_before_us, latency_us)
    return s if sol_fraction is None else 0.75 * s + 0.25 * floor_term(sol_fraction)


def q_update(q: float, reward: float, alpha: float) -> float:
    return q + alpha * (reward - q)
