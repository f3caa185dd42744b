"""Backends: what a candidate is written in, where it runs, and how the harness builds, times
and guards it. docs/backends.md says how to add one.

- `triton`: Triton kernels on a GPU; on a machine without one, the Triton interpreter checks
  correctness and no time is reported.
- `cuda`: CUDA C++ built with torch.utils.cpp_extension.load_inline (`cuda_sources`); GPU only.
- `cpu`: C++ built with load_inline (`cpp_sources`), timed on the CPU with a wall clock, so the
  whole loop, refinement included, runs where there is no GPU.
"""

from __future__ import annotations

import os
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

    def prepare_worker(self, device: Device, source: str) -> None:
        """Before the candidate is imported in its worker process."""
        if self.name == "triton" and device == "cpu":
            os.environ["TRITON_INTERPRET"] = "1"
        if self.name == "triton":  # imported by the harness, before the runtime guard watches
            import triton
            import triton.language  # noqa: F401
        if "load_inline" in source:  # the harness's imports, not the candidate's file access
            import torch.utils.cpp_extension  # noqa: F401

    def check_kernels(self, jit_launched: bool, load_inline_kwargs: set[str] | None) -> str | None:
        """What is wrong with how the candidate builds its kernels for this backend, or None."""
        if not self.builds_with_load_inline:
            return None  # triton: a launched @triton.jit kernel (or inline CUDA) is checked apart
        if load_inline_kwargs is None:
            return f"the {self.name} backend builds C++ with load_inline; this source never calls it"
        if self.cuda_sources and "cuda_sources" not in load_inline_kwargs:
            return "the cuda backend builds CUDA C++: pass it to load_inline as cuda_sources"
        if not self.cuda_sources and "cuda_sources" in load_inline_kwargs:
            return "the cpu backend builds host C++ only: load_inline without cuda_sources"
        if jit_launched:
            return f"the {self.name} backend runs C++ kernels; this source launches Triton ones"
        return None


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
