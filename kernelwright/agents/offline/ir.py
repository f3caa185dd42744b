"""The offline writer's IR: a DAG of values with real shapes, built by lower.py.

Pointwise values carry a Triton expression template over their arguments ("{0} * {1}"), which
is all the emitter needs. Reductions and scans name their op and the real dims they consume.
Matmul values are GEMMs the writer tiles itself (`strict` mode); extern values are vendor
calls (cuBLAS, cuDNN) that `library` mode keeps. Either way what surrounds them is the writer's.
Everything is computed in fp32 inside kernels (integers and booleans keep their type) and cast
to the output dtype on store.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

import torch

Kind = Literal["input", "const", "pointwise", "reduce", "scan", "pool", "view", "matmul",
               "extern"]
REDUCE_OPS = {"sum", "max", "min", "prod", "argmax", "argmin"}
SCAN_OPS = {"cumsum", "cumprod"}

_ids = itertools.count()


@dataclass(eq=False)
class Value:
    """One tensor (or scalar) of the captured forward."""

    kind: Kind
    shape: tuple[int, ...]
    dtype: torch.dtype
    args: list[Value] = field(default_factory=list)
    op: str = ""  # pointwise: expression template; reduce/scan: op name; pool: "max" | "avg";
    # matmul: "mm" | "bmm" (args: A [.., M, K], B [.., K, N]); extern (a vendor GEMM or
    # convolution, `library` mode only): "mm" | "bmm" | "conv"
    dims: tuple[int, ...] = ()  # reduce/scan: real dims of args[0] consumed
    keepdim: bool = False
    scalar: float | int | bool | None = None  # const
    input_index: int = -1  # input: position among the graph's inputs
    attrs: dict[str, tuple[int, ...] | int | bool | None] = field(default_factory=dict)  # pool, extern
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass
class Graph:
    """The lowered forward: its inputs (parameters first, then forward arguments) and outputs."""

    inputs: list[Value]
    outputs: list[Value]
    input_names: list[str]  # parameter/buffer names ("norm.weight") or "arg0", "arg1", ...
    n_params: int

    def topo(self) -> list[Value]:
        """Every value reachable from the outputs, arguments before users."""
        order: list[Value] = []
        seen: set[int] = set()

        def visit(v: Value) -> None:
            if v.id in seen:
                return
            seen.add(v.id)
            for a in v.args:
                visit(a)
            order.append(v)

        for out in self.outputs:
            visit(out)
        return order


class Unsupported(Exception):
    """The writer cannot cover an op (named in `ops`) in the requested guard mode."""

    def __init__(self, ops: list[str], why: str = ""):
        super().__init__(f"ops the offline writer does not cover: {', '.join(sorted(set(ops)))}"
                         + (f" ({why})" if why else ""))
        self.ops = sorted(set(ops))
