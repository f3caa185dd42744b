"""The profiler role: a one-line diagnosis of an evaluated candidate for the next refinement.

Offline policy: the harness's kernel census and SOL analysis (tools/profile.py) already name
the bound, the fraction reached and extra launches; this reads them out.
"""

from __future__ import annotations

from kernelwright.tools.results import EvalResult


def offline_profile(result: EvalResult) -> str:
    if result.profile is not None and result.profile.diagnosis:
        return result.profile.diagnosis
    if result.runtime_us is None:
        return "not timed (no GPU): correctness only"
    if result.sol is not None and result.sol_fraction is not None:
        return f"{result.sol.bound}-bound, {result.sol_fraction:.2f} of the SOL floor"
    return f"{result.runtime_us:.1f} us"
