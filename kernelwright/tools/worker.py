"""The judge: the one process whose word is a verdict. It never imports candidate code.

It loads the problem, runs the reference (a failure there is the problem's error, never the
candidate's), and starts the candidate's own process (tools/candidate.py), confined, which it
drives request by request. Inputs go there and outputs come back by value through an exchange
buffer (tools/exchange.py); the judge compares them with the reference's itself. Nothing the
candidate's process says is taken on trust: a forged answer is a protocol violation, outputs
are checked, and its times are accepted only when the judge's own clock holds them (their sum
fits in the judge's wall time around the reps; the work outside the timed windows is no more
than the eager reference's; none is under the SOL floor) and every timed rep's outputs match
the reference's on the same fresh inputs.

Stages, in order: reference, build, correctness trials, repeated calls (timed on a GPU, times
discarded on the CPU), baselines and SOL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from kernelwright.core.errors import ProblemError
from kernelwright.core.problem import Problem
from kernelwright.core.results import EvalResult, EvalSettings, GuardFinding, Rule, Status
from kernelwright.hardware.backends import Device, get_backend
from kernelwright.tools.sandbox import Limits

CPU_TIMING_NOTE = ("no GPU: correctness ran under the Triton interpreter, whose timings are not "
                   "meaningful, so none are reported")
CUDA_FAULT = re.compile(r"illegal memory access|CUDA error|device-side assert|unspecified launch",
                        re.IGNORECASE)
SOL_MARGIN = 0.95  # a time under 0.95 x the floor is refused (calibration is within ~3%)


class WorkerJob(BaseModel):
    """Everything the judge needs, sent as JSON to its process."""

    problem_path: str
    problem_source: str
    size_overrides: dict[str, int]
    second_sizes: dict[str, int] | None = None  # the CPU's second check: the same kernels at
    # these sizes too (Problem.second_size), so a shape baked into a kernel fails
    candidate_source: str
    settings: EvalSettings
    device: Device
    limits: Limits | None = None  # the candidate's process confinement (None: not confined)
    cuda_confinement: bool = False  # confine it as a CUDA worker (no PID namespace)


class Verdict(Exception):
    """Ends the judge's pipeline early with a status."""

    def __init__(self, status: Status, reason: str, message: str,
                 findings: list[GuardFinding] | None = None):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.findings = findings or []


def serve(job_json: str) -> str:
    """Entry point in the judge's process (see tools/process.py): JSON job in, JSON result out."""
    return run(WorkerJob.model_validate_json(job_json)).model_dump_json()


def run(job: WorkerJob) -> EvalResult:
    backend = get_backend(job.settings.backend)
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
    from kernelwright.tools.timing import peak_memory

    result.judge_peak_memory_bytes = peak_memory(job.device)
    if not backend.timed(job.device):
        result.timing_note = CPU_TIMING_NOTE
    return result


class Remote:
    """The candidate's process, as the judge drives it: every answer is parsed and checked
    here, and a failure becomes a Verdict."""

    def __init__(self, job: WorkerJob, expected: list[Any]):
        from kernelwright.tools import exchange
        from kernelwright.tools.process import Child, Sandbox

        self.job = job
        self.expected = expected  # the reference's outputs of trial 0: types, shapes, dtypes
        self.fd = exchange.create(exchange.nbytes(expected))
        box = None if job.limits is None else Sandbox(job.limits, cuda=job.cuda_confinement)
        self.child = Child("kernelwright.tools.candidate:serve", job.settings.timeout_s,
                           "kernelwright-candidate", box, pass_fds=(self.fd,),
                           env_extra={"KERNELWRIGHT_EXCHANGE_FD": str(self.fd)})
        self.ops: set[str] = set()
        self.answered = False

    def close(self) -> None:
        import os

        self.child.close(answered=self.answered)
        os.close(self.fd)

    def ask(self, op: str, **fields: Any) -> dict[str, Any]:
        from kernelwright.tools.candidate import Failure
        from kernelwright.tools.process import ChildGone

        try:
            text = self.child.ask(json.dumps({"op": op, **fields}))
        except ChildGone:
            raise self._gone() from None
        try:
            answer = json.loads(text)
            if "failure" in answer:
                raise _failure(Failure.model_validate(answer["failure"]))
            ok = answer["ok"]
            if not isinstance(ok, dict):
                raise TypeError("not an object")
        except (ValueError, TypeError, KeyError, ValidationError) as exc:
            raise Verdict(Status.REJECTED, "protocol_violation", "the candidate's process sent "
                          f"an answer that is not the harness's ({type(exc).__name__}): "
                          f"{text[:200]!r}") from None
        self.answered = op == "drop"
        return ok

    def _gone(self) -> Verdict:
        child, settings = self.child, self.job.settings
        if child.killed_for == "memory":
            return Verdict(Status.CRASHED, "memory_limit", "the worker's resident memory passed "
                           f"its {child.sandbox.limits.memory_mb if child.sandbox else 0} MiB "
                           "ceiling and it was killed (raise EvalSettings.memory_limit_mb if "
                           "legitimate)")
        if child.killed_for == "disk":
            return Verdict(Status.CRASHED, "disk_limit", "the worker's files passed their "
                           f"{settings.disk_limit_mb} MiB limit and it was killed")
        if child.timed_out:
            return Verdict(Status.TIMEOUT, "timeout", f"the worker ran past its "
                           f"{settings.timeout_s:g} s limit and was killed")
        import subprocess

        try:
            child.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        return Verdict(Status.CRASHED, "worker_died", f"the worker died with {child.exit_how()} "
                       "before answering (segfault, abort, illegal memory access, or a resource "
                       "limit in the candidate)")

    # -- the requests correctness.check uses --------------------------------------------------
    def load(self, name: str, inputs: list[Any], into: bool = False) -> list[int]:
        from kernelwright.tools import exchange

        slots = [s.model_dump() for s in exchange.write(self.fd, inputs)]
        ptrs = self.ask("load", name=name, slots=slots, into=into)["ptrs"]
        return [int(p) for p in ptrs]

    def call(self, names: list[str]) -> list[list[Any]]:
        """Run the forward on the named input sets back to back; all their outputs."""
        return list(self.each(names))

    def each(self, names: list[str]) -> Iterator[list[Any]]:
        """Run the forward on the named input sets back to back, then bring their outputs over
        one at a time (each dropped in the candidate's process once sent)."""
        from kernelwright.tools import exchange

        labels = [f"out{i}" for i in range(len(names))]
        answer = self.ask("call", names=names, labels=labels)
        self.ops.update(str(op) for op in answer.get("ops", []))
        for metas in answer["outputs"]:
            self._check_metas(metas)
        try:
            for label in labels:
                slots = [exchange.Slot(**s) for s in self.ask("fetch", label=label)["slots"]]
                self._check_metas([s.model_dump() for s in slots])
                self.ask("drop", labels=[label])
                yield exchange.read(self.fd, slots, self.expected[0].device
                                    if self.expected else "cpu")
        finally:
            self.ask("drop", labels=labels)

    def _check_metas(self, metas: list[dict[str, Any]]) -> None:
        """Types, shapes and dtypes against the reference's, before a byte is read."""
        from kernelwright.tools.correctness import Mismatch

        if len(metas) != len(self.expected):
            raise Mismatch("output_count", f"returned {len(metas)} outputs, the reference "
                           f"{len(self.expected)}")
        for i, (m, r) in enumerate(zip(metas, self.expected, strict=True)):
            if not m.get("exact_type", False):
                raise Mismatch("output_type", f"output {i} is a {m.get('type_name')}, not exactly "
                               "torch.Tensor (tensor subclasses are refused)")
            if list(m.get("shape", [])) != list(r.shape) or m.get("dtype") != str(r.dtype) or \
                    ("device" in m and m["device"].split(":")[0] != r.device.type):
                raise Mismatch("output_shape", f"output {i} is {tuple(m.get('shape', []))} "
                               f"{m.get('dtype')} on {m.get('device', '?')}; the reference gives "
                               f"{tuple(r.shape)} {r.dtype} on {r.device}")

    def read(self, name: str) -> list[Any]:
        from kernelwright.tools import exchange

        slots = [exchange.Slot(**s) for s in self.ask("read", name=name)["slots"]]
        return exchange.read(self.fd, slots, self.expected[0].device if self.expected else "cpu")

    def drop(self) -> None:
        self.ask("drop", inputs=True)


def _failure(failure: Any) -> Verdict:
    """A failure the candidate's process reported: guard findings, a build or forward error."""
    if failure.kind == "guard" and failure.findings:
        return Verdict(Status.REJECTED, failure.findings[0].rule, failure.message, failure.findings)
    text = failure.message
    if CUDA_FAULT.search(text):
        return Verdict(Status.CRASHED, "cuda_fault", text[:2000])
    if "CompilationError" in text.split(":")[0]:
        return Verdict(Status.BUILD_ERROR, "compile_failed", text[:2000])
    if failure.kind == "build":
        return Verdict(Status.BUILD_ERROR, "build_failed", text[:2000])
    return Verdict(Status.RUNTIME_ERROR, "forward_raised", text[:2000])


def _problem_error(problem: Problem, what: str, exc: BaseException) -> Verdict:
    return Verdict(Status.PROBLEM_ERROR, "reference_failed",
                   f"{problem.path}: {what} raised {type(exc).__name__}: {str(exc)[:600]}. "
                   "The candidate was not judged. Fix: the problem's Model must run on its own "
                   "inputs (python -c 'import runpy; m = runpy.run_path(\"FILE\"); "
                   "m[\"Model\"](*m[\"get_init_inputs\"]())(*m[\"get_inputs\"]())').")


def _fits(problem: Problem, module: Any, settings: EvalSettings, device: Any,
          result: EvalResult) -> None:
    """The problem's footprint (inputs, parameters and outputs of one forward, counted on the
    meta device) into the result; a TOO_LARGE verdict when it exceeds the free memory."""
    import torch

    from kernelwright.core.precision import prepare_inputs, prepare_module
    from kernelwright.tools import correctness

    try:
        with torch.device("meta"), torch.no_grad():
            model = prepare_module(module.Model(*problem.init_inputs(module)), settings.precision,
                                   torch.device("meta"))
            inputs = prepare_inputs(list(module.get_inputs()), settings.precision,
                                    torch.device("meta"))
            outputs = correctness.as_outputs(model(*inputs))
    except Exception:  # noqa: BLE001  (no meta kernel for some op: the real run decides)
        return
    tensors = [*inputs, *model.parameters(), *model.buffers(), *outputs]
    need = sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
    result.footprint_bytes = need
    if need > _free_bytes(device):
        raise _too_large(problem, need, device)


def _free_bytes(device: Any) -> int:
    import torch

    if device.type == "cuda":
        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


def _too_large(problem: Problem, need: int, device: Any) -> Verdict:
    return Verdict(Status.TOO_LARGE, "too_large", f"{problem.path}: one forward needs about "
                   f"{need / 2**30:.2f} GiB (inputs, parameters and outputs) and {device.type} "
                   f"has {_free_bytes(device) / 2**30:.2f} GiB free. The candidate was not "
                   "judged. Fix: run it on a device with more memory, or shrink the problem's "
                   "sizes.")


def _pipeline(job: WorkerJob, result: EvalResult) -> None:
    import torch

    from kernelwright.core.precision import apply_policy, prepare_inputs, prepare_module
    from kernelwright.tools import correctness

    settings = job.settings
    apply_policy(settings.precision)
    device = torch.device(job.device)
    workdir = Path.cwd()
    (workdir / "ref").mkdir(exist_ok=True)
    problem = Problem(job.problem_path, job.problem_source, job.size_overrides)
    try:
        module = problem.module(str(workdir / "ref"))
    except ProblemError as exc:
        raise Verdict(Status.PROBLEM_ERROR, "reference_failed", str(exc)) from None

    _fits(problem, module, settings, device, result)

    def plain_inputs(seed: int) -> list[Any]:
        torch.manual_seed(seed)
        return prepare_inputs(list(module.get_inputs()), settings.precision, device)

    try:
        init_inputs = problem.init_inputs(module)
        torch.manual_seed(settings.seed)
        reference = module.Model(*init_inputs)
        correctness.reinit_parameters(reference, settings.seed)
        state = {k: v.detach().cpu() for k, v in reference.state_dict().items()}
        reference = prepare_module(reference, settings.precision, device)
        with torch.no_grad():
            first = correctness.as_outputs(reference(*plain_inputs(settings.seed)))
    except torch.cuda.OutOfMemoryError:
        raise _too_large(problem, result.footprint_bytes or 0, device) from None
    except Exception as exc:
        raise _problem_error(problem, "the reference Model", exc) from None
    if not all(type(o) is torch.Tensor for o in first):
        raise Verdict(Status.PROBLEM_ERROR, "reference_failed", f"{problem.path}: the reference "
                      "returns something other than tensors. Fix: return a tensor or a tuple of "
                      "tensors from Model.forward.")
    try:
        json.dumps(init_inputs)  # they travel to the candidate's process as JSON
    except TypeError:
        raise Verdict(Status.PROBLEM_ERROR, "reference_failed", f"{problem.path}: "
                      "get_init_inputs() returns values that are not plain numbers, strings or "
                      "lists. Fix: pass tensors through get_inputs() instead.") from None

    def run_reference(*args: Any) -> Any:
        with torch.no_grad():
            return reference(*args)

    def trial_inputs(trial: int) -> list[Any]:
        """Trial t's inputs, transformed where the reference stays finite on them."""
        plain = plain_inputs(settings.seed + trial)
        moved = correctness.transform(plain, trial)
        if moved is not plain and not correctness.finite(correctness.as_outputs(
                run_reference(*correctness.clone_all(moved)))):
            return plain
        return moved

    remote = Remote(job, first)
    try:
        result.sandbox = remote.child.confinement.lines()
        _judge(job, result, remote, module, reference, state, init_inputs, trial_inputs,
               run_reference, Float64Reference(reference))
    finally:
        remote.close()
        result.log_tail = remote.child.log_tail()


class Float64Reference:
    """The reference evaluated in float64 (a copy of it with the same parameter values, run with
    float64 as the default dtype, so tensors made inside its forward are float64 too), for
    accuracy parity. A call returns None, with the reason in `note`, where it cannot run so."""

    def __init__(self, reference: Any):
        self.reference = reference
        self.model: Any = None
        self.note: str | None = None

    def __call__(self, inputs: list[Any]) -> Any:
        import copy

        import torch

        from kernelwright.tools import correctness

        if self.note is not None:
            return None
        previous = torch.get_default_dtype()
        try:
            torch.set_default_dtype(torch.float64)
            with torch.no_grad():
                if self.model is None:
                    self.model = copy.deepcopy(self.reference).to(torch.float64)
                args = [x.to(torch.float64) if isinstance(x, torch.Tensor) and x.is_floating_point()
                        else x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
                return correctness.as_outputs(self.model(*args))
        except torch.cuda.OutOfMemoryError:
            self.note = ("not measured: the float64 evaluation of the reference does not fit in "
                         "the device's free memory")
        except Exception as exc:  # noqa: BLE001  (the reference's limits, not the candidate's)
            self.note = (f"not measured: the reference does not run in float64 "
                         f"({type(exc).__name__}: {str(exc)[:200]})")
        finally:
            torch.set_default_dtype(previous)
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return None


def _parity_figures(result: EvalResult, report: Any, parity: Any, exact: Float64Reference
                    ) -> None:
    """Both errors against float64 into the verdict, whatever it is."""
    result.parity_note = exact.note
    if report.parity is None and result.parity_note is None and report.trials_passed:
        result.parity_note = "not needed: no floating-point output (compared exactly)"
    if report.parity is not None:
        result.exact_error = report.parity.candidate
        result.reference_exact_error = report.parity.reference
        result.parity_factor = parity.factor


def _judge(job: WorkerJob, result: EvalResult, remote: Remote, module: Any, reference: Any,
           state: dict[str, Any], init_inputs: list[Any], trial_inputs: Any,
           run_reference: Any, exact: Float64Reference) -> None:

    from kernelwright.tools import correctness, exchange
    from kernelwright.tools.runtime_guard import GuardViolation

    settings = job.settings
    names = list(state)
    slots = [s.model_dump() for s in exchange.write(remote.fd, [state[n] for n in names])]
    have = remote.ask("build", source=job.candidate_source, settings=settings.model_dump(),
                      device=job.device, init_inputs=init_inputs, names=names, state=slots)["state"]
    missing = [f"{n} {list(t.shape)}" for n, t in state.items()
               if t.is_floating_point() and list(have.get(n, [])) != list(t.shape)]
    if missing:
        raise Verdict(Status.REJECTED, "missing_parameter", "reference parameters and buffers "
                      f"without a counterpart in ModelNew (same name and shape): "
                      f"{', '.join(missing[:6])}. Fix: register them in ModelNew under the "
                      "reference's names, so the harness can give both the same values.")
    report = correctness.CorrectnessReport()
    parity = correctness.ParityCheck(exact, settings.precision)
    try:
        correctness.check(run_reference, remote, trial_inputs, settings.trials, settings.tol(),
                          settings.sequence_checks, parity, report)
    except GuardViolation as exc:
        raise Verdict(Status.REJECTED, exc.findings[0].rule, str(exc), exc.findings) from None
    except correctness.Mismatch as exc:
        status = Status.REJECTED if exc.reason == "output_type" else Status.INCORRECT
        raise Verdict(status, exc.reason, str(exc)) from None
    except correctness.RepeatedInputs as exc:
        raise Verdict(Status.PROBLEM_ERROR, "inputs_repeat", f"{job.problem_path}: {exc}; "
                      "get_inputs() must draw random values (torch.randn, torch.rand, "
                      "torch.randint) so that trials differ. The candidate was not judged.") from None
    finally:
        result.aten_ops = sorted(remote.ops)
        _parity_figures(result, report, parity, exact)
    check_record(remote.ops)
    result.trials_passed = report.trials_passed
    result.max_abs_err, result.max_rel_err = report.errors.max_abs, report.errors.max_rel
    result.message = f"matches the reference in {report.trials_passed} trials"
    if result.exact_error is not None:
        result.message += (f"; as accurate as it: error against float64 "
                           f"{result.exact_error:.2g}, the reference's "
                           f"{result.reference_exact_error:.2g}")
    timed = get_backend(settings.backend).timed(job.device)
    with _exclusive(settings.timing_lock if timed else None):
        _measure(job, result, remote, module, run_reference, reference, trial_inputs, timed)
    if job.second_sizes is not None:
        _second_size(job, result, remote, init_inputs)


def _second_size(job: WorkerJob, result: EvalResult, remote: Remote, init_inputs: list[Any]
                 ) -> None:
    """Build the candidate again and check it at the second sizes (a fresh reference, two
    trials): the kernels that matched at the first sizes must match there too."""
    import torch

    from kernelwright.core.precision import prepare_inputs, prepare_module
    from kernelwright.tools import correctness, exchange

    settings, device = job.settings, torch.device(job.device)
    problem = Problem(job.problem_path, job.problem_source, job.second_sizes or {})
    (Path.cwd() / "ref2").mkdir(exist_ok=True)
    module = problem.module(str(Path.cwd() / "ref2"))
    torch.manual_seed(settings.seed)
    reference = module.Model(*init_inputs)
    correctness.reinit_parameters(reference, settings.seed)
    state = {k: v.detach().cpu() for k, v in reference.state_dict().items()}
    reference = prepare_module(reference, settings.precision, device)

    def run_reference(*args: Any) -> Any:
        with torch.no_grad():
            return reference(*args)

    def trial_inputs(trial: int) -> list[Any]:
        torch.manual_seed(settings.seed + trial)
        return prepare_inputs(list(module.get_inputs()), settings.precision, device)

    sizes = ", ".join(f"{k}={v}" for k, v in problem.size_overrides.items())
    names = list(state)
    slots = [s.model_dump() for s in exchange.write(remote.fd, [state[n] for n in names])]
    remote.drop()  # the first sizes' input sets: their buffers have the old shapes
    remote.expected = correctness.as_outputs(run_reference(*trial_inputs(0)))
    try:
        remote.ask("build", source=job.candidate_source, settings=settings.model_dump(),
                   device=job.device, init_inputs=init_inputs, names=names, state=slots)
        correctness.check(run_reference, remote, trial_inputs, 2, settings.tol(), 2)
    except correctness.Mismatch as exc:
        raise Verdict(Status.INCORRECT, "size_specific", f"matches at the first sizes but not at "
                      f"{sizes}: {exc}. A kernel must read its sizes from its inputs.") from None
    except Verdict as verdict:
        raise Verdict(verdict.status, verdict.reason, f"at the second sizes ({sizes}): "
                      f"{verdict.message}") from None
    result.message += f"; and at other sizes ({sizes})"


def check_record(ops: set[str]) -> None:
    """A correct forward allocates at least its output: an empty aten record means the
    candidate's process tampered with its runtime guard."""
    if not ops:
        raise Verdict(Status.REJECTED, "implausible_record", "the candidate's outputs came from "
                      "a forward that recorded no aten op at all, not even an allocation: its "
                      "runtime record was tampered with")


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


def _measure(job: WorkerJob, result: EvalResult, remote: Remote, module: Any, reference: Any,
             model: Any, trial_inputs: Any, timed: bool) -> None:
    """Repeated calls on fresh inputs, every one's outputs checked against the reference's.
    Timed devices: the candidate's times, held against the judge's clock and the SOL floor,
    then eager and torch.compile timed here alike. The CPU interpreter: a few reps, no times."""
    from kernelwright.tools import correctness
    from kernelwright.tools.timing import compile_baseline

    settings = job.settings
    gpu = job.device == "cuda"
    sets = [trial_inputs(2000 + i) for i in range(3 if timed else 1)]
    names = [f"time{i}" for i in range(len(sets))]
    for name, inputs in zip(names, sets, strict=True):
        remote.load(name, inputs)
    reps = settings.reps if timed else settings.cpu_reps
    run = _held_round(lambda: _timed_round(job, remote, reference, sets, names, reps, timed),
                      timed)
    result.peak_memory_bytes = run.peak_memory_bytes
    result.timed_reps_checked = reps
    for k, name in enumerate(names):  # one full comparison per set after the reps
        try:
            (out,) = remote.call([name])
            correctness.compare(out, correctness.as_outputs(reference(*correctness.clone_all(
                sets[k]))), settings.tol())
            del out
        except correctness.Mismatch as exc:
            raise Verdict(Status.INCORRECT, "changed_under_timing", f"after timing: {exc}") from None
    if not timed:
        return
    _accept_times(job, result, run, module)
    compiled, note = None, None
    if settings.compile_baseline and gpu:
        compiled, note = _compiled_once(job, result.device, lambda: compile_baseline(
            model, run.make, reps, settings.warmup_ms, job.device))
    _figures(result, run.stats, run.eager, compiled, note if gpu else "cpu backend: wall-clock times on "
             "the CPU; no torch.compile baseline")


@dataclasses.dataclass
class _Round:
    """One timed round: the candidate's stats and the judge's wall time around its reps, the
    eager reference's under the same plan, the GPU census, and the plan's inputs (`make`)."""

    stats: Any
    wall_s: float
    eager: Any
    eager_wall_s: float
    census: Any
    make: Any
    peak_memory_bytes: int | None


def _timed_round(job: WorkerJob, remote: Remote, reference: Any, sets: list[Any],
                 names: list[str], reps: int, timed: bool) -> _Round:
    """One round of `reps` calls in the candidate's process on the judge's plan, then the eager
    reference under the same plan; every rep's fingerprint checked against the reference's."""
    from kernelwright.tools.timing import fingerprints_match, scaled_inputs, summarize, time_calls

    settings = job.settings
    gpu = job.device == "cuda"
    # the plan is the judge's, drawn where the candidate cannot predict it: each rep's input set,
    # its scale, and whether the runtime guard records that rep's aten ops (about one in ten:
    # a torch fallback that waits for the timing loop is caught there; those reps' times,
    # which include the record's cost, are left out)
    chooser = random.SystemRandom()
    watched = set(chooser.sample(range(reps), max(2, reps // 10)))
    plan = [(rep % len(sets), chooser.uniform(0.5, 2.0), rep in watched) for rep in range(reps)]
    started = time.perf_counter()
    answer = remote.ask("measure", names=names, plan=plan, census=gpu, timed=timed)
    wall = time.perf_counter() - started
    peak = answer.get("peak_memory_bytes")
    peak_bytes = int(peak) if isinstance(peak, int | float) else None
    try:
        from kernelwright.core.results import ProfileReport

        times = [float(t) for t in answer["times_us"]]
        if len(times) != reps or not all(t > 0 for t in times):
            raise ValueError("one positive time per rep")
        prints = [[float(x) for x in p] for p in answer["prints"]]
        census = ProfileReport.model_validate(answer["census"]) if gpu else None
    except (KeyError, TypeError, ValueError, ValidationError):
        raise Verdict(Status.REJECTED, "protocol_violation", "the candidate's process sent "
                      "timings that are not the harness's") from None
    # timed, the watched reps' times (which include the record's cost) are left out; untimed
    # (the interpreter), every rep may be watched and its times are never reported
    stats = summarize([t for rep, t in enumerate(times) if rep not in watched] if timed else times)
    stats.total_us = sum(times)  # all reps ran inside the judge's clock
    started = time.perf_counter()
    make = scaled_inputs(sets, [(k, f) for k, f, _ in plan])
    eager, ref_prints = time_calls(reference, make, reps, settings.warmup_ms, job.device, timed=timed)
    eager_wall = time.perf_counter() - started
    if len(prints) != reps:
        raise Verdict(Status.REJECTED, "protocol_violation", f"{len(prints)} fingerprints for "
                      f"{reps} timed reps")
    for rep, (got, want) in enumerate(zip(prints, ref_prints, strict=True)):
        if not fingerprints_match(got, want, settings.tol()):
            raise Verdict(Status.INCORRECT, "changed_under_timing", f"{'timed' if timed else 'repeated'}"
                          f" call {rep + 1} of {reps} (fresh inputs) returned a wrong result: "
                          "work is cached, skipped or batched")
    return _Round(stats, wall, eager, eager_wall, census, make, peak_bytes)


def _figures(result: EvalResult, stats: Any, eager: Any, compiled: Any, note: str | None) -> None:
    """The speedups of a verdict, where the times can be told apart (TimingStats.speedup_over:
    the p20-p80 spreads do not overlap); otherwise "no measurable difference", not a number."""
    result.eager_us, result.eager_timing = eager.median_us, eager
    result.speedup_eager = stats.speedup_over(eager)
    notes = [note]
    result.within_noise = result.speedup_eager is None
    if result.within_noise:
        notes.append(f"no measurable difference from eager: {stats.spread} against "
                     f"{eager.spread}")
    if compiled is not None:
        result.compile_us = compiled.median_us
        result.speedup_compile = stats.speedup_over(compiled)
        if result.speedup_compile is None:
            notes.append("no measurable difference from torch.compile")
    result.timing_note = "; ".join(n for n in notes if n) or None


def _compiled_once(job: WorkerJob, device_name: str, measure: Any) -> tuple[Any, str | None]:
    """torch.compile's time for this problem, precision and device: measured by the first
    judge that needs it and kept in the cache folder (its compile costs tens of seconds; every
    later candidate of the problem is compared with the same figure)."""
    import hashlib

    import torch

    from kernelwright.core.results import TimingStats
    from kernelwright.hardware.calibrate import cache_dir

    key = hashlib.sha256(json.dumps([job.problem_source, job.size_overrides,
                                     job.settings.precision, job.settings.reps, device_name,
                                     torch.__version__]).encode()).hexdigest()[:24]
    file = cache_dir() / "baselines" / f"compile-{key}.json"
    try:
        return TimingStats.model_validate_json(file.read_text()), None
    except (OSError, ValueError):
        pass
    compiled, note = measure()
    if compiled is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(compiled.model_dump_json())
        partial.replace(file)  # atomic: a judge reading it meanwhile sees all or nothing
    return compiled, note


def _held_round(take: Callable[[], _Round], timed: bool) -> _Round:
    """A round the judge's clock holds (_hold_outside). One whose time outside its windows
    exceeds the eager reference's is taken once more before the verdict: a busy machine (other
    judges, a compile) can stretch one round's gaps, while work that a candidate hides there
    shows up in every round."""
    run = take()
    if not timed:
        return run
    try:
        _hold_outside(run)
    except Verdict as verdict:
        if verdict.reason != "work_outside_timing":
            raise
        run = take()
        _hold_outside(run)
    return run


def _hold_outside(run: _Round) -> None:
    """The judge's clock around the reps holds their reported sum, and no more time passes
    outside the timed windows than the eager reference spent outside its own under the same
    plan (work done out of sight is not free)."""
    stats = run.stats
    reported_s = stats.total_us * 1e-6
    if reported_s > run.wall_s:
        raise Verdict(Status.REJECTED, "implausible_time", f"the candidate's process reported "
                      f"{stats.reps} reps taking {reported_s:.3g} s in all, which do not fit in "
                      f"the {run.wall_s:.3g} s the judge's clock saw around them")
    outside = run.wall_s - reported_s
    eager_outside = max(0.0, run.eager_wall_s - run.eager.total_us * 1e-6)
    allowed = 0.5 + 2 * eager_outside + 0.5 * reported_s + 3 * stats.median_us * 1e-6 * 4
    if outside > allowed:
        raise Verdict(Status.REJECTED, "work_outside_timing", f"{outside:.3g} s passed outside "
                      f"the candidate's timed windows ({reported_s:.3g} s inside them), against "
                      f"{eager_outside:.3g} s for the eager reference under the same plan: work "
                      "is done where the timer does not look")


def _accept_times(job: WorkerJob, result: EvalResult, run: _Round, module: Any) -> None:
    """Take the candidate's times only where the judge can hold them (_hold_outside, checked
    on the round taken); no time under the SOL floor (on a GPU); then the census's side
    streams."""
    from kernelwright.tools.profile import diagnose
    from kernelwright.tools.sol import judge

    stats, census = run.stats, run.census
    result.timing_wall_s = run.wall_s
    result.sol = _sol(job, module, job.device)
    if result.sol is not None:
        result.sol_fraction, result.faster_than_sol = judge(result.sol, stats.median_us)
        if job.device == "cuda" and stats.median_us < SOL_MARGIN * result.sol.floor_us:
            raise Verdict(Status.REJECTED, "implausible_time", f"median {stats.median_us:.3g} us "
                          f"is under the SOL floor of {result.sol.floor_us:.3g} us on "
                          f"{result.sol.profile}: no kernel can run that fast, so the time (or "
                          "the work it claims) is not real")
    if census is not None:
        if census.gpu_time_us > 3 * stats.median_us + 100 or not (
                census.own_kernel_fraction is None or 0 <= census.own_kernel_fraction <= 1):
            raise Verdict(Status.REJECTED, "implausible_census", "the candidate's process "
                          f"reported {census.gpu_time_us:.3g} us of kernels in one call (own "
                          f"share {census.own_kernel_fraction}) against a median call of "
                          f"{stats.median_us:.3g} us: its profile is not real")
        if census.side_streams:
            raise Verdict(Status.REJECTED, "side_stream", "kernels ran off the calling stream: "
                          f"{'; '.join(census.side_streams[:4])}",
                          [GuardFinding(rule=Rule.SIDE_STREAM, message="; ".join(census.side_streams[:4]))])
        result.own_kernel_fraction = census.own_kernel_fraction
        result.profile = diagnose(census, result.sol, stats.median_us)
    result.timing, result.runtime_us = stats, stats.median_us


def _sol(job: WorkerJob, module: Any, device: str) -> Any:
    """The problem's SOL floor on this device, or None for a GPU with no profile."""
    from kernelwright.hardware.calibrate import resolve_profile
    from kernelwright.tools.sol import count_problem, floor

    profile = resolve_profile(device)
    if profile is None:
        return None
    return floor(count_problem(module, job.settings.precision), profile, job.settings.precision)
