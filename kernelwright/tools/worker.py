"""The evaluation worker: one spawned process per candidate, so faults never reach the caller.

Stages, in order: build (import, compile, construct with the reference's parameters),
correctness (trials under the runtime guard), then on a GPU the kernel census (own-kernel share,
side streams) and timing of the candidate, eager and torch.compile under one precision policy.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kernelwright.hardware.backends import Device, get_backend
from kernelwright.problem import Problem
from kernelwright.tools.results import EvalResult, EvalSettings, GuardFinding, Status

CPU_TIMING_NOTE = ("no GPU: correctness ran under the Triton interpreter, whose timings are not "
                   "meaningful, so none are reported")
CUDA_FAULT = re.compile(r"illegal memory access|CUDA error|device-side assert|unspecified launch",
                        re.IGNORECASE)


class WorkerJob(BaseModel):
    """Everything a worker needs, sent as JSON to the spawned process."""

    problem_path: str
    problem_source: str
    size_overrides: dict[str, int]
    candidate_source: str
    settings: EvalSettings
    device: Device


class Verdict(Exception):
    """Ends the worker's pipeline early with a status."""

    def __init__(self, status: Status, reason: str, message: str,
                 findings: list[GuardFinding] | None = None):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.findings = findings or []


def serve(job_json: str) -> str:
    """Entry point in the spawned process (see tools/process.py): JSON job in, JSON result out."""
    return run(WorkerJob.model_validate_json(job_json)).model_dump_json()


def run(job: WorkerJob) -> EvalResult:
    backend = get_backend(job.settings.backend)
    backend.prepare_worker(job.device, job.candidate_source)
    import torch
    import triton

    settings = job.settings
    result = EvalResult(
        status=Status.CORRECT, problem=Path(job.problem_path).stem, guard=settings.guard,
        precision=settings.precision, tolerance=settings.tol(),
        size_overrides=job.size_overrides, torch_version=torch.__version__,
        triton_version=triton.__version__,
        device=torch.cuda.get_device_name() if job.device == "cuda"
        else "cpu" if backend.timed("cpu") else "cpu (Triton interpreter)",
    )
    try:
        _pipeline(job, result)
    except Verdict as v:
        result.status, result.reason, result.message = v.status, v.reason, v.message
        result.findings = v.findings
    if not backend.timed(job.device):
        result.timing_note = CPU_TIMING_NOTE
    return result


def _pipeline(job: WorkerJob, result: EvalResult) -> None:
    import torch

    from kernelwright.tools import correctness
    from kernelwright.tools.build import construct_pair, import_candidate
    from kernelwright.tools.precision import apply_policy, prepare_inputs, prepare_module
    from kernelwright.tools.runtime_guard import GuardViolation, RuntimeGuard, watched_modules

    settings = job.settings
    apply_policy(settings.precision)
    device = torch.device(job.device)
    workdir = Path(tempfile.mkdtemp(prefix="kw-worker-"))
    (workdir / "ref").mkdir()
    problem = Problem(job.problem_path, job.problem_source, job.size_overrides)
    module = problem.module(str(workdir / "ref"))
    guard = RuntimeGuard(settings.guard, settings.precision, str(workdir / "candidate.py"),
                         watched_modules())

    def make_inputs(seed: int) -> list[Any]:
        torch.manual_seed(seed)
        return prepare_inputs(list(module.get_inputs()), settings.precision, device)

    try:
        with guard.watching(record_ops=False):
            cand_module, _ = import_candidate(job.candidate_source, workdir)
            reference, candidate = construct_pair(module.Model, cand_module.ModelNew,
                                                  problem.init_inputs(module), settings.seed)
    except GuardViolation as exc:
        raise Verdict(Status.REJECTED, exc.findings[0].rule, str(exc), exc.findings) from None
    except Exception as exc:
        raise _failure(exc, guard, Status.BUILD_ERROR, "build_failed") from None
    reference = prepare_module(reference, settings.precision, device)
    candidate = prepare_module(candidate, settings.precision, device)

    def run_candidate(*args: Any) -> Any:
        with torch.no_grad(), guard.watching():
            return candidate(*args)

    def run_reference(*args: Any) -> Any:
        with torch.no_grad():
            return reference(*args)

    try:
        report = correctness.check(run_reference, run_candidate, make_inputs, settings.trials,
                                   settings.seed, settings.tol(), settings.sequence_checks)
    except GuardViolation as exc:
        raise Verdict(Status.REJECTED, exc.findings[0].rule, str(exc), exc.findings) from None
    except correctness.Mismatch as exc:
        status = Status.REJECTED if exc.reason == "output_type" else Status.INCORRECT
        raise Verdict(status, exc.reason, str(exc)) from None
    except Exception as exc:
        raise _failure(exc, guard, Status.RUNTIME_ERROR, "forward_raised") from None
    finally:
        result.aten_ops = sorted(guard.ops)
    result.trials_passed = report.trials_passed
    result.max_abs_err, result.max_rel_err = report.errors.max_abs, report.errors.max_rel
    result.message = f"matches the reference in {report.trials_passed} trials"
    if get_backend(settings.backend).timed(job.device):
        with _exclusive(settings.timing_lock):  # another worker may build meanwhile, not time
            _measure(job, result, module, cand_module, reference, candidate, make_inputs, guard,
                     workdir)


@contextlib.contextmanager
def _exclusive(path: str | None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (a file shared by the workers of one GPU), if any."""
    if path is None:
        yield
        return
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _measure(job: WorkerJob, result: EvalResult, module: Any, cand_module: Any, reference: Any,
             candidate: Any, make_inputs: Any, guard: Any, workdir: Path) -> None:
    """Timed devices only: on a GPU the kernel census first (own-kernel share, side streams),
    then timing of candidate and eager reference (and torch.compile on a GPU), then the SOL.
    The `cpu` backend is timed with a wall clock and has no census (no trace of C++ loops)."""
    import torch

    from kernelwright.tools import correctness
    from kernelwright.tools.profile import diagnose, profile_call
    from kernelwright.tools.runtime_guard import GuardViolation
    from kernelwright.tools.sol import judge
    from kernelwright.tools.timing import no_grad, time_baselines

    settings = job.settings
    gpu = job.device == "cuda"
    timer = get_backend(settings.backend).timer(job.device)
    sets = [make_inputs(settings.seed + 2000 + i) for i in range(3)]
    with torch.no_grad():
        expected = [correctness.as_outputs(reference(*correctness.clone_all(s))) for s in sets]

    report = None
    try:
        if gpu:
            with guard.watching(record_ops=False):
                report = profile_call(no_grad(candidate), sets[0], _own_kernel_names(
                    cand_module, job.candidate_source), str(workdir / "trace.json"),
                    vendor_streams_ok=settings.guard == "library")
                if report.side_streams:
                    raise GuardViolation([GuardFinding(
                        rule="side_stream", message="kernels ran off the calling stream: "
                        f"{'; '.join(report.side_streams[:4])}")])
                result.own_kernel_fraction = report.own_kernel_fraction
        # timed with the audit hook disarmed: its host cost would leak into short kernels'
        # times; the identity and thread checks still run right after
        stats, prints = timer(no_grad(candidate), sets, settings.reps, settings.warmup_ms)
        guard.check()
        _check_after_timing(prints, no_grad(candidate), sets, expected, settings.tol())
    except GuardViolation as exc:
        raise Verdict(Status.REJECTED, exc.findings[0].rule, str(exc), exc.findings) from None
    except correctness.Mismatch as exc:
        raise Verdict(Status.INCORRECT, exc.reason, str(exc)) from None
    except Exception as exc:
        raise _failure(exc, guard, Status.RUNTIME_ERROR, "forward_raised") from None
    result.timing, result.runtime_us = stats, stats.median_us
    result.sol = _sol(job, module, job.device)
    if result.sol is not None:
        result.sol_fraction, result.faster_than_sol = judge(result.sol, stats.median_us)
    if report is not None:
        result.profile = diagnose(report, result.sol, stats.median_us)
    eager, compiled, note = time_baselines(reference, sets, settings.reps, settings.warmup_ms,
                                           settings.compile_baseline and gpu, job.device)
    result.eager_us = eager.median_us
    result.speedup_eager = eager.median_us / stats.median_us
    result.timing_note = note if gpu else \
        "cpu backend: wall-clock times on the CPU; no torch.compile baseline"
    if compiled is not None:
        result.compile_us = compiled.median_us
        result.speedup_compile = compiled.median_us / stats.median_us


def _sol(job: WorkerJob, module: Any, device: str) -> Any:
    """The problem's SOL floor on this device, or None for a GPU with no profile."""
    from kernelwright.hardware.calibrate import resolve_profile
    from kernelwright.tools.sol import count_problem, floor

    profile = resolve_profile(device)
    if profile is None:
        return None
    return floor(count_problem(module, job.settings.precision), profile, job.settings.precision)


def _check_after_timing(prints: list[Any], candidate: Any, sets: list[Any], expected: list[Any],
                        tol: float) -> None:
    """Every timed rep's fingerprint, then one full comparison per input set."""
    from kernelwright.tools import correctness
    from kernelwright.tools.timing import fingerprint, fingerprints_match

    want = [fingerprint(e) for e in expected]
    scale = [[float(t.double().abs().sum()) for t in e] for e in expected]
    for rep, (k, got) in enumerate(prints):
        if not fingerprints_match(got, want[k], scale[k], tol):
            raise correctness.Mismatch("changed_under_timing", f"timed call {rep + 1} returned a "
                                       "wrong result: work is cached, skipped or batched")
    for k, inputs in enumerate(sets):
        try:
            correctness.compare(correctness.as_outputs(candidate(*correctness.clone_all(inputs))),
                                expected[k], tol)
        except correctness.Mismatch as exc:
            raise correctness.Mismatch("changed_under_timing", f"after timing: {exc}") from None


def _own_kernel_names(module: Any, source: str) -> set[str]:
    """Names of the candidate's Triton kernels and of __global__ functions in inline CUDA."""
    names = set(re.findall(r"__global__\s+(?:__launch_bounds__\([^)]*\)\s+)?void\s+(\w+)", source))
    for name, obj in vars(module).items():
        if type(obj).__module__.startswith("triton"):
            names.add(getattr(obj, "__name__", None) or getattr(getattr(obj, "fn", None),
                                                                 "__name__", name))
    return names


def _failure(exc: BaseException, guard: Any, status: Status, reason: str) -> Verdict:
    """Turn an exception from candidate code into a verdict; guard findings come first."""
    if guard.findings:
        return Verdict(Status.REJECTED, guard.findings[0].rule,
                       "; ".join(f"{f.rule}: {f.message}" for f in guard.findings), guard.findings)
    text = f"{type(exc).__name__}: {exc}"
    if CUDA_FAULT.search(text):
        return Verdict(Status.CRASHED, "cuda_fault", text[:2000])
    if "CompilationError" in type(exc).__name__:
        return Verdict(Status.BUILD_ERROR, "compile_failed", text[:2000])
    return Verdict(status, reason, text[:2000])
