"""One kernel writer per kind, behind one registry.

A kind is a fusion group's shape of work (fuse.py names it): its Triton writer (a KernelWriter
subclass in this folder: the kernel's body, meta-parameters, launch and, where it splits, its
stages) and its launch configurations (a default and a search space from schedule.py). A new
kind is one writer file here and one line in KINDS; the C++ backends (emit_cpp.py) cover the
kinds whose writer says `cpp = True`. docs/kinds.md walks through adding one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kernelwright.core.results import Backend
from kernelwright.writer.ir import Group, Unsupported
from kernelwright.writer.kinds.attention import AttentionKernel
from kernelwright.writer.kinds.base import KernelWriter
from kernelwright.writer.kinds.extern import ExternCall
from kernelwright.writer.kinds.matmul import MatmulKernel
from kernelwright.writer.kinds.pointwise import PointwiseKernel
from kernelwright.writer.kinds.pool import PoolKernel
from kernelwright.writer.kinds.rows import RowKernel
from kernelwright.writer.kinds.transpose import TransposeKernel
from kernelwright.writer.schedule import (
    KernelConfig,
    attention_default,
    attention_safe,
    attention_space,
    cpp_config_space,
    cpp_default_config,
    cpp_describe,
    flat_default,
    flat_space,
    matmul_default,
    matmul_safe,
    matmul_space,
    rows_default,
    rows_safe,
    rows_space,
    transpose_default,
    transpose_space,
)


@dataclass(frozen=True)
class Kind:
    writer: type[KernelWriter]
    default: Callable[[Group], KernelConfig]  # where the refiner starts
    space: Callable[[Group], list[KernelConfig]]  # what it tries, most promising first
    claims: Callable[[Group], bool] | None = None  # a specialised kind: the groups (of the
    # kind fuse.py made) that it writes better; the Triton backend gives them to it
    safe: Callable[[Group], KernelConfig] | None = None  # a repair's fallback (else `default`)


def _none(group: Group) -> list[KernelConfig]:
    return []


KINDS: dict[str, Kind] = {
    "pointwise": Kind(PointwiseKernel, flat_default, flat_space),
    "pool": Kind(PoolKernel, flat_default, flat_space),
    "reduction": Kind(RowKernel, rows_default, rows_space, safe=rows_safe),
    "scan": Kind(RowKernel, rows_default, rows_space, safe=rows_safe),
    "matmul": Kind(MatmulKernel, matmul_default, matmul_space, safe=matmul_safe),
    "attention": Kind(AttentionKernel, attention_default, attention_space, safe=attention_safe),
    "extern": Kind(ExternCall, flat_default, _none),  # a vendor call: nothing to search
    "transpose": Kind(TransposeKernel, transpose_default, transpose_space, TransposeKernel.claims),
}


def classify(group: Group, backend: Backend = "triton") -> str:
    """The kind a group is written as: the first registered kind that claims it and whose
    writer covers the backend (the C++ writer covers kinds with `cpp`), else the kind fuse.py
    gave it."""
    return next((name for name, kind in KINDS.items() if kind.claims and kind.claims(group)
                 and (backend == "triton" or kind.writer.cpp)), group.kind)


def kind_of(group: Group) -> Kind:
    if group.kind not in KINDS:
        raise Unsupported([group.kind], "no kernel writer registered for this kind")
    return KINDS[group.kind]


def default_config(group: Group, backend: Backend = "triton") -> KernelConfig:
    """The configuration a group's kernel starts from."""
    if backend != "triton":
        return cpp_default_config(group, backend)
    return kind_of(group).default(group)


def safe_config(group: Group, backend: Backend = "triton") -> KernelConfig:
    """What a repair falls back to after a wrong answer: the kind's safest configuration."""
    if backend != "triton":
        return cpp_default_config(group, backend)
    kind = kind_of(group)
    return (kind.safe or kind.default)(group)


def config_space(group: Group, backend: Backend = "triton") -> list[KernelConfig]:
    """Alternatives for one kernel, most promising first (none for a vendor call)."""
    if backend != "triton":
        return cpp_config_space(group, backend)
    return kind_of(group).space(group)


def describe(group: Group, config: KernelConfig, backend: Backend = "triton") -> str:
    """One kernel's configuration in words."""
    if backend != "triton":
        return cpp_describe(group, config, backend)
    return kind_of(group).writer.describe(config)


__all__ = ["KINDS", "Kind", "KernelWriter", "classify", "config_space", "default_config", "describe",
           "kind_of", "safe_config"]
