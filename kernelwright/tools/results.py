"""Settings and results of one candidate evaluation (pydantic, JSON-serialisable)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

Precision = Literal["fp32", "tf32", "bf16", "fp16"]
GuardMode = Literal["strict", "library"]

# Relative tolerance per precision policy: |cand - ref| <= tol * (rms(ref) + |ref|).
TOLERANCE: dict[str, float] = {"fp32": 1e-4, "tf32": 5e-3, "bf16": 2e-2, "fp16": 1e-2}


class Status(StrEnum):
    """Outcome of an evaluation; only `correct` means the candidate may be used."""

    CORRECT = "correct"
    REJECTED = "rejected"  # a static or runtime guard refused it
    BUILD_ERROR = "build_error"  # import, compile or construction failed
    RUNTIME_ERROR = "runtime_error"  # its forward raised
    INCORRECT = "incorrect"  # ran, but outputs differ from the reference
    TIMEOUT = "timeout"  # the worker passed its wall-clock limit and was killed
    CRASHED = "crashed"  # the worker died (segfault, illegal memory access, abort)


class EvalSettings(BaseModel):
    """How to evaluate a candidate. The precision policy applies to reference and candidate alike."""

    precision: Precision = Field("fp32", description="precision policy for both sides")
    guard: GuardMode = Field("strict", description="strict: no torch compute; library: GEMM/conv")
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="cuda needs a GPU; cpu runs Triton through its interpreter"
    )
    trials: int = Field(5, ge=5, description="correctness trials, each with fresh random inputs")
    seed: int = Field(0, description="base seed; trial t uses seed + t")
    tolerance: float | None = Field(None, gt=0, description="override the policy's tolerance")
    timeout_s: float = Field(600.0, gt=0, description="wall-clock limit for the whole worker")
    warmup_ms: float = Field(25.0, ge=0, description="GPU warm-up time before timing")
    reps: int = Field(100, ge=50, description="timed repetitions (median and spread reported)")
    compile_baseline: bool = Field(True, description="also time torch.compile of the reference")
    cpu_max_elements: int = Field(
        1 << 17, gt=0, description="CPU mode: shrink module-level sizes until inputs fit this"
    )
    sequence_checks: int = Field(4, ge=2, description="back-to-back calls re-checked afterwards")

    def tol(self) -> float:
        return self.tolerance if self.tolerance is not None else TOLERANCE[self.precision]


class GuardFinding(BaseModel):
    """One reason a guard refused a candidate."""

    rule: str = Field(description="short code, e.g. torch_compute, try_except, patching")
    message: str
    line: int | None = Field(None, description="line in the candidate source, for static findings")


class TimingStats(BaseModel):
    """GPU timing of one callable: CUDA events, L2 flushed and fresh inputs before each rep."""

    median_us: float
    p20_us: float
    p80_us: float
    min_us: float
    reps: int


class EvalResult(BaseModel):
    """The verdict on one candidate, with every figure needed to trust it."""

    status: Status
    reason: str | None = Field(None, description="short code of the first failure")
    message: str = Field("", description="human-readable explanation of the status")
    problem: str
    guard: GuardMode
    precision: Precision
    device: str = Field("", description="e.g. 'NVIDIA H100 80GB HBM3' or 'cpu (Triton interpreter)'")
    findings: list[GuardFinding] = Field(default_factory=list)
    trials_passed: int = 0
    max_abs_err: float | None = None
    max_rel_err: float | None = Field(None, description="max |cand - ref| / (rms(ref) + |ref|)")
    tolerance: float | None = None
    size_overrides: dict[str, int] = Field(
        default_factory=dict, description="module-level sizes shrunk for CPU mode (name -> value)"
    )
    runtime_us: float | None = None
    eager_us: float | None = None
    compile_us: float | None = None
    speedup_eager: float | None = None
    speedup_compile: float | None = None
    timing: TimingStats | None = None
    timing_note: str | None = Field(None, description="why timings are missing, when they are")
    own_kernel_fraction: float | None = Field(
        None, description="share of GPU kernel time spent in the candidate's own kernels"
    )
    aten_ops: list[str] = Field(default_factory=list, description="aten ops in candidate forward")
    torch_version: str = ""
    triton_version: str = ""
    wall_s: float = 0.0
    log_tail: str = Field("", description="last lines the worker wrote to stderr")

    @property
    def ok(self) -> bool:
        return self.status is Status.CORRECT
