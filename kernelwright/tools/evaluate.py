"""The harness's one entry point: `evaluate(problem, candidate_source, settings) -> EvalResult`.

The static guard runs here; everything that executes candidate code runs in a spawned worker
with a wall-clock limit. A crash, hang, segfault or illegal memory access gives a result with
a status and a reason, never an exception or a hang in the caller. Every evaluation gets a fresh
process, so a GPU context that saw a fault is never reused.
"""

from __future__ import annotations

import time
from pathlib import Path

from kernelwright.core.errors import KernelwrightError
from kernelwright.core.problem import Problem, load_problem
from kernelwright.core.results import Backend, EvalResult, EvalSettings, Rule, Status
from kernelwright.hardware.backends import Device, get_backend
from kernelwright.tools.guard import check_source
from kernelwright.tools.process import Sandbox, spawn
from kernelwright.tools.sandbox import Limits
from kernelwright.tools.worker import WorkerJob


def evaluate(problem: Problem | str | Path, candidate_source: str,
             settings: EvalSettings | None = None) -> EvalResult:
    """Guard, build, check and (on a GPU) time one candidate against its reference."""
    settings = settings or EvalSettings()
    if not isinstance(problem, Problem):
        problem = load_problem(problem)
    started = time.perf_counter()
    base = EvalResult(status=Status.REJECTED, problem=problem.name, guard=settings.guard,
                      precision=settings.precision, tolerance=settings.tol())
    findings = check_source(candidate_source, settings.guard, settings.precision, problem.name,
                            settings.backend)
    if findings:
        syntax = findings[0].rule == Rule.SYNTAX_ERROR
        return base.model_copy(update=dict(
            status=Status.BUILD_ERROR if syntax else Status.REJECTED, reason=findings[0].rule,
            message="; ".join(f"line {f.line}: {f.message}" for f in findings[:6]),
            findings=findings, wall_s=time.perf_counter() - started))
    device = resolve_device(settings.device, settings.backend)
    if device == "cpu" and not problem.size_overrides:
        problem = problem.shrink(get_backend(settings.backend).cpu_elements(
            settings.cpu_max_elements, settings.cpu_backend_max_elements))
    box = sandbox_for(settings, cuda=device == "cuda")
    second = problem.second_size() if device == "cpu" else None
    job = WorkerJob(problem_path=problem.path, problem_source=problem.source,
                    size_overrides=problem.size_overrides, candidate_source=candidate_source,
                    second_sizes=second.size_overrides if second else None,
                    settings=settings, device=device, limits=box.limits if box else None,
                    cuda_confinement=box.cuda if box else False)
    result = run_worker(job, base)
    result.wall_s = time.perf_counter() - started
    return result


def resolve_device(choice: str, backend: Backend = "triton") -> Device:
    """The device the backend runs on; KernelwrightError (with the fix) when it cannot."""
    import torch

    if choice not in {"auto", "cuda", "cpu"}:
        raise KernelwrightError(f"unknown device '{choice}'. Fix: use auto, cuda or cpu.")
    return get_backend(backend).device(choice, torch.cuda.is_available())  # type: ignore[arg-type]


def run_worker(job: WorkerJob, base: EvalResult) -> EvalResult:
    """Run the job in a fresh judge process (which starts the candidate's, confined); map the
    judge's own death or timeout to results. Only the judge's answer is a verdict."""
    budget = job.settings.timeout_s * 2 + 300  # the candidate's limit, then reference and baselines
    done = spawn("kernelwright.tools.worker:serve", job.model_dump_json(), budget,
                 "kernelwright-judge", None, gpu=job.settings.gpu)
    if done.payload is not None:
        result = EvalResult.model_validate_json(done.payload)
        return result if result.log_tail else result.model_copy(update=dict(log_tail=done.log_tail))
    base = base.model_copy(update=dict(log_tail=done.log_tail))
    if done.timed_out:
        return base.model_copy(update=dict(
            status=Status.TIMEOUT, reason="timeout",
            message=f"the evaluation ran past {budget:g} s (the candidate's {job.settings.timeout_s:g}"
                    " s, the reference and the baselines) and was stopped"))
    return base.model_copy(update=dict(
        status=Status.CRASHED, reason="judge_died",
        message=f"the judge process died with {done.exit_how} (the reference or the harness "
                "failed, not the candidate's code, which runs in a process of its own)"))


def sandbox_limit(settings: EvalSettings) -> int:
    """The memory ceiling in MiB: the setting, else half of this machine's memory."""
    if settings.memory_limit_mb is not None:
        return settings.memory_limit_mb
    import psutil

    return int(psutil.virtual_memory().total // 2) >> 20


def compile_caches() -> Path:
    """The folder of the per-GPU timing locks (the judges' own; candidates compile into their
    private folders)."""
    from kernelwright.hardware.calibrate import cache_dir

    return cache_dir() / "compile"


def sandbox_for(settings: EvalSettings, cuda: bool = False) -> Sandbox | None:
    """How a candidate's worker is confined (None: not at all, settings.sandbox off)."""
    if not settings.sandbox:
        return None
    import os

    cpu_s = int(settings.timeout_s * (os.cpu_count() or 1)) + 60
    return Sandbox(Limits(memory_mb=sandbox_limit(settings), file_mb=settings.file_limit_mb,
                          disk_mb=settings.disk_limit_mb, cpu_s=cpu_s), cuda=cuda)
