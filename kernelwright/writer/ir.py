"""The offline writer's IR: a DAG of values with real shapes, built by lower.py.

Pointwise values name an op of writer/ops.py ("mul", "where"); each backend renders it.
Reductions and scans name their op and the real dims they consume.
Matmul values are GEMMs the writer tiles itself (`strict` mode); extern values are vendor
calls (cuBLAS, cuDNN) that `library` mode keeps. Either way what surrounds them is the writer's.
Everything is computed in fp32 inside kernels (integers and booleans keep their type) and cast
to the output dtype on store. A `Group` (fuse.py makes them) is one kernel's share of the graph.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

Kind = Literal["input", "const", "index", "pointwise", "reduce", "scan", "pool", "view",
               "matmul", "extern", "attention"]
REDUCE_OPS = {"sum", "max", "min", "prod", "argmax", "argmin", "m2"}  # m2: sum of squared
# deviations from the row's mean (a variance's numerator, in one pass: Welford per lane)
SCAN_OPS = {"cumsum", "cumprod"}

_ids = itertools.count()


@dataclass(eq=False)
class Value:
    """One tensor (or scalar) of the captured forward."""

    kind: Kind
    shape: tuple[int, ...]
    dtype: torch.dtype
    args: list[Value] = field(default_factory=list)
    op: str = ""  # pointwise: an op of writer/ops.py; reduce/scan: op name; pool: "max" | "avg";
    # matmul: "mm" | "bmm" (args: A [.., M, K], B [.., K, N]); extern (a vendor GEMM or
    # convolution, `library` mode only): "mm" | "bmm" | "addmm" (args: A, B, bias) | "conv";
    # view: "permute" | "reshape" | "slice" | "unfold"; attention: "" (args: q [.., M, D], k^T [.., D, N],
    # v [.., N, Dv])
    dims: tuple[int, ...] = ()  # reduce/scan: real dims of args[0] consumed; index: the one dim
    # whose position it is (a leaf: 0, 1, 2, ... along that dim, computed, never loaded)
    keepdim: bool = False
    scalar: Any = None  # const: a number, a Size (1/N) or an InitValue (a scale taken at run time)
    input_index: int = -1  # input: position among the graph's inputs
    attrs: dict[str, tuple[int, ...] | int | float | bool | None] = field(default_factory=dict)
    # pool, extern, slice (dim, start, step); attention: causal (key j is kept where
    # j <= i + causal; None: no causal mask), safe (a row masked throughout gives zeros)
    body: list[Value] = field(default_factory=list)  # attention: [scores, qk]: the pointwise
    # chain from the product qk = q @ k^T (a stand-in value) to the softmax's input
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
    size_names: dict = field(default_factory=dict)  # each input size's symbol -> its
    # launcher name ("in2_size0"), filled by lower.symbolic_sizes
    shape_env: object = None  # torch's record of the guards on those sizes

    def every_value(self) -> list[Value]:
        """Every value of the graph, an attention's score chain (its body) included, in a fixed
        order (inputs, then depth first from the outputs): two traces of one problem list
        their values alike."""
        out: list[Value] = []
        seen: set[int] = set()
        todo = list(reversed(self.inputs + self.outputs))
        while todo:
            v = todo.pop()
            if id(v) in seen:
                continue
            seen.add(id(v))
            out.append(v)
            todo += reversed(v.args + v.body)
        return out

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


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    return tuple(reversed(strides))


def reshape_strides(shape: tuple[int, ...], strides: tuple[int, ...], new_shape: tuple[int, ...]
                    ) -> tuple[int, ...] | None:
    """Strides of `new_shape` over the same memory as (shape, strides), or None when the
    reshape needs a copy. Runs of old dims that are contiguous with each other are split or
    merged into new dims whose sizes multiply to the same total."""
    shape, strides = tuple(shape), tuple(strides)
    if not shape:
        return contiguous_strides(new_shape)
    out = [0] * len(new_shape)
    j = len(new_shape) - 1
    base, old_total, new_total = strides[-1], 1, 1
    for d in range(len(shape) - 1, -1, -1):
        old_total *= shape[d]
        if d > 0 and (shape[d - 1] == 1 or strides[d - 1] == old_total * base):
            continue  # still one contiguous run
        while j >= 0 and (new_total < old_total or new_shape[j] == 1):
            out[j] = new_total * base
            new_total *= new_shape[j]
            j -= 1
        if new_total != old_total:
            return None
        if d > 0:
            base, old_total, new_total = strides[d - 1], 1, 1
    return tuple(out) if j < 0 else None


def view_layout(v: Value) -> tuple[tuple[int, ...], int]:
    """(strides, offset) in elements of a view (or tensor) over its base buffer, which is
    contiguous; Unsupported where a reshape would need a copy (lower.py copies those first)."""
    if v.kind != "view":
        return contiguous_strides(v.shape), 0
    strides, offset = view_layout(v.args[0])
    if v.op == "permute":
        return tuple(strides[d] for d in v.dims), offset
    if v.op == "unfold":  # dim d counts windows (step apart); a last dim walks one window
        d, step = int(v.attrs["dim"]), v.attrs["step"]  # type: ignore[arg-type]
        return strides[:d] + (strides[d] * step,) + strides[d + 1:] + (strides[d],), offset  # type: ignore[operator]
    if v.op == "slice":
        dim, step = int(v.attrs["dim"]), int(v.attrs["step"])  # type: ignore[arg-type]
        start: Any = v.attrs["start"]  # a size where a concatenation's part starts: not int()ed
        return (strides[:dim] + (strides[dim] * step,) + strides[dim + 1:],
                offset + start * strides[dim])
    new = reshape_strides(v.args[0].shape, strides, v.shape)
    if new is None:
        raise Unsupported(["reshape of a permuted tensor"])
    return new, offset


class Unsupported(Exception):
    """The writer cannot cover an op (named in `ops`) in the requested guard mode."""

    def __init__(self, ops: list[str], why: str = ""):
        super().__init__(f"ops the offline writer does not cover: {', '.join(sorted(set(ops)))}"
                         + (f" ({why})" if why else ""))
        self.ops = sorted(set(ops))


DMap = tuple[int | None, ...]


@dataclass
class Group:
    kind: str  # a kind of writer/kinds/ (KINDS): pointwise, reduction, scan, pool, matmul, ...
    shape: tuple[int, ...] = ()
    axes: tuple[int, ...] = ()
    values: list[Value] = field(default_factory=list)
    dmap: dict[int, DMap] = field(default_factory=dict)
    outputs: list[Value] = field(default_factory=list)

    def has(self, v: Value) -> bool:
        return v.id in self.dmap  # _add records every placed value here

    @property
    def rows(self) -> int:
        return math.prod(s for k, s in enumerate(self.shape) if k not in self.axes)

    @property
    def cols(self) -> int:
        return math.prod(self.shape[k] for k in self.axes)
