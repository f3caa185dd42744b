"""Settings and results of one candidate evaluation (pydantic, JSON-serialisable)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

Precision = Literal["fp32", "tf32", "bf16", "fp16"]
GuardMode = Literal["strict", "library"]
Backend = Literal["triton", "cuda", "cpu"]  # see kernelwright/hardware/backends.py

# Where there is no GPU, a problem's module-level sizes shrink until its inputs hold at most this
# many elements: one rule for eval, run, bench and the server (the Triton interpreter costs about
# a microsecond an element; the cpu backend's compiled C++ gets sizes that time in milliseconds).
CPU_MAX_ELEMENTS = 1 << 14
CPU_BACKEND_MAX_ELEMENTS = 1 << 20

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
    PROBLEM_ERROR = "problem_error"  # the reference itself failed: the problem's fault, not the candidate's
    TOO_LARGE = "too_large"  # one forward of the problem does not fit in the device's free memory


class Rule(StrEnum):
    """What a guard finding says the candidate did; the static guard (tools/guard.py) and the
    runtime guard (tools/runtime_guard.py) name their refusals from this one list."""

    THREADS = "threads"  # a thread or an async task
    SUBPROCESS = "subprocess"  # a process, a signal, or a resource limit
    NETWORK = "network"  # a socket or a network client
    NATIVE_ACCESS = "native_access"  # ctypes, cffi or dlopen: memory and code the guards cannot see
    INTROSPECTION = "introspection"  # reading or rewriting the interpreter: frames, globals, code objects
    FILE_ACCESS = "file_access"  # reading or writing files
    TIMERS = "timers"  # reading clocks (a timing forgery's first step)
    HOST_COMPUTE = "host_compute"  # computing on the host (numpy, .cpu(), .tolist())
    TORCH_COMPUTE = "torch_compute"  # torch doing the work instead of the candidate's kernels
    DYNAMIC_CODE = "dynamic_code"  # eval, exec, compile or __import__
    PATCHING = "patching"  # assigning to or deleting attributes of modules and objects it does not own
    TENSOR_SUBCLASS = "tensor_subclass"  # a tensor subclass (a fake output)
    TRY_EXCEPT = "try_except"  # try/except, which can hide a fallback
    SIDE_STREAM = "side_stream"  # work on a side CUDA stream, outside the timed one
    PRECISION_DOWNGRADE = "precision_downgrade"  # computing below the precision policy
    NO_MODEL_NEW = "no_model_new"  # no ModelNew class with a forward
    NO_KERNEL = "no_kernel"  # no kernel of its own launched
    WRONG_BACKEND = "wrong_backend"  # kernels built for another backend
    SYNTAX_ERROR = "syntax_error"  # source that does not parse
    GLOBAL_STATE = "global_state"  # numeric settings changed for the process
    INPUT_MUTATION = "input_mutation"  # inputs written by the forward


class EvalSettings(BaseModel):
    """How to evaluate a candidate. The precision policy applies to reference and candidate alike."""

    precision: Precision = Field("fp32", description="precision policy for both sides")
    guard: GuardMode = Field("strict", description="strict: no torch compute; library: GEMM/conv")
    backend: Backend = Field("triton", description="what the candidate is written in")
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
        CPU_MAX_ELEMENTS, gt=0, description="Triton interpreter: shrink module-level sizes "
        "until the inputs hold this many elements"
    )
    cpu_backend_max_elements: int = Field(
        CPU_BACKEND_MAX_ELEMENTS, gt=0, description="cpu backend: shrink module-level sizes "
        "until the inputs hold this many elements"
    )
    sequence_checks: int = Field(4, ge=2, description="back-to-back calls re-checked afterwards")
    cpu_reps: int = Field(8, ge=2, description="CPU: repeated calls on fresh inputs, each checked "
                          "like a timed rep (times discarded: the interpreter cannot time)")
    sandbox: bool = Field(True, description="confine the worker (tools/sandbox.py)")
    audit_hook: bool = Field(True, description="refuse file, process, network and native access "
                             "in the candidate's process (off only to test the sandbox beneath)")
    memory_limit_mb: int | None = Field(
        None, gt=0, description="resident memory of the worker; default half of this machine's")
    file_limit_mb: int = Field(4096, gt=0, description="largest file a worker may write")
    disk_limit_mb: int = Field(8192, gt=0, description="all a worker's files together, its "
                               "compile caches included")
    gpu: str | None = Field(None, description="the one GPU the worker sees (CUDA_VISIBLE_DEVICES); "
                            "default: whatever the caller sees")
    timing_lock: str | None = Field(None, description="a file locked while this worker times "
                                    "(workers sharing a GPU then build in parallel, time in turn)")

    def tol(self) -> float:
        return self.tolerance if self.tolerance is not None else TOLERANCE[self.precision]


class GuardFinding(BaseModel):
    """One reason a guard refused a candidate."""

    rule: Rule = Field(description="what the candidate did, e.g. torch_compute, try_except")
    message: str
    line: int | None = Field(None, description="line in the candidate source, for static findings")


class TimingStats(BaseModel):
    """GPU timing of one callable: CUDA events, L2 flushed and fresh inputs before each rep."""

    median_us: float
    p20_us: float
    p80_us: float
    min_us: float
    reps: int
    total_us: float = Field(0.0, description="sum of all reps (the judge holds it against its clock)")
    times_us: list[float] = Field(default_factory=list, exclude=True,
                                  description="every rep, in order (not serialised with results)")

    def speedup_over(self, baseline: TimingStats) -> float | None:
        """baseline / this, where the two are told apart: their p20-p80 spreads do not
        overlap. None when they do (the difference is within the noise: no measurable
        difference, whichever median is lower)."""
        if self.p80_us < baseline.p20_us or baseline.p80_us < self.p20_us:
            return baseline.median_us / self.median_us
        return None

    @property
    def spread(self) -> str:
        """The middle 60% of the reps, in words."""
        return f"{self.median_us:.4g} us (p20-p80 {self.p20_us:.4g}-{self.p80_us:.4g})"


class SolAnalysis(BaseModel):
    """The floor of one problem on one device under one precision policy."""

    flops: int
    tensor_flops: int
    vector_flops: int
    bytes: int
    profile: str = Field(description="device profile used, e.g. 'h100-sxm'")
    calibrated: bool
    precision: Precision
    tensor_peak_tflops: float = Field(description="rate charged for matmul-class FLOPs")
    tensor_peak_kind: str = Field("", description="what that rate is: under fp32 the faster of "
                                  "the FP32 FMA rate and 3xTF32's; else the policy's tensor rate")
    vector_peak_tflops: float = Field(description="rate charged for pointwise/reduction FLOPs")
    bandwidth_gbps: float
    compute_floor_us: float
    memory_floor_us: float
    floor_us: float
    bound: Literal["memory", "compute"]
    uncounted_ops: list[str] = Field(default_factory=list)
    min_launches: int = Field(1, description="one per matmul-class op, else 1: all else fuses")


class KernelStat(BaseModel):
    """One GPU kernel seen by the profiler during one call of the candidate."""

    name: str
    calls: int
    total_us: float
    own: bool = Field(description="the candidate's own kernel, not a library one")


class ProfileReport(BaseModel):
    """What ran on the GPU in one call, the rates it reached and a one-line diagnosis."""

    kernels: list[KernelStat] = Field(default_factory=list, description="longest first")
    gpu_time_us: float = Field(0.0, description="sum of kernel durations in one call")
    launches: int = 0
    own_kernel_fraction: float | None = Field(None, description="coverage: own kernels' share")
    side_streams: list[str] = Field(default_factory=list, description="kernels off the stream")
    achieved_gbps: float | None = Field(None, description="SOL bytes over the measured time")
    achieved_tflops: float | None = Field(None, description="SOL FLOPs over the measured time")
    bandwidth_fraction: float | None = Field(None, description="achieved over peak bandwidth")
    compute_fraction: float | None = Field(None, description="achieved over the charged peak")
    diagnosis: str = ""


class Figures(BaseModel):
    """The speed figures every report shows for a kernel: its baselines and where it stands
    against them and against the SOL floor. None: not measured (no GPU), never invented."""

    eager_us: float | None = Field(None, description="the reference in eager mode, same harness")
    compile_us: float | None = Field(None, description="torch.compile of the reference")
    speedup_eager: float | None = Field(None, description="eager_us / the kernel's time")
    speedup_compile: float | None = Field(None, description="compile_us / the kernel's time")
    sol_fraction: float | None = Field(None, description="floor / runtime; 1.0 is the SOL")
    within_noise: bool = Field(False, description="the kernel's and eager's times cannot be told "
                               "apart (their p20-p80 spreads overlap): no speedup is claimed")

    def versus_eager(self, runtime_us: float | None) -> str:
        """The kernel against eager in words: a speedup, a plain "slower", or no difference."""
        if self.within_noise:
            return "no measurable difference from eager"
        if not runtime_us or not self.eager_us:
            return ""
        ratio = self.eager_us / runtime_us
        return f"{ratio:.2f}x eager" if ratio >= 1 else f"slower than eager ({ratio:.2f}x)"


class EvalResult(Figures):
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
    exact_error: float | None = Field(None, description="accuracy parity: the candidate's "
                                      "norm-wise error against the reference evaluated in float64 "
                                      "(||cand - exact|| / ||exact||, worst output and trial)")
    reference_exact_error: float | None = Field(None, description="the eager reference's own "
                                                "error against that float64 evaluation")
    parity_factor: float | None = Field(None, description="the most exact_error may be, in units "
                                        "of reference_exact_error (floored at the dtype's epsilon)")
    parity_note: str | None = Field(None, description="why parity was not measured, when not")
    size_overrides: dict[str, int] = Field(
        default_factory=dict, description="module-level sizes shrunk for CPU mode (name -> value)"
    )
    runtime_us: float | None = None
    timing: TimingStats | None = None
    eager_timing: TimingStats | None = Field(None, description="the eager reference's reps, "
                                             "timed like the candidate's")
    timing_note: str | None = Field(None, description="why timings are missing, when they are")
    own_kernel_fraction: float | None = Field(
        None, description="share of GPU kernel time spent in the candidate's own kernels"
    )
    aten_ops: list[str] = Field(default_factory=list, description="aten ops in candidate forward")
    sol: SolAnalysis | None = Field(None, description="the problem's floor on this device")
    faster_than_sol: bool = Field(False, description="runtime < 0.95 x floor: a bug or a cheat "
                                  "(refused: status rejected, reason implausible_time)")
    timed_reps_checked: int = Field(0, description="timed reps whose outputs the judge checked "
                                    "against the reference's (each on fresh input contents)")
    footprint_bytes: int | None = Field(None, description="the problem's own footprint: inputs, "
                                        "parameters and outputs of one forward")
    peak_memory_bytes: int | None = Field(None, description="peak device memory of the "
                                          "candidate's process (GPU: allocated by torch; CPU: "
                                          "resident set), as that process reports it")
    judge_peak_memory_bytes: int | None = Field(None, description="the same for the judge")
    timing_wall_s: float | None = Field(None, description="the judge's own clock around the "
                                        "candidate's timed reps (their reported sum must fit in it)")
    profile: ProfileReport | None = None
    torch_version: str = ""
    triton_version: str = ""
    wall_s: float = 0.0
    log_tail: str = Field("", description="last lines the worker wrote to stderr")
    sandbox: list[str] = Field(default_factory=list, description="confinements in force")

    @property
    def ok(self) -> bool:
        return self.status is Status.CORRECT
