"""Backends: what a candidate is written in, where it runs, and how the harness builds, times
and guards it. docs/backends.md says how to add one.

- `triton`: Triton kernels on a GPU; on a machine without one, the Triton interpreter checks
  correctness and no time is reported.
- `cuda`: CUDA C++ built with torch.utils.cpp_extension.load_inline (`cuda_sources`); GPU only.
- `cpu`: C++ built with load_inline (`cpp_sources`), timed on the CPU with a wall clock, so the
  whole loop, refinement included, runs where there is no GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kernelwright.core.errors import KernelwrightError
from kernelwright.core.results import Backend

Device = Literal["cuda", "cpu"]


@dataclass(frozen=True)
class BackendSpec:
    name: Backend
    devices: tuple[Device, ...]  # where candidates can run, preferred first
    language: str  # what the coder writes, in words
    prompt: str  # the paragraph of the coder's prompt about the target
    builds_with_load_inline: bool
    cuda_sources: bool  # load_inline must be given cuda_sources (True) or must not (False)

    def device(self, choice: Literal["auto", "cuda", "cpu"], gpu_present: bool) -> Device:
        """The device a run uses; a clear error when the backend cannot run there."""
        if choice == "auto":
            usable = [d for d in self.devices if d == "cpu" or gpu_present]
            if not usable:
                raise KernelwrightError(f"backend '{self.name}' needs a CUDA GPU and torch sees "
                                        "none. Fix: run on a GPU machine, or use --backend cpu "
                                        "(C++ timed on the CPU) or triton (the interpreter).")
            return usable[0]
        if choice not in self.devices:
            raise KernelwrightError(f"backend '{self.name}' does not run on '{choice}' (it runs "
                                    f"on {', '.join(self.devices)}). Fix: use --device auto.")
        if choice == "cuda" and not gpu_present:
            raise KernelwrightError("device 'cuda' was asked for, but torch sees no CUDA device. "
                                    "Fix: use --device auto (or cpu for the Triton interpreter).")
        return choice

    def timed(self, device: Device) -> bool:
        """Whether timings on `device` mean anything (not under the Triton interpreter)."""
        return device == "cuda" or self.name == "cpu"

    def cpu_elements(self, interpreted_cap: int, timed_cap: int) -> int:
        """How far a problem shrinks on the CPU: the interpreter costs about a microsecond per
        element, so it gets the small cap; compiled C++ gets sizes that time in milliseconds."""
        return interpreted_cap if self.name == "triton" else timed_cap


LOAD_INLINE_RULES = (
    "Define the kernels in one C++ source string and build it once at import with "
    "torch.utils.cpp_extension.load_inline(name=..., {sources}, functions=[...]); name the "
    "functions kw_<something> and call them from ModelNew.forward with contiguous tensors. "
)
BACKENDS: dict[str, BackendSpec] = {
    "triton": BackendSpec(
        name="triton", devices=("cuda", "cpu"), language="Triton",
        prompt="Write the kernels in Triton (@triton.jit, launched as kernel[grid](...)).",
        builds_with_load_inline=False, cuda_sources=False),
    "cuda": BackendSpec(
        name="cuda", devices=("cuda",), language="CUDA C++ (load_inline)",
        prompt="Write the kernels in CUDA C++. " + LOAD_INLINE_RULES.format(
            sources="cpp_sources=<declarations>, cuda_sources=SOURCE") +
        "Launch on at::cuda::getCurrentCUDAStream().",
        builds_with_load_inline=True, cuda_sources=True),
    "cpu": BackendSpec(
        name="cpu", devices=("cpu",), language="C++ for the CPU (load_inline)",
        prompt="Write the kernels in C++ for the CPU. " + LOAD_INLINE_RULES.format(
            sources="cpp_sources=SOURCE, extra_cflags=['-O3']") +
        "Parallelise with at::parallel_for; no CUDA.",
        builds_with_load_inline=True, cuda_sources=False),
}


def get_backend(name: str) -> BackendSpec:
    if name not in BACKENDS:
        raise KernelwrightError(f"unknown backend '{name}'. Fix: use one of "
                                f"{', '.join(BACKENDS)} (docs/backends.md adds one).")
    return BACKENDS[name]
