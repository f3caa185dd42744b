"""Where candidates are evaluated: this host's GPUs, or a Ray cluster's.

The graph's evaluate node runs one task per pending candidate, in parallel; each calls
`Evaluator.evaluate`, which waits for a free slot and runs the harness there. Verdicts are the
harness's own, wherever it ran.

    local  one slot per visible GPU of this host (CPU: `workers` slots); each evaluation's
           worker process sees only its GPU. With `per_gpu: 2` two workers share a GPU: one
           builds and checks while the other times, the timing phase behind a per-GPU lock,
           so compilation overlaps timing and timings never overlap.
    ray    one actor per GPU (num_gpus=1, so Ray gives it one GPU), on the cluster at
           `ray_address` (default: a local instance). A crashed actor is restarted and the
           candidate it held is evaluated again; an actor lives as long as the evaluator, so
           its compile caches stay warm. Actors import the harness only: never the memory
           (Qdrant) or tracking (MLflow), which stay with the graph.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Iterator
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from kernelwright.core.problem import Problem
from kernelwright.core.results import EvalResult, EvalSettings, Status


class EvaluatorConfig(BaseModel):
    """Which evaluator a run uses (RunConfig.evaluator)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "ray"] = "local"
    gpus: int | None = Field(None, ge=1, description="GPUs to use; default: all there are")
    per_gpu: int = Field(1, ge=1, le=4, description="local: workers per GPU (2: builds overlap "
                         "timing; timing itself is one at a time)")
    workers: int = Field(1, ge=1, description="local, no GPU: evaluations at once")
    ray_address: str | None = Field(None, description="ray: a cluster ('ray://host:10001', "
                                    "'auto'); default: start a local instance")
    max_restarts: int = Field(4, ge=0, description="ray: restarts of a crashed actor")
    start_timeout_s: float = Field(120.0, gt=0, description="ray: wait this long for the actors "
                                   "to be placed and started")


class Evaluator(Protocol):
    slots: Slots[Any]

    def evaluate(self, problem: Problem, source: str, settings: EvalSettings) -> EvalResult: ...

    def close(self) -> None: ...


T = TypeVar("T")


class Slots(Generic[T]):
    """Where evaluations run (GPU ids, actors); `take` waits for a free one. Counts the
    evaluations in flight, and the most at once so far (`peak`)."""

    def __init__(self, items: list[T]):
        self.free: queue.Queue[T] = queue.Queue()
        for item in items:
            self.free.put(item)
        self.count, self.busy, self.peak = len(items), 0, 0
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def take(self) -> Iterator[T]:
        item = self.free.get()
        with self.lock:
            self.busy += 1
            self.peak = max(self.peak, self.busy)
        try:
            yield item
        finally:
            with self.lock:
                self.busy -= 1
            self.free.put(item)


def visible_gpus() -> list[str]:
    """This host's GPUs as the caller sees them (ids as CUDA_VISIBLE_DEVICES names them)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    named = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return named[:count] if named else [str(i) for i in range(count)]


class LocalEvaluator:
    """Slots on this host: GPU ids (each `per_gpu` times) or, without a GPU, CPU workers."""

    def __init__(self, config: EvaluatorConfig):
        from kernelwright.tools.evaluate import compile_caches

        gpus = visible_gpus()[:config.gpus or None]
        self.locks = compile_caches()  # writable for sandboxed workers
        self.locks.mkdir(parents=True, exist_ok=True)
        self.per_gpu = config.per_gpu if gpus else 1
        self.slots: Slots[str | None] = Slots(
            [g for g in gpus for _ in range(config.per_gpu)] or [None] * config.workers)

    def evaluate(self, problem: Problem, source: str, settings: EvalSettings) -> EvalResult:
        from kernelwright.tools.evaluate import evaluate

        with self.slots.take() as gpu:
            if gpu is not None:
                lock = str(self.locks / f"gpu-{gpu}.lock") if self.per_gpu > 1 else None
                settings = settings.model_copy(update=dict(gpu=gpu, timing_lock=lock))
            return evaluate(problem, source, settings)

    def close(self) -> None:
        pass


class EvalActor:
    """A Ray actor holding one GPU: runs the harness there (which starts its own sandboxed
    worker per candidate, as it does locally)."""

    def evaluate(self, problem: dict[str, Any], source: str, settings_json: str) -> str:
        from kernelwright.tools.evaluate import evaluate

        settings = EvalSettings.model_validate_json(settings_json)
        return evaluate(Problem(**problem), source, settings).model_dump_json()

    def pid(self) -> int:
        return os.getpid()

    def imported(self) -> list[str]:
        """The memory's and tracking's packages if this actor imported them (it must not)."""
        return sorted({m.split(".")[0] for m in sys.modules} & {"qdrant_client", "mlflow"})


class RayEvaluator:
    """One actor per GPU of the cluster (or `gpus` of them); candidates queue for a free one."""

    def __init__(self, config: EvaluatorConfig):
        import ray

        if not ray.is_initialized():
            ray.init(address=config.ray_address, include_dashboard=False,
                     log_to_driver=False, ignore_reinit_error=True)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = min(config.gpus or gpus, gpus)
        if count < 1:
            from kernelwright.core.errors import KernelwrightError

            raise KernelwrightError(f"the Ray cluster at {config.ray_address or 'localhost'} has "
                                    "no GPU. Fix: start Ray on machines with GPUs (or declare "
                                    "logical ones: ray start --num-gpus N), or use evaluator "
                                    "kind: local.")
        actor = ray.remote(num_gpus=1, max_restarts=config.max_restarts,
                           max_task_retries=config.max_restarts)(EvalActor)
        self.actors: list[Any] = [actor.remote() for _ in range(count)]
        try:
            self.started = ray.get([a.pid.remote() for a in self.actors],
                                   timeout=config.start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            from kernelwright.core.errors import KernelwrightError

            for a in self.actors:
                ray.kill(a)
            raise KernelwrightError(
                f"Ray could not start {count} evaluation actor(s) with one GPU each within "
                f"{config.start_timeout_s:g} s: are the GPUs held by other work? Fix: free them, "
                "lower evaluator.gpus, or raise evaluator.start_timeout_s.") from None
        self.slots: Slots[Any] = Slots(self.actors)

    def evaluate(self, problem: Problem, source: str, settings: EvalSettings) -> EvalResult:
        import ray
        from ray.exceptions import RayActorError

        fields = dict(path=problem.path, source=problem.source,
                      size_overrides=problem.size_overrides)
        with self.slots.take() as actor:
            try:
                return EvalResult.model_validate_json(ray.get(actor.evaluate.remote(
                    fields, source, settings.model_dump_json())))
            except RayActorError as exc:  # restarts and retries spent
                return EvalResult(status=Status.CRASHED, reason="evaluator_died",
                                  problem=problem.name, guard=settings.guard,
                                  precision=settings.precision,
                                  message="the Ray actor evaluating it died and its retries were "
                                          f"spent: {str(exc)[:500]}")

    def pids(self) -> list[int]:
        import ray

        return [ray.get(a.pid.remote()) for a in self.actors]

    def close(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)


_OPEN: dict[str, Evaluator] = {}
_OPENING = threading.Lock()  # the graph's evaluate tasks ask for it from several threads at once


def get_evaluator(config: EvaluatorConfig) -> Evaluator:
    """The process's evaluator for `config` (made once: Ray actors and their warm caches are
    kept between runs)."""
    key = config.model_dump_json()
    with _OPENING:
        if key not in _OPEN:
            _OPEN[key] = RayEvaluator(config) if config.kind == "ray" else LocalEvaluator(config)
        return _OPEN[key]


def close_all() -> None:
    with _OPENING:
        while _OPEN:
            _OPEN.popitem()[1].close()
