"""Correctness, decided by the judge: fresh random inputs per trial (sign-flipped, scaled and
shifted in turn), parameters re-initialised at random, outputs compared by the judge.

The reference runs in the judge's process and the candidate in its own (tools/worker.py), so
the candidate can never be handed the reference's result, nor change its inputs or settings.
Afterwards a few back-to-back calls on different inputs are checked together, which catches
work that is skipped or batched across calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from kernelwright.core.results import GuardFinding, Rule
from kernelwright.tools.runtime_guard import GuardViolation

Outputs = list[torch.Tensor]


class RepeatedInputs(Exception):
    """The problem's get_inputs() gave two trials the same values: trials could not tell a
    kernel that ignores its inputs from a right one."""


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


# Accuracy parity: a candidate's error against a float64 evaluation of the reference may be at
# most PARITY_FACTOR times the eager reference's own error against it, both norm-wise
# (||out - exact|| / ||exact|| over an output), the reference's floored at its dtype's rounding
# unit (half its epsilon: one rounding of the answer) so an exact reference does not punish a
# candidate that rounds once. The factor comes from measurements (benchmarks/parity.md):
# the writer's and the examples' kernels sit within a few times the reference, a GEMM on TF32
# operands (10 mantissa bits) hundreds of times over it.
PARITY_FACTOR = 16.0


@dataclass
class Parity:
    """The worst output's errors against the float64 evaluation (norm-wise, relative)."""

    candidate: float
    reference: float
    floor: float  # the reference dtype's rounding unit: the least error ever charged to it
    output: int = 0

    @property
    def ratio(self) -> float:
        allowed = max(self.reference, self.floor)
        return self.candidate / allowed if allowed else (0.0 if not self.candidate else math.inf)

    def merge(self, other: Parity) -> None:
        if other.ratio > self.ratio:
            self.candidate, self.reference = other.candidate, other.reference
            self.floor, self.output = other.floor, other.output


@dataclass
class CorrectnessReport:
    trials_passed: int = 0
    errors: ErrorStats = field(default_factory=ErrorStats)
    parity: Parity | None = None  # None: not measured (see parity_note)
    parity_note: str | None = None


def as_outputs(value: Any) -> Outputs:
    """Flatten a forward's return value into a list, keeping non-tensors for the type check."""
    return list(value) if isinstance(value, list | tuple) else [value]


CHUNK = 1 << 22  # elements compared at a time: the memory a comparison needs stays bounded


def compare(cand: Outputs, ref: Outputs, tol: float, chunk: int = CHUNK) -> ErrorStats:
    """Raise Mismatch unless every output matches in type, shape, dtype, device and value.

    Values are compared a slice of `chunk` elements at a time (float64 only within a slice), so
    the memory a comparison needs does not grow with the output: one pass for the reference's
    RMS over its finite values, one for |cand - ref| <= tol * (rms + |ref|) and for NaN/Inf in
    the same places."""
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
        stats.merge(_compare_values(i, c.reshape(-1), r.reshape(-1), tol, chunk, tuple(r.shape)))
    return stats


WHERE = 3  # failing elements named in a mismatch report


def _where(c: torch.Tensor, r: torch.Tensor, wrong: torch.Tensor, start: int,
           shape: tuple[int, ...], found: list[str]) -> None:
    """Name the first failing elements of a slice (index in the output's shape, got, expected),
    until the report holds WHERE of them: what a repair needs to see where a kernel goes wrong."""
    if len(found) >= WHERE:
        return
    for flat in torch.nonzero(wrong).flatten()[:WHERE - len(found)].tolist():
        index, rest = [], start + flat
        for size in reversed(shape):
            index.append(rest % size)
            rest //= size
        found.append(f"[{', '.join(map(str, reversed(index)))}] got {c[flat].item():.6g}, "
                     f"expected {r[flat].item():.6g}")


def _compare_values(i: int, c: torch.Tensor, r: torch.Tensor, tol: float, chunk: int,
                    shape: tuple[int, ...] = ()) -> ErrorStats:
    """One flattened output against the reference's, a slice at a time."""
    shape = shape or (r.numel(),)
    slices = [slice(s, s + chunk) for s in range(0, r.numel(), chunk)]
    found: list[str] = []
    if not r.is_floating_point():
        bad = 0
        for s in slices:
            wrong = c[s] != r[s]
            here = int(wrong.sum())
            bad += here
            if here:  # only a failing slice is searched for where: passing ones cost nothing more
                _where(c[s], r[s], wrong, s.start, shape, found)
        if bad:
            raise Mismatch("mismatch", f"output {i} {list(shape)}: {bad} of {r.numel()} elements "
                           f"differ; first at {'; '.join(found)}")
        return ErrorStats()
    squares, finite = 0.0, 0
    for s in slices:
        part = r[s].double()
        keep = torch.isfinite(part)
        squares += float(part[keep].square().sum())
        finite += int(keep.sum())
    rms = (squares / finite) ** 0.5 if finite else 0.0
    stats, bad, unwritten, misplaced = ErrorStats(), 0, 0, 0
    for s in slices:
        rp, cp = r[s].double(), c[s].double()
        ref_fin, cand_fin = torch.isfinite(rp), torch.isfinite(cp)
        lost = ref_fin & ~cand_fin
        lost_here = int(lost.sum())
        unwritten += lost_here
        if lost_here:
            _where(cp, rp, lost, s.start, shape, found)
        ref_nan = torch.isnan(rp)
        infinite = ~ref_fin & ~ref_nan
        misplaced += int((ref_nan != torch.isnan(cp)).sum()) + int((rp[infinite] != cp[infinite]).sum())
        diff = (cp[ref_fin] - rp[ref_fin]).abs()
        if diff.numel():
            rel = diff / (rms + rp[ref_fin].abs()).clamp_min(1e-30)
            stats.merge(ErrorStats(float(diff.max()), float(rel.max())))
            over_here = int((rel > tol).sum())
            bad += over_here
            if over_here and not unwritten and len(found) < WHERE:
                over = torch.zeros_like(ref_fin)
                over[ref_fin] = rel > tol
                _where(cp, rp, over, s.start, shape, found)
    if unwritten:
        raise Mismatch("nan_or_inf", f"output {i} {list(shape)}: {unwritten} elements are NaN/Inf "
                                     "where the reference is finite (unwritten or overflowed "
                                     f"memory); first at {'; '.join(found)}")
    if misplaced:
        raise Mismatch("nan_or_inf", f"output {i}: NaN/Inf positions differ from the reference")
    if bad:
        raise Mismatch("mismatch", f"output {i} {list(shape)}: {bad} of {r.numel()} elements "
                       f"exceed the tolerance (max abs err {stats.max_abs:.3g}, max rel err "
                       f"{stats.max_rel:.3g} > {tol:g}); first at {'; '.join(found)}")
    return stats


def accuracy(cand: Outputs, ref: Outputs, exact: Outputs, chunk: int = CHUNK) -> Parity | None:
    """The candidate's and the reference's norm-wise errors against the float64 evaluation, for
    the floating output where the candidate stands worst against the reference. Elements where
    any of the three is not finite are left out (the tolerance check judges those). Sums run a
    slice at a time, so the memory this needs stays bounded like compare's. None where no
    output is floating (integers are compared exactly)."""
    worst: Parity | None = None
    for i, (c, r, x) in enumerate(zip(cand, ref, exact, strict=True)):
        if not r.is_floating_point() or c.shape != r.shape or x.shape != r.shape:
            continue
        c, r, x = c.reshape(-1), r.reshape(-1), x.reshape(-1)
        unit = torch.finfo(r.dtype).eps / 2  # the dtype's rounding unit: one rounding's error
        cand_sq = ref_sq = exact_sq = 0.0
        for start in range(0, r.numel(), chunk):
            s = slice(start, start + chunk)
            xp, rp, cp = x[s].double(), r[s].double(), c[s].double()
            keep = torch.isfinite(xp) & torch.isfinite(rp) & torch.isfinite(cp)
            xp, rp, cp = xp[keep], rp[keep], cp[keep]
            cand_sq += float((cp - xp).square().sum())
            ref_sq += float((rp - xp).square().sum())
            exact_sq += float(xp.square().sum())
        scale = math.sqrt(exact_sq)
        if scale:
            here = Parity(math.sqrt(cand_sq) / scale, math.sqrt(ref_sq) / scale, unit, i)
        else:  # an all-zero answer: only an exact one matches it
            here = Parity(math.inf if cand_sq else 0.0, math.inf if ref_sq else 0.0, unit, i)
        if worst is None:
            worst = here
        else:
            worst.merge(here)
    return worst


def parity_mismatch(parity: Parity, factor: float, precision: str) -> Mismatch | None:
    """A Mismatch when the candidate's error passes `factor` times the reference's."""
    if parity.ratio <= factor:
        return None
    return Mismatch("precision_parity", f"output {parity.output} is less accurate than the "
                    f"{precision} reference: its error against a float64 evaluation is "
                    f"{parity.candidate:.3g} (norm-wise), {parity.ratio:.3g}x the reference's own "
                    f"{parity.reference:.3g} (floored at {parity.floor:.3g}); at most "
                    f"{factor:g}x is allowed. A kernel computing below the policy (TF32 or 16-bit "
                    "operands, a lossy approximation) fails this; 3xTF32 dots do not.")


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


def same(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x, y) if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
        else x == y for x, y in zip(a, b, strict=True))


# Trial t's floating inputs: get_inputs() mapped by TRANSFORMS[t % 5], where the reference stays
# finite on them: a sign flip, a scale and a shift, so inputs drawn from one side of zero
# (torch.rand) cannot hide a kernel that is right only there (a copy passing for ReLU).
TRANSFORMS: list[tuple[float, float]] = [(1.0, 0.0), (-1.0, 0.0), (1.25, -0.5), (1.0, 0.0),
                                         (-0.75, 0.25)]


def transform(inputs: list[Any], trial: int) -> list[Any]:
    scale, shift = TRANSFORMS[trial % len(TRANSFORMS)]
    if (scale, shift) == (1.0, 0.0):
        return inputs
    return [x * scale + shift if isinstance(x, torch.Tensor) and x.is_floating_point() else x
            for x in inputs]


def finite(outputs: Outputs) -> bool:
    return all(bool(torch.isfinite(o).all()) for o in outputs
               if isinstance(o, torch.Tensor) and o.is_floating_point())


def reinit_parameters(model: torch.nn.Module, seed: int) -> None:
    """Give every floating parameter and buffer seeded random values of its own scale and sign,
    so a kernel that ignores one (a LayerNorm without its weight and bias, whose defaults are
    ones and zeros) cannot match by luck. Non-negative tensors (variances) stay non-negative."""
    generator = torch.Generator().manual_seed(seed + 7919)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if not tensor.is_floating_point() or tensor.numel() == 0:
                continue
            noise = torch.rand(tensor.shape, generator=generator, dtype=torch.float64)
            values = tensor.detach().to("cpu", torch.float64)
            if bool((values >= 0).all()):
                level = float(values.mean()) or 1.0
                new = level * (0.5 + noise)
            else:
                spread = float(values.std()) if values.numel() > 1 else float(values.abs().mean())
                new = values + (noise - 0.5) * (spread or 1.0)
            tensor.copy_(new.to(tensor.dtype))


class Candidate(Protocol):
    """The candidate's process as the judge drives it (tools/worker.py's Remote)."""

    def load(self, name: str, inputs: list[Any], into: bool = False) -> list[int]: ...
    def call(self, names: list[str]) -> list[Outputs]: ...
    def each(self, names: list[str]) -> Iterator[Outputs]: ...
    def read(self, name: str) -> list[Any]: ...
    def drop(self) -> None: ...


def _print(outputs: Outputs) -> tuple[float, ...]:
    from kernelwright.tools.timing import fingerprint

    return tuple(float(x) for x in fingerprint(outputs))


@dataclass
class ParityCheck:
    """What accuracy parity needs: the reference evaluated in float64 on a trial's inputs (None
    where it cannot be), and the policy's name for the messages."""

    exact: Callable[[list[Any]], Outputs | None]
    precision: str = "fp32"
    factor: float = PARITY_FACTOR


def check(reference: Callable[..., Any], candidate: Candidate,
          make_inputs: Callable[[int], list[Any]], trials: int, tol: float,
          sequence_checks: int, parity: ParityCheck | None = None,
          report: CorrectnessReport | None = None) -> CorrectnessReport:
    """Run the trials and the sequence check; raise Mismatch or GuardViolation on failure.

    Each trial runs the candidate on a persistent input buffer (same data_ptr, new contents),
    then the reference on a clone, then the candidate again on fresh memory. That order catches
    results cached by pointer, candidates that mutate their inputs, constant outputs and outputs
    that were never written. Only fingerprints of earlier trials are kept (bounded memory).
    With `parity`, both of a trial's outputs are also held to the reference's accuracy against
    float64 (`accuracy`); the worst is in `report.parity`, also when a check fails."""
    report = report if report is not None else CorrectnessReport()
    deferred: Mismatch | None = None
    history: list[tuple[tuple[float, ...], list[tuple[tuple[float, ...], list[int]]]]] = []
    seen: dict[tuple[float, ...], int] = {}
    for trial in range(trials):
        pristine = make_inputs(trial)
        tensors = [x for x in pristine if isinstance(x, torch.Tensor)]
        if tensors:
            key = _print(tensors)
            if key in seen:
                raise RepeatedInputs(f"trials {seen[key] + 1} and {trial + 1} got the same input "
                                     "values")
            seen[key] = trial
        ptrs_first = candidate.load("buffer", pristine, into=True)
        (out_first,) = candidate.call(["buffer"])
        ref_in = clone_all(pristine)
        ref_out = as_outputs(reference(*ref_in))
        exact = parity.exact(pristine) if parity is not None else None
        mutated = same(ref_in, pristine) and not same(candidate.read("buffer"), pristine)
        del ref_in
        if mutated:
            raise GuardViolation([GuardFinding(rule=Rule.INPUT_MUTATION, message="the candidate "
                                               "wrote into its inputs; the reference does not")])
        # one candidate output alive at a time beside the reference's: compared, then only a
        # fingerprint of it is kept (the judge's memory stays a few times the problem's own)
        _check_types(out_first, ref_out)
        first = _print(out_first), _judged(out_first, ref_out, tol, exact, parity, report)
        del out_first
        ptrs_second = candidate.load("fresh", pristine)
        (out_second,) = candidate.call(["fresh"])
        _check_types(out_second, ref_out)
        second = _print(out_second), _judged(out_second, ref_out, tol, exact, parity, report)
        del out_second
        ref_print = _print(ref_out)
        del ref_out, exact
        calls = [(second[0], ptrs_second), (first[0], ptrs_first)]
        for old_ref, old_calls in history:
            if old_ref == ref_print:
                continue
            for (got, ptrs), (old_got, old_ptrs) in zip(calls, old_calls, strict=True):
                if got != old_got:
                    continue
                if ptrs == old_ptrs:
                    raise Mismatch("stale_output", "new values at the same data_ptr gave the old "
                                   "output: results are cached by pointer")
                raise Mismatch("constant_output", "the output did not change when the inputs "
                               "did: it does not depend on the inputs")
        failed = [r for r in (first[1], second[1]) if isinstance(r, Mismatch)]
        if failed:  # raised after all trials: a structural reason found later wins
            deferred = deferred or failed[0]
        else:
            for r in (first[1], second[1]):
                assert isinstance(r, ErrorStats)
                report.errors.merge(r)
            report.trials_passed += 1
        history.append((ref_print, calls))
    if deferred is not None:
        raise deferred
    _check_sequence(reference, candidate, make_inputs, sequence_checks, tol, report)
    return report


def _judged(cand: Outputs, ref: Outputs, tol: float, exact: Outputs | None,
            parity: ParityCheck | None, report: CorrectnessReport) -> ErrorStats | Mismatch:
    """The tolerance check, then parity (measured either way, so a verdict has both errors)."""
    try:
        stats: ErrorStats | Mismatch = compare(cand, ref, tol)
    except Mismatch as exc:
        stats = exc
    if exact is None or parity is None:
        return stats
    here = accuracy(cand, ref, exact)
    if here is None:
        return stats
    if report.parity is None:
        report.parity = here
    else:
        report.parity.merge(here)
    if isinstance(stats, Mismatch):
        return stats
    return parity_mismatch(here, parity.factor, parity.precision) or stats


def _check_types(cand: Outputs, ref: Outputs) -> None:
    if len(cand) != len(ref):
        raise Mismatch("output_count", f"returned {len(cand)} outputs, the reference {len(ref)}")


def _check_sequence(reference: Callable[..., Any], candidate: Candidate,
                    make_inputs: Callable[[int], list[Any]], count: int, tol: float,
                    report: CorrectnessReport) -> None:
    """Back-to-back candidate calls on different inputs, all checked afterwards."""
    names = [f"seq{i}" for i in range(count)]
    sets = [make_inputs(100 + i) for i in range(count)]
    for name, inputs in zip(names, sets, strict=True):
        candidate.load(name, inputs)
    for i, (out, inputs) in enumerate(zip(candidate.each(names), sets, strict=True)):
        try:
            report.errors.merge(compare(out, as_outputs(reference(*clone_all(inputs))), tol))
        except Mismatch as exc:
            raise Mismatch("skipped_work", f"call {i + 1} of {count} back-to-back calls was "
                           f"wrong ({exc}): work is skipped or batched across calls") from None
    candidate.drop()
