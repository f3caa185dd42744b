"""Analyse a problem before writing any kernel: baselines, FLOPs, bytes and the SOL floor.

`analyze(problem)` times eager and torch.compile under the precision policy (GPU only; the
same timing as candidates get, in a fresh spawned process), counts the problem's FLOPs and
bytes at full size, and sets them against the device's peaks. Headroom = compile time over the
floor: how much faster than torch.compile the hardware would allow.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from kernelwright.core.errors import KernelwrightError
from kernelwright.core.problem import Problem
from kernelwright.core.results import Backend, Precision, SolAnalysis, TimingStats

NO_GPU_NOTE = "no GPU: baselines are not timed on the CPU (its timings would not be meaningful)"


class AnalyzeJob(BaseModel):
    problem_path: str
    problem_source: str
    precision: Precision
    device: str  # "cuda" or "cpu"
    backend: Backend = Field("triton", description="cpu: the baselines are timed on the CPU")
    hardware: str | None = Field(None, description="datasheet key to use instead of this device")
    reps: int = 100
    warmup_ms: float = 25.0
    compile_baseline: bool = True


class Analysis(BaseModel):
    """Baselines and floor of one problem on one device under one precision policy."""

    problem: str
    precision: Precision
    device: str
    flops: int
    bytes: int
    sol: SolAnalysis | None = Field(None, description="None for a GPU with no profile")
    eager_us: float | None = None
    compile_us: float | None = None
    eager: TimingStats | None = None
    compiled: TimingStats | None = None
    headroom: float | None = Field(None, description="compile_us / floor_us")
    note: str | None = Field(None, description="why a figure is missing, when one is")
    torch_version: str = ""
    triton_version: str = ""


def analyze(problem: Problem, precision: Precision = "fp32", device: str = "auto",
            hardware: str | None = None, timeout_s: float = 900.0,
            backend: Backend = "triton") -> Analysis:
    """Time the baselines and compute the floor of `problem` in a spawned process."""
    from kernelwright.tools.evaluate import resolve_device
    from kernelwright.tools.process import spawn

    job = AnalyzeJob(problem_path=problem.path, problem_source=problem.source,
                     precision=precision, device=resolve_device(device, backend), hardware=hardware,
                     backend=backend)
    done = spawn("kernelwright.tools.analyze:serve", job.model_dump_json(), timeout_s,
                 "kernelwright-analyze")
    if done.payload is None:
        why = f"ran past {timeout_s:g} s" if done.timed_out else f"died with {done.exit_how}"
        raise KernelwrightError(f"{problem.path}: analysing the reference {why}.\n"
                                f"{done.log_tail}")
    return Analysis.model_validate_json(done.payload)


def serve(job_json: str) -> str:
    """Entry point in the spawned process: JSON job in, JSON analysis out."""
    return run(AnalyzeJob.model_validate_json(job_json)).model_dump_json()


def run(job: AnalyzeJob) -> Analysis:
    import torch
    import triton

    from kernelwright.core.precision import apply_policy
    from kernelwright.hardware.calibrate import resolve_profile
    from kernelwright.hardware.profiles import DATASHEETS
    from kernelwright.tools.sol import count_problem, floor

    apply_policy(job.precision)
    problem = Problem(job.problem_path, job.problem_source)
    module = problem.module()
    counts = count_problem(module, job.precision)
    profile = DATASHEETS[job.hardware] if job.hardware else resolve_profile(job.device)
    sol = floor(counts, profile, job.precision) if profile is not None else None
    analysis = Analysis(
        problem=problem.name, precision=job.precision, flops=counts.flops, bytes=counts.bytes,
        sol=sol, device=torch.cuda.get_device_name() if job.device == "cuda" else "cpu",
        torch_version=torch.__version__, triton_version=triton.__version__,
        note=None if profile else f"no profile for {torch.cuda.get_device_name()}: run "
                                  "`kernelwright hw calibrate` to get a SOL floor")
    if job.device != "cuda" and job.backend != "cpu":  # the interpreter: nothing to time
        analysis.note = NO_GPU_NOTE
        return analysis
    _time_baselines(job, problem, module, analysis)
    return analysis


def _time_baselines(job: AnalyzeJob, problem: Problem, module: Any, analysis: Analysis) -> None:
    import torch

    from kernelwright.core.precision import prepare_inputs, prepare_module
    from kernelwright.tools.timing import cycled_inputs, time_baselines

    device = torch.device(job.device)
    torch.manual_seed(0)
    model = prepare_module(module.Model(*problem.init_inputs(module)), job.precision, device)
    sets = []
    for seed in range(3):
        torch.manual_seed(2000 + seed)
        sets.append(prepare_inputs(list(module.get_inputs()), job.precision, device))

    analysis.eager, analysis.compiled, note = time_baselines(
        model, cycled_inputs(sets), job.reps, job.warmup_ms, job.compile_baseline, job.device)
    analysis.eager_us = analysis.eager.median_us
    analysis.compile_us = analysis.compiled.median_us if analysis.compiled else None
    analysis.note = note or analysis.note
    best = analysis.compile_us or analysis.eager_us
    if analysis.sol is not None and best:
        analysis.headroom = best / analysis.sol.floor_us
