"""Timing: CUDA events around one call (a wall clock for the `cpu` backend), caches flushed and
fresh inputs before each repetition.

Each repetition clones its inputs from one of several input sets (a new data_ptr every time,
the previous clone still alive), zeroes a buffer larger than L2, then times the call between
two events. Repetitions are queued without a synchronisation between them, as in
triton.testing.do_bench: the host runs ahead, so the timed window holds the GPU's work and not
the host's gap between a synchronisation and the first launch (a host-bound candidate still
shows its host time, because the queue then runs dry). Side-stream work cannot hide from this:
the profiler rejects kernels off the calling stream before timing. Every rep's output leaves a
fingerprint that the caller checks against the reference afterwards, so a candidate that
caches, batches or skips work while it is being timed fails instead of winning.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from kernelwright.tools.correctness import as_outputs, clone_all
from kernelwright.tools.results import TimingStats

L2_FLUSH_BYTES = 256 * 1024 * 1024  # larger than any current GPU's L2 (H100: 50 MB)
LLC_FLUSH_BYTES = 128 * 1024 * 1024  # larger than the last-level cache of most server CPUs


def time_gpu(fn: Callable[..., Any], input_sets: list[list[Any]], reps: int, warmup_ms: float
             ) -> tuple[TimingStats, list[tuple[int, list[torch.Tensor]]]]:
    """Median and spread of `reps` timed calls of `fn` (microseconds), and for every rep the
    index of its input set and a fingerprint of its outputs, to be checked afterwards.

    Only a fingerprint (an on-device sum) is kept per rep, and each output is freed before the
    next call, so the caching allocator reaches a steady state and no cudaMalloc lands inside a
    timed window; the Python GC is paused for the same reason.
    """
    return _time_calls(fn, input_sets, reps, warmup_ms, "cuda")


def time_cpu(fn: Callable[..., Any], input_sets: list[list[Any]], reps: int, warmup_ms: float
             ) -> tuple[TimingStats, list[tuple[int, list[torch.Tensor]]]]:
    """The same measurement on the CPU (the `cpu` backend): a wall clock around each call, the
    last-level cache flushed by writing a larger buffer, fresh inputs every rep."""
    return _time_calls(fn, input_sets, reps, warmup_ms, "cpu")


def _time_calls(fn: Callable[..., Any], input_sets: list[list[Any]], reps: int, warmup_ms: float,
                device: str) -> tuple[TimingStats, list[tuple[int, list[torch.Tensor]]]]:
    gpu = device == "cuda"
    flush = torch.empty(L2_FLUSH_BYTES if gpu else LLC_FLUSH_BYTES, dtype=torch.int8, device=device)
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    start_warm = time.perf_counter()
    warm_calls = 0
    while warm_calls < 3 or (time.perf_counter() - start_warm) * 1e3 < warmup_ms:
        fn(*clone_all(input_sets[warm_calls % len(input_sets)]))
        sync()
        warm_calls += 1
    events: list[tuple[Any, Any]] = []
    prints: list[tuple[int, list[torch.Tensor]]] = []
    previous: list[Any] | None = None
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for rep in range(reps):
            k = rep % len(input_sets)
            inputs = clone_all(input_sets[k])  # allocated while `previous` lives: a new data_ptr
            flush.zero_()
            start: Any
            end: Any
            if gpu:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                out = fn(*inputs)
                end.record()
            else:
                start = time.perf_counter()
                out = fn(*inputs)
                end = time.perf_counter()
            prints.append((k, fingerprint(out)))
            events.append((start, end))
            del out
            previous = inputs
        sync()  # every stream, not only the timed one
    finally:
        if gc_was_enabled:
            gc.enable()
    del previous
    times_us = [start.elapsed_time(end) * 1e3 if gpu else (end - start) * 1e6
                for start, end in events]
    return summarize(times_us), prints


def no_grad(model: Callable[..., Any]) -> Callable[..., Any]:
    """`model` called under torch.no_grad(), as every timed call is."""
    def call(*args: Any) -> Any:
        with torch.no_grad():
            return model(*args)
    return call


def time_baselines(reference: torch.nn.Module, input_sets: list[list[Any]], reps: int,
                   warmup_ms: float, compile_baseline: bool, device: str = "cuda"
                   ) -> tuple[TimingStats, TimingStats | None, str | None]:
    """Eager and torch.compile of the reference, timed like a candidate: (eager, compiled,
    note). A compile failure gives None and a note; it must not hide the other figures."""
    timer = time_gpu if device == "cuda" else time_cpu
    eager, _ = timer(no_grad(reference), input_sets, reps, warmup_ms)
    if not compile_baseline:
        return eager, None, None
    try:
        compiled, _ = timer(no_grad(torch.compile(reference)), input_sets, reps, warmup_ms)
    except Exception as exc:  # any compiler error: report it with the figures we have
        return eager, None, f"torch.compile baseline failed: {type(exc).__name__}: {str(exc)[:300]}"
    return eager, compiled, None


def fingerprint(value: Any) -> list[torch.Tensor]:
    """On-device sums of each output (float64 accumulation), without materialising copies."""
    return [t.sum(dtype=torch.float64) if t.is_floating_point() else t.sum()
            for t in as_outputs(value) if isinstance(t, torch.Tensor)]


def fingerprints_match(got: list[torch.Tensor], expected: list[torch.Tensor],
                       scale: list[float], tol: float) -> bool:
    if len(got) != len(expected):
        return False
    return all(abs(float(g) - float(e)) <= tol * s + 1e-9
               for g, e, s in zip(got, expected, scale, strict=True))


def summarize(times_us: list[float]) -> TimingStats:
    ordered = sorted(times_us)
    q = statistics.quantiles(ordered, n=10)  # deciles: q[1] is p20, q[7] is p80
    return TimingStats(median_us=statistics.median(ordered), p20_us=q[1], p80_us=q[7],
                       min_us=ordered[0], reps=len(ordered))
