"""The graph's steps that no role owns: analyze (load the problem, pick the device) and evaluate
(one candidate through the harness). The roles' nodes are in agents/, the memory's in
memory/learn.py; graph.py wires them."""

from __future__ import annotations

from typing import Any

from kernelwright.agents.profiler import facts
from kernelwright.config import run_config
from kernelwright.core.problem import load_problem, parse_problem
from kernelwright.core.records import CandidateStatus, State, problem_of
from kernelwright.hardware.backends import get_backend
from kernelwright.hardware.calibrate import device_name
from kernelwright.memory.learn import signature_of
from kernelwright.memory.store import open_store
from kernelwright.tools.evaluators import get_evaluator


def analyze(state: State, runtime: Any) -> dict[str, Any]:
    """Load the problem, pick the device the backend runs on, shrink the problem for the CPU."""
    import torch


    cfg = run_config(runtime)
    backend = get_backend(cfg.backend)
    device = backend.device(cfg.device, torch.cuda.is_available())
    if state.get("problem_path"):
        problem = load_problem(state["problem_path"])
    else:  # a client sent the source text
        problem = parse_problem(state.get("problem_source", ""),
                                f"{state.get('problem_name') or 'problem'}.py")
    problem.check_runs()  # the problem's own failure is reported as such, before any candidate
    if device == "cpu":
        problem = problem.shrink(backend.cpu_elements(cfg.cpu_max_elements,
                                                      cfg.cpu_backend_max_elements))
    if cfg.memory.enabled:
        open_store(cfg.memory)  # a locked or unreadable store stops the run now, not later
    return {"problem_path": problem.path, "problem_source": problem.source,
            "size_overrides": problem.size_overrides,
            "signature": signature_of(problem, cfg).model_dump(),
            "hardware": device_name(device), "device": device, "round": 0, "stale_rounds": 0,
            "tree": [], "best_id": None, "stop": None, "failure": None,
            "log": [f"analyze: {problem.name}, {cfg.backend} backend on {device}"
                    + (f" (sizes shrunk for the CPU: {problem.size_overrides})"
                       if problem.size_overrides else "")]}


def evaluate(state: State, runtime: Any) -> dict[str, Any]:
    """Evaluate one candidate with the harness, on a free slot of the configured evaluator."""

    c = next(c for c in state["tree"] if c.id == state["evaluating"])
    cfg = run_config(runtime)
    first = min(t.id for t in state["tree"] if t.status == CandidateStatus.PENDING)
    once = cfg.compile_baseline and c.id == first and not any(t.compile_us for t in state["tree"])
    result = get_evaluator(cfg.evaluator).evaluate(problem_of(state), c.source or "",
                                                   cfg.eval_settings(state["device"], once))
    done = c.model_copy(update=dict(
        status=CandidateStatus(result.status.value), reason=result.reason or "", message=result.message,
        runtime_us=result.runtime_us, eager_us=result.eager_us, compile_us=result.compile_us,
        sol_fraction=result.sol_fraction, speedup_eager=result.speedup_eager,
        speedup_compile=result.speedup_compile, within_noise=result.within_noise,
        facts=facts(result) if result.ok else ""))
    return {"tree": [done], "seconds": result.wall_s or 0.0,
            "log": [f"  #{c.id} {c.change}: {done.status}"
                    + (f" {done.runtime_us:.1f} us" if done.runtime_us else "")]}
