"""Profile one call of a candidate with torch.profiler: which kernels ran, whose, how fast.

Structured for agents (a ProfileReport) and readable for people (its one-line diagnosis).
Coverage is the share of GPU time in the candidate's own kernels rather than library ones; a
marker kernel launched just before the call names the calling stream, so work on any other
stream (hidden from the timer) is reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from kernelwright.core.results import KernelStat, ProfileReport, SolAnalysis
from kernelwright.tools.correctness import as_outputs, clone_all


def profile_call(fn: Callable[..., Any], inputs: list[Any], own_names: set[str],
                 trace_path: str, vendor_streams_ok: bool = False) -> ProfileReport:
    """Run `fn` once under the profiler and list its kernels (the marker excluded)."""
    from torch.profiler import ProfilerActivity, profile

    marker = torch.empty(1, device="cuda")
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        marker.fill_(1.0)
        as_outputs(fn(*clone_all(inputs)))
        torch.cuda.synchronize()
    prof.export_chrome_trace(trace_path)
    with open(trace_path) as f:
        events = [e for e in json.load(f).get("traceEvents", [])
                  if e.get("cat") == "kernel" and e.get("ph") == "X"]
    events.sort(key=lambda e: e.get("ts", 0))
    return summarize_kernels(events, own_names, vendor_streams_ok)


def summarize_kernels(events: list[dict[str, Any]], own_names: set[str],
                      vendor_streams_ok: bool = False) -> ProfileReport:
    """Kernel table of one call from chrome-trace kernel events; the first is the marker.

    Kernels off the calling stream are listed in `side_streams` (the worker rejects them): their
    time could escape the events that time the call. With `vendor_streams_ok` (`library` mode)
    a vendor kernel is exempt when it ends before a later kernel of the calling stream starts:
    its work then lies inside the timed window (cuDNN runs some algorithms on internal streams
    and joins them back). The candidate's own kernels never are."""
    if not events:
        return ProfileReport()
    home = events[0].get("args", {}).get("stream")
    call = events[1:]
    stats: dict[str, KernelStat] = {}
    for e in call:
        name = e.get("name", "?")
        stat = stats.setdefault(name, KernelStat(name=name, calls=0, total_us=0.0,
                                                 own=_is_own(name, own_names)))
        stat.calls += 1
        stat.total_us += float(e.get("dur", 0))
    total = sum(s.total_us for s in stats.values())
    own = sum(s.total_us for s in stats.values() if s.own)
    on_home = [e for e in events if e.get("args", {}).get("stream") == home]

    def joined(e: dict[str, Any]) -> bool:
        end = float(e.get("ts", 0)) + float(e.get("dur", 0))
        return any(float(h.get("ts", 0)) >= end for h in on_home)

    side = sorted({f"{e.get('name', '?')[:60]} on stream {e.get('args', {}).get('stream')}"
                   for e in call if e.get("args", {}).get("stream") != home
                   and not (vendor_streams_ok and not _is_own(e.get("name", "?"), own_names)
                            and joined(e))})
    return ProfileReport(kernels=sorted(stats.values(), key=lambda s: -s.total_us),
                         gpu_time_us=total, launches=len(call),
                         own_kernel_fraction=own / total if total > 0 else None,
                         side_streams=side)


def diagnose(report: ProfileReport, sol: SolAnalysis | None, runtime_us: float | None
             ) -> ProfileReport:
    """Add achieved rates (SOL work over the measured time) and a one-line diagnosis."""
    update: dict[str, Any] = {}
    notes: list[str] = []
    if sol is not None and runtime_us:
        gbps = sol.bytes / runtime_us / 1e3
        tflops = sol.flops / runtime_us / 1e6
        bw_frac = gbps / sol.bandwidth_gbps
        charged = (sol.compute_floor_us / runtime_us) if sol.compute_floor_us else 0.0
        update.update(achieved_gbps=gbps, achieved_tflops=tflops, bandwidth_fraction=bw_frac,
                      compute_fraction=charged)
        if sol.bound == "memory":
            notes.append(f"memory bound at {bw_frac:.0%} of peak bandwidth ({gbps:.0f} GB/s)")
        else:
            notes.append(f"compute bound at {charged:.0%} of peak ({tflops:.1f} TFLOP/s)")
        if report.launches > sol.min_launches:
            notes.append(f"{report.launches} launches where {sol.min_launches} would do")
    if report.own_kernel_fraction is not None and report.own_kernel_fraction < 0.99:
        notes.append(f"{1 - report.own_kernel_fraction:.0%} of GPU time in library kernels")
    if runtime_us and report.gpu_time_us and report.gpu_time_us < 0.8 * runtime_us:
        idle = 1 - report.gpu_time_us / runtime_us
        notes.append(f"GPU idle {idle:.0%} of the call (launch or host overhead)")
    update["diagnosis"] = "; ".join(notes) or "no kernels recorded"
    return report.model_copy(update=update)


def _is_own(kernel_name: str, own_names: set[str]) -> bool:
    return any(name and name in kernel_name for name in own_names)
