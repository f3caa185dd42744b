"""Correctness: fresh random inputs per trial, clones for the reference, poisoned outputs.

Each trial runs the candidate on a persistent input buffer (same data_ptr, new contents), then
the reference on a clone, then the candidate again on a fresh clone; every reference output is
kept alive, so a candidate can never be handed the reference's freed result. That order catches
results cached by pointer, candidates that mutate their inputs, constant outputs and outputs
that were never written. Afterwards a few back-to-back calls on different inputs are checked
together, which catches work that is skipped or batched across calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from kernelwright.tools.results import GuardFinding
from kernelwright.tools.runtime_guard import GuardViolation

Outputs = list[torch.Tensor]


class Mismatch(Exception):
    """The candidate's outputs differ from the reference's."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class ErrorStats:
    max_abs: float = 0.0
    max_rel: float = 0.0

    def merge(self, other: ErrorStats) -> None:
        self.max_abs = max(self.max_abs, other.max_abs)
        self.max_rel = max(self.max_rel, other.max_rel)


@dataclass
class CorrectnessReport:
    trials_passed: int = 0
    errors: ErrorStats = field(default_factory=ErrorStats)
    reference_outputs: list[Outputs] = field(default_factory=list)


def as_outputs(value: Any) -> Outputs:
    """Flatten a forward's return value into a list, keeping non-tensors for the type check."""
    return list(value) if isinstance(value, list | tuple) else [value]


def compare(cand: Outputs, ref: Outputs, tol: float) -> ErrorStats:
    """Raise Mismatch unless every output matches in type, shape, dtype, device and value."""
    if len(cand) != len(ref):
        raise Mismatch("output_count", f"returned {len(cand)} outputs, the reference {len(ref)}")
    stats = ErrorStats()
    for i, (c, r) in enumerate(zip(cand, ref, strict=True)):
        if type(c) is not torch.Tensor:
            raise Mismatch("output_type", f"output {i} is a {type(c).__name__}, not exactly "
                                          "torch.Tensor (tensor subclasses are refused)")
        if c.shape != r.shape or c.dtype != r.dtype or c.device != r.device:
            raise Mismatch("output_shape", f"output {i} is {tuple(c.shape)} {c.dtype} on "
                           f"{c.device}; the reference gives {tuple(r.shape)} {r.dtype} on {r.device}")
        if not r.is_floating_point():
            if not torch.equal(c, r):
                bad = int((c != r).sum())
                raise Mismatch("mismatch", f"output {i}: {bad} of {r.numel()} elements differ")
            continue
        c64, r64 = c.double(), r.double()
        ref_nan, cand_nan = torch.isnan(r64), torch.isnan(c64)
        ref_fin, cand_fin = torch.isfinite(r64), torch.isfinite(c64)
        if bool((ref_fin & ~cand_fin).any()):
            bad = int((ref_fin & ~cand_fin).sum())
            raise Mismatch("nan_or_inf", f"output {i}: {bad} elements are NaN/Inf where the "
                                         "reference is finite (unwritten or overflowed memory)")
        if not torch.equal(ref_nan, cand_nan) or not torch.equal(r64[~ref_fin & ~ref_nan],
                                                                  c64[~ref_fin & ~ref_nan]):
            raise Mismatch("nan_or_inf", f"output {i}: NaN/Inf positions differ from the reference")
        finite_r, finite_c = r64[ref_fin], c64[ref_fin]
        if finite_r.numel() == 0:
            continue
        scale = float(finite_r.square().mean().sqrt()) + finite_r.abs()
        diff = (finite_c - finite_r).abs()
        rel = diff / scale.clamp_min(1e-30)
        stats.merge(ErrorStats(float(diff.max()), float(rel.max())))
        if stats.max_rel > tol:
            bad = int((rel > tol).sum())
            raise Mismatch("mismatch", f"output {i}: {bad} of {r.numel()} elements exceed the "
                           f"tolerance (max abs err {stats.max_abs:.3g}, max rel err "
                           f"{stats.max_rel:.3g} > {tol:g})")
    return stats


def poison(like: Outputs, copies: int = 4) -> None:
    """Fill freed allocator blocks of the outputs' sizes with NaN (or -1), so unwritten output
    memory handed back by the allocator fails the comparison instead of holding old results."""
    blocks = []
    for r in like:
        for _ in range(copies):
            t = torch.empty_like(r)
            t.fill_(float("nan") if r.is_floating_point() else -1)
            blocks.append(t)
    del blocks


def clone_all(inputs: list[Any]) -> list[Any]:
    return [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]


def _same(a: list[Any], b: list[Any]) -> bool:
    return all(torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
               for x, y in zip(a, b, strict=True))


def _pointers(inputs: list[Any]) -> list[int]:
    return [x.data_ptr() for x in inputs if isinstance(x, torch.Tensor)]


def check(reference: Callable[..., Any], candidate: Callable[..., Any],
          make_inputs: Callable[[int], list[Any]], trials: int, seed: int, tol: float,
          sequence_checks: int) -> CorrectnessReport:
    """Run the trials and the sequence check; raise Mismatch or GuardViolation on failure."""
    report = CorrectnessReport()
    shapes = as_outputs(reference(*clone_all(make_inputs(seed))))  # kept alive: never reused
    buffer: list[Any] | None = None
    deferred: Mismatch | None = None
    history: list[tuple[Outputs, list[tuple[Outputs, list[int]]], list[Any]]] = []
    for trial in range(trials):
        pristine = make_inputs(seed + trial)
        if buffer is None:
            buffer = clone_all(pristine)
        else:
            for dst, src in zip(buffer, pristine, strict=True):
                if isinstance(dst, torch.Tensor):
                    dst.copy_(src)
        poison(shapes)
        out_first = as_outputs(candidate(*buffer))
        ref_in = clone_all(pristine)
        ref_out = as_outputs(reference(*ref_in))
        if _same(ref_in, pristine) and not _same(buffer, pristine):
            raise GuardViolation([GuardFinding(rule="input_mutation", message="the candidate "
                                               "wrote into its inputs; the reference does not")])
        poison(shapes)
        fresh = clone_all(pristine)
        out_second = as_outputs(candidate(*fresh))
        # fresh inputs stay alive in `history`, so later fresh clones get new pointers
        calls = [(out_second, _pointers(fresh)), (out_first, _pointers(buffer))]
        for old_ref, old_calls, _ in history:
            if _same(old_ref, ref_out):
                continue
            for (out, ptrs), (old_out, old_ptrs) in zip(calls, old_calls, strict=True):
                if not _tensors_equal(out, old_out):
                    continue
                if ptrs == old_ptrs:
                    raise Mismatch("stale_output", "new values at the same data_ptr gave the old "
                                   "output: results are cached by pointer")
                raise Mismatch("constant_output", "the output did not change when the inputs "
                               "did: it does not depend on the inputs")
        try:
            stats = compare(out_first, ref_out, tol)
            stats.merge(compare(out_second, ref_out, tol))
        except Mismatch as exc:  # raised after all trials: a structural reason found later wins
            deferred = deferred or exc
        else:
            report.errors.merge(stats)
            report.trials_passed += 1
        report.reference_outputs.append(ref_out)
        history.append((ref_out, calls, fresh))
    if deferred is not None:
        raise deferred
    _check_sequence(reference, candidate, make_inputs, seed + 1000, sequence_checks, tol, report)
    return report


def _check_sequence(reference: Callable[..., Any], candidate: Callable[..., Any],
                    make_inputs: Callable[[int], list[Any]], seed: int, count: int, tol: float,
                    report: CorrectnessReport) -> None:
    """Back-to-back candidate calls on different inputs, all checked afterwards."""
    sets = [make_inputs(seed + i) for i in range(count)]
    expected = [as_outputs(reference(*clone_all(s))) for s in sets]
    outputs = [as_outputs(candidate(*clone_all(s))) for s in sets]
    for i, (out, ref) in enumerate(zip(outputs, expected, strict=True)):
        try:
            report.errors.merge(compare(out, ref, tol))
        except Mismatch as exc:
            raise Mismatch("skipped_work", f"call {i + 1} of {count} back-to-back calls was "
                           f"wrong ({exc}): work is skipped or batched across calls") from None


def _tensors_equal(a: Outputs, b: Outputs) -> bool:
    return len(a) == len(b) and all(
        isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape
        and x.dtype == y.dtype and torch.equal(x, y) for x, y in zip(a, b, strict=True))
