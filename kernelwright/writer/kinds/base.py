"""The base of every kind's Triton kernel writer: addressing, loads and stores, the pointwise
values of a group, and the interface a kind fills in (its body, meta-parameters and launch).

A kernel is 1-D (`r` indexes the flattened domain) or 2-D (`r` the rows, `c` the reduced
columns, as a [BLOCK_R, BLOCK_C] tile); a kind says which with `two_d`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from kernelwright.writer.fuse import leaf_map, view_base
from kernelwright.writer.ir import DMap, Graph, Group, Unsupported, Value, contiguous_strides, view_layout
from kernelwright.writer.ops import OPS, triton_literal
from kernelwright.writer.schedule import KernelConfig, matmul_dims
from kernelwright.writer.sizes import size_args

StageName = Literal["whole", "partial", "combine", "pack_a", "pack_b"]


@dataclass(frozen=True)
class Stage:
    """One kernel of a group: the whole group, one half of a split, or a GEMM operand's K-major
    copy (own config and grid)."""

    name: StageName
    config: KernelConfig
    grid: str = ""


PROGRAM_ID = re.compile(r"tl\.program_id\(\d\)")
SIZE = re.compile(r"in\d+_size\d+")
WIDE = 1 << 31  # elements of a tensor past which 32-bit offsets overflow

NEUTRAL = {"sum": "0.0", "m2": "0.0", "prod": "1.0", "max": '-float("inf")', "min": 'float("inf")',
           "argmax": '-float("inf")', "argmin": 'float("inf")'}
TL_DTYPE = {torch.float32: "tl.float32", torch.int64: "tl.int64", torch.int32: "tl.int32",
            torch.bool: "tl.int1"}


def view_strides(v: Value) -> tuple[int, ...]:
    """Strides of a view (or tensor) over its base buffer, which is contiguous."""
    return view_layout(v)[0]


def with_offset(pointer: str, v: Value) -> str:
    """The pointer to where view `v` starts in its buffer (a slice starts inside it)."""
    offset = view_layout(v)[1]
    return f"({pointer} + {offset})" if offset else pointer


def index_expr(var: str, sizes: list[int], strides: list[int]) -> str:
    """Offset of mixed-radix index `var` (sizes outer to inner) under `strides`."""
    merged: list[list[int]] = []
    for size, stride in zip(sizes, strides, strict=True):
        if size == 1:
            continue
        if merged and merged[-1][1] == stride * size:
            merged[-1] = [merged[-1][0] * size, stride]
        else:
            merged.append([size, stride])
    terms = []
    for i, (size, stride) in enumerate(merged):
        if stride == 0:
            continue
        inner = math.prod(s for s, _ in merged[i + 1:])
        q = var if inner == 1 else f"({var} // {inner})"
        if i > 0:
            q = f"({q} % {size})"
        terms.append(q if stride == 1 else f"{q} * {stride}")
    return " + ".join(terms)


class KernelWriter:
    """Writes the kernel of one group; leaves become pointer arguments. A kind subclasses it
    (writer/kinds/__init__.py registers each)."""

    two_d: ClassVar[bool] = False
    cpp: ClassVar[bool] = False  # the C++ writer (emit_cpp.py) covers this kind too
    vendor: ClassVar[bool] = False  # a vendor call, not a kernel of ours

    def __init__(self, group: Group, name: str, config: KernelConfig, pointer_of: dict[int, str],
                 stage: StageName = "whole", grid: str = ""):
        self.g, self.name, self.cfg, self.stage, self.grid = group, name, config, stage, grid
        self.pointer_of = pointer_of  # buffer value id -> pointer argument name
        self.params: list[str] = []  # pointer arguments in order, then the sizes the body uses
        self.rows_dims = [k for k in range(len(group.shape)) if k not in group.axes]
        self.col_dims = list(group.axes)
        self.lines: list[str] = []
        self.helpers: set[str] = set()
        self.wide = False  # 64-bit offsets: some tensor of the graph has 2^31 elements or more

    @classmethod
    def describe(cls, config: KernelConfig) -> str:
        """A configuration of this kind's kernel in words."""
        return config.describe()

    # addressing --------------------------------------------------------------------------
    # addressing --------------------------------------------------------------------------
    def pointer(self, buffer: Value) -> str:
        name = self.pointer_of[buffer.id]
        if name not in self.params:
            self.params.append(name)
        return name

    def offset(self, shape: tuple[int, ...], strides: tuple[int, ...], dmap: DMap
               ) -> tuple[str, str]:
        """(offset expression, mask name) of a tensor whose dims map onto the domain."""
        per_dim = {k: 0 for k in range(len(self.g.shape))}
        for d, k in enumerate(dmap):
            if k is not None and shape[d] > 1:
                per_dim[k] = strides[d]
        rows = index_expr("r", [self.g.shape[k] for k in self.rows_dims],
                          [per_dim[k] for k in self.rows_dims])
        cols = index_expr("c", [self.g.shape[k] for k in self.col_dims],
                          [per_dim[k] for k in self.col_dims]) if self.two_d else ""
        mask = "mask" if rows and cols else "rmask" if rows else "cmask" if cols else ""
        return " + ".join(t for t in (rows, cols) if t) or "0", mask

    def position(self, shape: tuple[int, ...], dim: int, dmap: DMap) -> str:
        """An element's index along `dim` of a tensor of `shape` read through `dmap`: the offset
        of a tensor strided 1 along that dim and 0 along the others."""
        return self.offset(shape, tuple(int(k == dim) for k in range(len(shape))), dmap)[0]

    def window(self, leaf: Value, dmap: DMap) -> str:
        """A concatenation's part is read through a window (lower.py `_cat`): the condition
        that the element lies in the part's span ("" for any other leaf)."""
        if leaf.kind != "view" or "window" not in leaf.attrs:
            return ""
        d = int(leaf.attrs["dim"])  # type: ignore[arg-type]
        lo = -leaf.attrs["start"]  # type: ignore[operator]
        at = self.position(leaf.shape, d, dmap)
        return f"(({at}) >= {lo}) & (({at}) < {lo + leaf.attrs['window']})"  # type: ignore[operator]

    def load(self, leaf: Value, dmap: DMap) -> str:
        buffer = view_base(leaf)
        off, mask = self.offset(leaf.shape, view_strides(leaf), dmap)
        window = self.window(leaf, dmap)
        if window:
            mask = f"{mask} & {window}" if mask else window
        ptr = with_offset(self.pointer(buffer), leaf)
        cast = ".to(tl.float32)" if leaf.dtype.is_floating_point else ""
        if not mask:
            return f"tl.load({ptr}){cast}"
        return f"tl.load({ptr} + {off}, mask={mask}, other=0){cast}"

    # values ------------------------------------------------------------------------------
    # values ------------------------------------------------------------------------------
    def emit(self, v: Value, env: dict[object, str], indent: int, user_map: DMap | None = None,
             user_shape: tuple[int, ...] = ()) -> str:
        """Name of `v` in the current block, emitting what it needs first."""
        pad = "    " * indent
        if v.kind == "const":
            return self.literal(v.scalar)
        if not self.g.has(v):  # a leaf: input, view or a buffer from an earlier kernel
            lmap = leaf_map(v.shape, user_shape, user_map or ())
            if lmap is None:
                raise Unsupported([f"broadcast of {v.shape} to {user_shape}"])
            key = ("leaf", v.id, lmap)
            if key not in env:
                env[key] = f"x{v.id}_{len(env)}"
                self.lines.append(pad + self.define_leaf(env[key], v, lmap))
            return env[key]
        if v.id in env:
            return env[v.id]
        dmap = self.g.dmap[v.id]
        if v.kind == "pointwise":
            args = [self.emit(a, env, indent, dmap, v.shape) for a in v.args]
            env[v.id] = f"v{v.id}"
            self.lines.append(pad + self.define_value(v, args))
            return env[v.id]
        return self.emit_computed(v, env, indent)

    def emit_computed(self, v: Value, env: dict[object, str], indent: int) -> str:
        """A value of the kind's own (a pool window): computed by the kind's writer."""
        raise AssertionError(f"{v.kind} {v.op} must be computed by its pass")

    def define_leaf(self, name: str, leaf: Value, lmap: DMap) -> str:
        if leaf.kind == "index":  # a position: the offset of a tensor strided along that dim
            return f"{name} = {self.position(leaf.shape, leaf.dims[0], lmap)}"
        return f"{name} = {self.load(leaf, lmap)}"

    literal = staticmethod(triton_literal)

    def define_value(self, v: Value, args: list[str]) -> str:
        expr = OPS[v.op].triton.format(*args)
        if v.dtype.is_floating_point and any(a.kind == "const" and isinstance(a.scalar, int)
                                             for a in v.args):
            expr = f"({expr}).to(tl.float32)"
        elif v.dtype in (torch.int64, torch.int32) and any(a.dtype.is_floating_point for a in v.args):
            expr = f"({expr}).to({TL_DTYPE[v.dtype]})"  # a float made an integer: truncated
        return f"v{v.id} = {expr}"

    def store(self, v: Value, name: str, indent: int) -> None:
        ptr = self.pointer(v)
        off, mask = self.offset(v.shape, contiguous_strides(v.shape), self.g.dmap[v.id])
        pad = "    " * indent
        dtype = f"{ptr}.dtype.element_ty"
        if not mask:  # one element (a 0-d result): the first row stores it
            off, mask = "0 * r", "r < 1"
        off, mask = self.store_at(off, mask)
        self.lines.append(f"{pad}tl.store({ptr} + {off}, {name}.to({dtype}), mask={mask})")

    def store_at(self, off: str, mask: str) -> tuple[str, str]:
        """Where a store lands (offset, mask); a GEMM's tile overrides it."""
        return off, mask

    # the kernel --------------------------------------------------------------------------
    def write(self, precision: str = "fp32") -> list[str]:
        """The @triton.jit kernel: pointer arguments, then the kind's constexpr meta-parameters."""
        body = self.body(precision)
        self.params += [a for a in size_args("\n".join(body)) if a not in self.params]
        if self.wide:  # offsets past 2^31: program ids and sizes in int64, all index math follows
            body = [PROGRAM_ID.sub(r"\g<0>.to(tl.int64)", line) for line in body]
            body = [f"    {a} = {a}.to(tl.int64)" for a in self.params if SIZE.fullmatch(a)] + body
        sig = ", ".join(self.params + [f"{m}: tl.constexpr" for m in self.meta(precision)])
        return ["@triton.jit", f"def {self.name}({sig}):"] + body

    def body(self, precision: str) -> list[str]:
        raise NotImplementedError

    def meta(self, precision: str) -> list[str]:
        raise NotImplementedError

    # the launch ----------------------------------------------------------------------------
    @classmethod
    def stages(cls, g: Group, cfg: KernelConfig) -> list[Stage]:
        """The kernels one group launches: one, or a split's partial and combine kernels."""
        if cfg.split > 1:
            raise ValueError(f"a {g.kind} group cannot be split")
        return [Stage("whole", cfg)]

    def partials(self) -> list[tuple[int, str]]:
        """A split's partial buffers: (key in pointer_of, allocation in the launcher)."""
        return []

    def launch(self, precision: str) -> str:
        """The launcher's line that runs this kernel."""
        raise NotImplementedError

    def args(self) -> str:
        """The launcher's tensors, in the order of the kernel's pointer arguments."""
        return ", ".join(p.removesuffix("_ptr") for p in self.params)

    def dot_options(self, precision: str) -> str:
        """The launch options of a kernel with tl.dot: 16-bit dots widened to fp32 under the
        interpreter (on the CPU), warps and pipeline stages."""
        widen = (f"WIDEN={self.args().split(',')[0]}.device.type == 'cpu', "
                 if precision in {"bf16", "fp16"} else "")
        return f"{widen}num_warps={self.cfg.num_warps}, num_stages={self.cfg.num_stages})"

    def cost(self, graph: Graph) -> str:
        """The comment above the kernel: bytes read and written, FLOPs."""
        read = sum(v.numel * v.dtype.itemsize for v in graph.inputs
                   if f"in{v.input_index}_ptr" in self.params)
        written = sum(v.numel * 4 for v in self.g.outputs)
        flops = sum(math.prod(self.g.shape) * (2 * matmul_dims(self.g)[3] if v.kind == "matmul" else 1)
                    for v in self.g.values if v.kind != "pool")
        return f"cost: reads about {read} B, writes {written} B, about {flops} FLOPs"


def dot_lines(x: str, y: str, acc: str, precision: str, dot: str = "ieee") -> list[str]:
    """`acc += x @ y` inside a loop, as the precision policy says: fp32 full-precision dots
    (`dot`: "ieee" FMA or "tf32x3" tensor-core products, equally accurate), tf32 TF32,
    bf16/fp16 16-bit operands; always accumulating in fp32."""
    cast = {"bf16": ".to(tl.bfloat16)", "fp16": ".to(tl.float16)"}.get(precision, "")
    if not cast:
        mode = {"fp32": f', input_precision="{dot}"', "tf32": ', input_precision="tf32"'}.get(
            precision, "")
        return [f"        {acc} = tl.dot({x}, {y}, {acc}{mode})"]
    return ["        if WIDEN:  # the interpreter's 16-bit dot is wrong; fp32 products match",
            f"            {acc} = tl.dot({x}.to(tl.float32), {y}.to(tl.float32), {acc}, "
            'input_precision="ieee")',
            "        else:",
            f"            {acc} = tl.dot({x}{cast}, {y}{cast}, {acc})"]


def tile_mask(rows: str, cols: str) -> str:
    """The mask of a 2-D tile from its row and column conditions ("" where a side divides)."""
    return " & ".join(t for t in (rows and f"{rows}[:, None]", cols and f"{cols}[None, :]") if t)


PROD_COMBINE = '''@triton.jit
def _prod_combine(a, b):
    return a * b
'''


def tensor_expr(v: Value) -> str:
    """The launcher's name for `v`: a buffer, an input, or a view of one."""
    if v.kind == "input":
        return f"in{v.input_index}"
    if v.kind != "view":
        return f"buf{v.id}"
    base = tensor_expr(v.args[0])
    if v.op == "permute":
        return f"{base}.permute{tuple(v.dims)!r}"
    if v.op == "slice":
        dim, start, step = (v.attrs[k] for k in ("dim", "start", "step"))
        return f"{base}[{':, ' * int(dim)}{start}:{start + v.shape[dim] * step}:{step}]"  # type: ignore
    return f"{base}.reshape{tuple(v.shape)!r}"
