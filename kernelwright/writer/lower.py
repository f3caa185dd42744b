"""Lower the captured aten graph to the IR; composites become pointwise ops and reductions.

Each aten op maps to a rule below. Composite ops (softmax, layer norm, variance, ...) are
decomposed here, in the form a row kernel computes them: statistics in fp32, two passes where
the textbook formula needs them. Attention (two batched GEMMs around a softmax, found by
attention.py) becomes one attention value, whatever the guard mode. GEMMs (mm, bmm, addmm)
and plain 2-d convolutions (an implicit GEMM) become matmul values the writer tiles itself;
in `library` mode GEMMs and convolutions become extern values (vendor calls) instead. Either
way their bias, alpha and beta become pointwise ops that fuse after them. Ops without a rule
raise Unsupported with their names.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import sympy
import torch
from torch.fx import Node

from kernelwright.writer import attention
from kernelwright.writer.capture import Captured
from kernelwright.writer.ir import Graph, Kind, Unsupported, Value, reshape_strides, view_layout
from kernelwright.writer.ops import OPS
from kernelwright.writer.sizes import ceil_div, simplified, wrap

F32 = torch.float32


class Builder:
    """Makes IR values; shapes follow torch broadcasting."""

    def const(self, x: float | int | bool) -> Value:
        dtype = torch.bool if isinstance(x, bool) else torch.int64 if isinstance(x, int) else F32
        return Value("const", (), dtype, scalar=x)

    def lift(self, x: Any) -> Value:
        return x if isinstance(x, Value) else self.const(x)

    def pw(self, op: str, *args: Any) -> Value:
        """The pointwise op `op` (writer/ops.py) of `args` (values or Python scalars)."""
        if op not in OPS or OPS[op].arity != len(args):
            raise ValueError(f"pointwise op {op!r} of {len(args)} argument(s) is not in OPS")
        vals = [self.lift(a) for a in args]
        shape = tuple(torch.broadcast_shapes(*[v.shape for v in vals]))
        data = vals[1:] if op == "where" else vals  # a where's condition is not its data
        if OPS[op].logical:
            dtype = torch.bool
        else:
            dtype = F32 if any(v.dtype.is_floating_point for v in data) else data[0].dtype
        return Value("pointwise", shape, dtype, vals, op=op)

    def reduce(self, op: str, x: Value, dims: list[int] | tuple[int, ...] | None,
               keepdim: bool) -> Value:
        dims = _norm_dims(dims, len(x.shape))
        shape = tuple(1 if d in dims else s for d, s in enumerate(x.shape)) if keepdim else \
            tuple(s for d, s in enumerate(x.shape) if d not in dims)
        dtype = torch.int64 if op.startswith("arg") else F32
        return Value("reduce", shape, dtype, [x], op=op, dims=tuple(dims), keepdim=keepdim)

    def count(self, x: Value, dims: tuple[int, ...] | list[int] | None) -> int:
        return math.prod(x.shape[d] for d in _norm_dims(dims, len(x.shape)))

    # composites -------------------------------------------------------------------------
    def mean(self, x: Value, dims: Any, keepdim: bool) -> Value:
        return self.pw("mul", self.reduce("sum", x, dims, keepdim), 1.0 / self.count(x, dims))

    def var(self, x: Value, dims: Any, correction: float, keepdim: bool) -> Value:
        """The squared deviations' sum in the same pass as any mean of x (reduce "m2"), not
        after it: a looped norm reads its rows twice, not three times."""
        ss = self.reduce("m2", x, dims, keepdim)
        return self.pw("mul", ss, 1.0 / max(self.count(x, dims) - correction, 0))

    def tanh(self, x: Value) -> Value:
        """1 - 2 / (exp(2x) + 1): exact at both ends, where exp overflows or vanishes."""
        e = self.pw("add", self.pw("exp", self.pw("mul", 2.0, x)), 1.0)
        return self.pw("sub", 1.0, self.pw("div", 2.0, e))

    def softplus(self, x: Value, beta: float = 1.0, threshold: float = 20.0) -> Value:
        bx = self.pw("mul", x, beta)
        soft = self.pw("div", self.pw("log", self.pw("add", 1.0, self.pw("exp", bx))), beta)
        return self.pw("where", self.pw("gt", bx, threshold), x, soft)

    def square(self, x: Value) -> Value:
        return self.pw("mul", x, x)

    def softmax(self, x: Value, dim: int, log: bool, safe: bool = False) -> Value:
        """`safe`: a row that is -inf throughout gives zeros (torch's _safe_softmax)."""
        top = self.reduce("max", x, [dim], True)
        shifted = self.pw("sub", x, top)
        total = self.reduce("sum", self.pw("exp", shifted), [dim], True)
        if log:
            return self.pw("sub", shifted, self.pw("log", total))
        p = self.pw("div", self.pw("exp", shifted), total)
        if safe:
            return self.pw("where", self.pw("eq", top, -math.inf), 0.0, p)
        return p

    def norm_affine(self, x: Value, dims: list[int], eps: float, weight: Any, bias: Any
                    ) -> tuple[Value, Value, Value]:
        mean = self.mean(x, dims, True)
        centered = self.pw("sub", x, mean)
        var = self.reduce("m2", x, dims, True)
        rstd = self.pw("rsqrt", self.pw("add", self.pw("mul", var, 1.0 / self.count(x, dims)), eps))
        return self.affine(self.pw("mul", centered, rstd), weight, bias), mean, rstd

    def affine(self, y: Value, weight: Any, bias: Any) -> Value:
        if weight is not None:
            y = self.pw("mul", y, weight)
        if bias is not None:
            y = self.pw("add", y, bias)
        return y


def _norm_dims(dims: Any, rank: int) -> tuple[int, ...]:
    if dims is None or (isinstance(dims, list | tuple) and len(dims) == 0):
        return tuple(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    return tuple(sorted(d % rank if rank else 0 for d in dims))


# aten ops that are one IR op of the same name (writer/ops.py), and those that compose a few.
SAME = {"neg", "abs", "sigmoid", "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "erf",
        "floor", "ceil", "maximum", "minimum", "mul", "eq", "ne", "lt", "le", "gt", "ge", "where",
        "remainder"}
SIMPLE: dict[str, Callable[..., Value]] = {
    "relu": lambda b, x: b.pw("maximum", x, 0.0),
    "reciprocal": lambda b, x: b.pw("div", 1.0, x),
    "log1p": lambda b, x: b.pw("log", b.pw("add", 1.0, x)),
    "expm1": lambda b, x: b.pw("sub", b.pw("exp", x), 1.0),
    "square": lambda b, x: b.square(x),
    "silu": lambda b, x: b.pw("mul", x, b.pw("sigmoid", x)),
    "xlogy": lambda b, x, y: b.pw("where", b.pw("eq", x, 0), 0.0, b.pw("mul", x, b.pw("log", y))),
    "hardswish": lambda b, x: b.pw("mul", b.pw("mul", x, _relu6(b, b.pw("add", x, 3.0))), 1.0 / 6.0),
    "hardsigmoid": lambda b, x: b.pw("mul", _relu6(b, b.pw("add", x, 3.0)), 1.0 / 6.0),
    "hardshrink": lambda b, x, lambd=0.5: b.pw("where", b.pw("gt", b.pw("abs", x), lambd), x, 0.0),
    "sign": lambda b, x: b.pw("where", b.pw("gt", x, 0), 1.0,
                              b.pw("where", b.pw("lt", x, 0), -1.0, 0.0)),
    "logical_not": lambda b, x: b.pw("not", x),
    "bitwise_not": lambda b, x: b.pw("not", x),
    "logical_and": lambda b, x, y: b.pw("and", x, y),
    "logical_or": lambda b, x, y: b.pw("or", x, y),
}


def _relu6(b: Builder, x: Value) -> Value:
    return b.pw("minimum", b.pw("maximum", x, 0.0), 6.0)


IDENTITY = {"clone", "alias", "detach", "lift_fresh_copy", "_to_copy", "contiguous", "copy",
            "dropout"}
_MISSING = object()
VIEWS = {"view", "_unsafe_view", "reshape", "unsqueeze", "squeeze", "flatten", "permute",
         "transpose", "t", "expand", "unfold"}


def lower(captured: Captured, library: bool = False) -> Graph:
    """The IR of a captured forward, or Unsupported naming every op without a rule.
    `library`: keep GEMMs and convolutions as vendor calls (the `library` guard mode)."""
    b = Builder()
    env: dict[Node, Any] = {}
    inputs: list[Value] = []
    missing: list[str] = []
    outputs: list[Value] = []
    fused = attention.find(captured.graph.graph)
    bypass = {k: v for m in fused.values() for k, v in m.bypass.items()}
    dead = {n for m in fused.values() for n in m.dead}
    for node in captured.graph.graph.nodes:
        if node.op == "placeholder":
            val = node.meta["val"]
            v = Value("input", tuple(val.shape), val.dtype, input_index=len(inputs))
            inputs.append(v)
            env[node] = v
        elif node.op == "call_function" and isinstance(node.meta.get("val"), SYMBOLIC):
            env[node] = node.meta["val"]  # a size computed from sizes (x.size(0) * 2)
        elif node.op == "call_function" and (not node.users or node in dead):
            if _lost_update(node):
                missing.append(getattr(node.target, "overloadpacket", node.target).__name__)
            continue  # dead: an unused allocation, an in-place update of running statistics,
            # or a causal mask that the attention kernel computes from indices
        elif node in bypass:  # the causal mask's application: the kernel applies it
            env[node] = env[bypass[node]]
        elif node in fused:
            env[node] = _attention(fused[node], env)
        elif node.op == "call_function":
            args = [_resolve(a, env) for a in node.args]
            kwargs = {k: _resolve(a, env) for k, a in node.kwargs.items()}
            if any(a is _MISSING for a in args):  # downstream of an op already reported
                env[node] = _MISSING
                continue
            if node.target is operator.getitem:
                env[node] = args[0][args[1]]
                continue
            name = getattr(node.target, "overloadpacket", node.target).__name__
            if _functional_in_place(node, name):  # x.clamp_min_(eps) on a value read nowhere else
                name = name[:-1]
            try:
                env[node] = _lower_op(b, name, args, kwargs, node.meta.get("val"), library)
            except Unsupported as exc:
                missing += exc.ops
                env[node] = _MISSING
        elif node.op == "output":
            flat = node.args[0] if isinstance(node.args[0], list | tuple) else [node.args[0]]
            # an output the launcher cannot return as a view (a negative stride, an unfold) is
            # copied by a kernel
            outputs = [Value("pointwise", env[n].shape, env[n].dtype, [env[n]], op="copy")
                       if env[n] is not _MISSING and _unviewable(env[n]) else env[n] for n in flat]
        elif node.op == "get_attr":
            missing.append(f"get_attr:{node.target}")
    if missing:
        raise Unsupported(missing)
    names = captured.param_names + [f"arg{i}" for i in range(captured.n_args)]
    graph = Graph(inputs=inputs, outputs=outputs, input_names=names,
                  n_params=len(captured.param_names))
    symbolic_sizes(graph)
    return graph


def _functional_in_place(node: torch.fx.Node, name: str) -> bool:
    """An in-place op (`clamp_min_`, `x += pos`) may be lowered as its functional form when the
    tensor it updates has no other reader (a size query reads no values): nothing can see the
    value from before the update."""
    base = name[:-1]
    target = node.args[0] if node.args else None
    if not (name.endswith("_") and not name.startswith("_") and isinstance(target, torch.fx.Node)
            and (base in RULES or base in SAME or base in SIMPLE)):
        return False
    readers = [u for u in target.users
               if not getattr(getattr(u.target, "overloadpacket", u.target), "__name__", "")
               .startswith("sym_")]
    return readers == [node]


def _lost_update(node: torch.fx.Node) -> bool:
    """An unused in-place update of a computed value that something else reads (through a view
    taken before it): dropping it would hide the update from that reader. (Updates of inputs and
    buffers, such as a norm's running statistics, change nothing the forward returns.)"""
    name = getattr(getattr(node.target, "overloadpacket", node.target), "__name__", "")
    target = node.args[0] if node.args else None
    return name.endswith("_") and not name.startswith("_") and isinstance(target, torch.fx.Node) \
        and target.op == "call_function" and any(u is not node for u in target.users)


def _unviewable(v: Value) -> bool:
    """A view with a negative stride or an unfold somewhere along its chain."""
    return v.kind == "view" and ((v.op == "slice" and v.attrs["step"] == -1) or v.op == "unfold"
                                 or _unviewable(v.args[0]))


SYMBOLIC = int | float | torch.SymInt | torch.SymFloat | torch.SymBool


def symbolic_sizes(graph: Graph) -> None:
    """Name each input size after where the launcher reads it (`in2_size0`: input 2's first
    dim) and make every size of the graph a `Size` over those names."""
    names = graph.size_names
    for v in graph.inputs:
        for d, s in enumerate(v.shape):
            if isinstance(s, torch.SymInt):
                expr = simplified(s)
                graph.shape_env = s.node.shape_env
                if isinstance(expr, sympy.Symbol) and expr not in names:
                    names[expr] = f"in{v.input_index}_size{d}"
    for u in graph.every_value():
        u.shape = tuple(wrap(s, names) for s in u.shape)
        u.scalar = wrap(u.scalar, names)
        u.attrs = {k: tuple(wrap(x, names) for x in a) if isinstance(a, tuple) else wrap(a, names)
                   for k, a in u.attrs.items()}


def _attention(m: attention.Match, env: dict[Node, Any]) -> Any:
    """One value for softmax(scores(q @ k^T)) @ v; what the score chain computes (scale,
    masks) is its body, written into the fused kernel."""
    parts = [env[n] for n in (m.q, m.k, m.v, m.scores, m.qk)]
    if any(p is _MISSING for p in parts):
        return _MISSING
    q, kt, v, scores, qk = parts
    attrs: dict[str, Any] = dict(causal=m.causal, safe=m.safe, scale=m.scale,
                                 heads_last=m.heads_last)
    if m.heads_last:  # stored [B, M, H, Dv]; the graph sees [B, H, M, Dv], and so does the
        b, h, rows, _ = q.shape  # view of the GEMM's 3-d output that follows (its only user)
        stored = Value("attention", (b, rows, h, v.shape[-1]), F32, [q, kt, v], body=[scores, qk],
                       attrs=attrs)
        return Value("view", (b, h, rows, v.shape[-1]), F32, [stored], op="permute",
                     dims=(0, 2, 1, 3))
    att = Value("attention", (*q.shape[:-1], v.shape[-1]), F32, [q, kt, v], body=[scores, qk],
                attrs=attrs)
    shape = attention.shape(m.out)
    return att if att.shape == shape else Value("view", shape, F32, [att], op="reshape")


def _resolve(a: Any, env: dict[Node, Any]) -> Any:
    if isinstance(a, Node):
        return env[a]
    if isinstance(a, list | tuple):
        return type(a)(_resolve(x, env) for x in a)
    return a


def _lower_op(b: Builder, name: str, args: list[Any], kw: dict[str, Any], meta: Any,
              library: bool) -> Any:
    out_dtype = getattr(meta, "dtype", None)
    result: Any
    if name in EXTERN and (library or name in GEMMS):
        result = EXTERN[name](b, args, kw, tuple(meta.shape), "extern" if library else "matmul")
    elif name in VIEWS:
        result = _view(b, name, args, meta)
    elif name in RULES:
        result = RULES[name](b, args, kw)
    elif name in SAME:
        result = b.pw(name, *args[:OPS[name].arity])
    elif name in SIMPLE:
        rule = SIMPLE[name]
        result = rule(b, *args[:rule.__code__.co_argcount - 1])
    elif name in IDENTITY:
        result = args[0]
        if name == "_to_copy" and isinstance(result, Value) and out_dtype is not None and \
                result.dtype.is_floating_point and not out_dtype.is_floating_point:
            # .long() truncates toward zero, .bool() tests for nonzero: a value of its own
            result = b.pw("ne", result, 0.0) if out_dtype == torch.bool else \
                Value("pointwise", result.shape, out_dtype, [result], op="copy")
    else:
        raise Unsupported([name])
    if isinstance(result, tuple) and isinstance(meta, list | tuple):  # e.g. native_layer_norm:
        for part, val in zip(result, meta, strict=False):  # (bf16 out, fp32 mean, fp32 rstd)
            _take_dtype(part, getattr(val, "dtype", None))
    else:
        _take_dtype(result, out_dtype)
    return result


def _take_dtype(result: Any, dtype: Any) -> None:
    """Give a computed value the dtype aten says its op returns (a bool stays bool)."""
    if isinstance(result, Value) and dtype is not None and result.kind != "input":
        result.dtype = dtype if result.dtype != torch.bool or dtype == torch.bool else result.dtype


def _add(b: Builder, a: list[Any], kw: dict[str, Any], sign: str) -> Value:
    """add or sub (`sign`), with torch's `alpha` scaling the second argument."""
    alpha = kw.get("alpha", a[2] if len(a) > 2 else 1)
    return b.pw(sign, a[0], a[1] if alpha == 1 else b.pw("mul", a[1], alpha))


def _div(b: Builder, a: list[Any], kw: dict[str, Any]) -> Value:
    mode = kw.get("rounding_mode", a[2] if len(a) > 2 else None)
    q = b.pw("div", a[0], a[1])
    if mode == "floor":
        return b.pw("floor", q)
    if mode == "trunc":
        return b.pw("where", b.pw("lt", q, 0), b.pw("ceil", q), b.pw("floor", q))
    return q


def _pow(b: Builder, a: list[Any], kw: dict[str, Any]) -> Value:
    x, e = a[0], a[1]
    if isinstance(e, Value):
        if not isinstance(x, Value):
            return b.pw("exp", b.pw("mul", e, math.log(x)))
        return b.pw("exp", b.pw("mul", e, b.pw("log", x)))
    table: dict[float, Callable[[Value], Value]] = {
        1: lambda x: b.pw("copy", x), 2: b.square, 3: lambda x: b.pw("mul", b.square(x), x),
        4: lambda x: b.square(b.square(x)), 0.5: lambda x: b.pw("sqrt", x),
        -0.5: lambda x: b.pw("rsqrt", x), -1: lambda x: b.pw("div", 1.0, x),
        -2: lambda x: b.pw("div", 1.0, b.square(x)),
        0: lambda x: b.pw("add", b.pw("mul", x, 0.0), 1.0)}
    if e in table:
        return table[e](x)
    return b.pw("exp", b.pw("mul", e, b.pw("log", x)))


def _clamp(b: Builder, x: Value, lo: Any, hi: Any) -> Value:
    if lo is not None:
        x = b.pw("maximum", x, lo)
    if hi is not None:
        x = b.pw("minimum", x, hi)
    return x


def _gelu(b: Builder, a: list[Any], kw: dict[str, Any]) -> Value:
    x = a[0]
    if kw.get("approximate", a[1] if len(a) > 1 else "none") == "tanh":
        cube = b.pw("mul", b.pw("mul", b.pw("mul", 0.044715, x), x), x)
        inner = b.pw("mul", 0.7978845608028654, b.pw("add", x, cube))
        return b.pw("mul", b.pw("mul", 0.5, x), b.pw("add", 1.0, b.tanh(inner)))
    erf = b.pw("erf", b.pw("mul", x, 0.7071067811865476))
    return b.pw("mul", b.pw("mul", 0.5, x), b.pw("add", 1.0, erf))


def _elu(b: Builder, x: Value, alpha: float, scale: float, input_scale: float) -> Value:
    negative = b.pw("mul", b.pw("sub", b.pw("exp", b.pw("mul", x, input_scale)), 1.0), alpha * scale)
    return b.pw("where", b.pw("gt", x, 0), b.pw("mul", x, scale), negative)


def _view(b: Builder, name: str, a: list[Any], meta: Any) -> Value | None:
    x = a[0]
    if x is None:  # a view of an unused result (max pooling's indices)
        return None
    shape = tuple(meta.shape)
    if name == "expand" and x.shape != shape:  # a broadcast: the identity at the bigger shape
        return Value("pointwise", shape, x.dtype, [x], op="copy")
    if name == "unfold":  # windows of `size` every `step` along dim: a new last dim, strided
        dim, step = a[1] % len(x.shape), a[3]  # the size is the new last dim's (meta.shape)
        return Value("view", shape, x.dtype, [x], op="unfold", attrs=dict(dim=dim, step=step))
    if x.shape == shape and name != "permute" and name != "transpose" and name != "t":
        return x
    if name in {"permute", "transpose", "t"}:
        rank = len(x.shape)
        if name == "t":
            order = [1, 0] if rank == 2 else [0]
        elif name == "transpose":
            d0, d1 = a[1] % rank, a[2] % rank
            order = list(range(rank))
            order[d0], order[d1] = order[d1], order[d0]
        else:
            order = [d % rank for d in a[1]]
        return Value("view", shape, x.dtype, [x], op="permute", dims=tuple(order))
    if reshape_strides(x.shape, view_layout(x)[0], shape) is None:  # not a view: copy first
        x = Value("pointwise", x.shape, x.dtype, [x], op="copy")
    return Value("view", shape, x.dtype, [x], op="reshape")


def _slice(x: Value, dim: int, start: int, end: int | None, step: int = 1) -> Value:
    size = x.shape[dim]
    start = max(0, min(size, start + size if start < 0 else start))
    end = size if end is None else max(start, min(size, end + size if end < 0 else end))
    shape = x.shape[:dim] + (ceil_div(end - start, step),) + x.shape[dim + 1:]
    return Value("view", shape, x.dtype, [x], op="slice", attrs=dict(dim=dim, start=start,
                                                                       step=step))


def _split(x: Value, sizes: list[int], dim: int) -> list[Value]:
    dim %= len(x.shape)
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [_slice(x, dim, s, s + n) for s, n in zip(starts, sizes, strict=True)]


def _split_even(x: Value, size: int, dim: int) -> list[Value]:
    total = x.shape[dim % len(x.shape)]
    return _split(x, [min(size, total - s) for s in range(0, total, size)], dim)


def _select(x: Value, dim: int, index: int) -> Value:
    dim %= len(x.shape)
    one = _slice(x, dim, index, index + 1 if index != -1 else None)
    return Value("view", x.shape[:dim] + x.shape[dim + 1:], x.dtype, [one], op="reshape")


def _pool(b: Builder, kind: str, a: list[Any], nd: int) -> Value | tuple[Value, None]:
    x = a[0]

    def tup(v: Any, default: Any) -> tuple[int, ...]:
        if v is None or (isinstance(v, list | tuple) and len(v) == 0):
            v = default
        v = list(v) if isinstance(v, list | tuple) else [v]
        return tuple(v * nd if len(v) == 1 else v)

    kernel = tup(a[1], None)
    stride = tup(a[2] if len(a) > 2 else None, kernel)
    padding = tup(a[3] if len(a) > 3 else 0, [0])
    if kind == "max":
        dilation = tup(a[4] if len(a) > 4 else 1, [1])
        ceil_mode = bool(a[5]) if len(a) > 5 else False
        include_pad, divisor = True, None
    else:
        dilation = (1,) * nd
        ceil_mode = bool(a[4]) if len(a) > 4 else False
        include_pad = bool(a[5]) if len(a) > 5 else True
        divisor = a[6] if len(a) > 6 else None
    spatial = []
    for i in range(nd):
        size = x.shape[-nd + i]
        span = dilation[i] * (kernel[i] - 1) + 1
        num = size + 2 * padding[i] - span
        out = (ceil_div(num, stride[i]) if ceil_mode else num // stride[i]) + 1
        if ceil_mode and (out - 1) * stride[i] >= size + padding[i]:
            out -= 1
        spatial.append(out)
    shape = tuple(x.shape[:-nd]) + tuple(spatial)
    v = Value("pool", shape, F32, [x], op=kind, attrs=dict(
        kernel=kernel, stride=stride, padding=padding, dilation=dilation, nd=nd,
        include_pad=include_pad, divisor=divisor))
    return (v, None) if kind == "max" else v


def _layer_norm(b: Builder, a: list[Any], kw: dict[str, Any]) -> tuple[Value, Value, Value]:
    x, normalized = a[0], a[1]
    dims = list(range(len(x.shape) - len(normalized), len(x.shape)))
    return b.norm_affine(x, dims, a[4], a[2], a[3])


def _group_norm(b: Builder, a: list[Any], kw: dict[str, Any]) -> tuple[Value, Value, Value]:
    x, weight, bias, n, c, hw, groups, eps = a[:8]
    grouped = Value("view", (n, groups, c // groups, hw), x.dtype, [x], op="reshape")
    wg = None if weight is None else Value("view", (1, groups, c // groups, 1), weight.dtype,
                                           [weight], op="reshape")
    bg = None if bias is None else Value("view", (1, groups, c // groups, 1), bias.dtype, [bias],
                                         op="reshape")
    y, mean, rstd = b.norm_affine(grouped, [2, 3], eps, wg, bg)
    out = Value("view", x.shape, y.dtype, [y], op="reshape")
    return out, mean, rstd


def _batch_norm(b: Builder, a: list[Any], kw: dict[str, Any]) -> tuple[Value, Any, Any]:
    """native_batch_norm: batch statistics in training mode, running ones in eval mode
    (`_native_batch_norm_legit.no_stats` has no running statistics: two arguments fewer)."""
    x, weight, bias = a[0], a[1], a[2]
    training, eps = (a[3], a[5]) if len(a) == 6 else (a[5], a[7])
    if not training:
        return _batch_norm_eval(b, a, kw)
    shape = (1, x.shape[1]) + (1,) * (len(x.shape) - 2)
    dims = [0] + list(range(2, len(x.shape)))
    y, _, _ = b.norm_affine(x, dims, eps, _per_channel(weight, shape), _per_channel(bias, shape))
    return y, None, None


def _per_channel(v: Value | None, shape: tuple[int, ...]) -> Value | None:
    return None if v is None else Value("view", shape, v.dtype, [v], op="reshape")


def _batch_norm_eval(b: Builder, a: list[Any], kw: dict[str, Any]) -> tuple[Value, None, None]:
    x, weight, bias, mean, var, eps = a[0], a[1], a[2], a[3], a[4], a[-1]
    shape = (1, x.shape[1]) + (1,) * (len(x.shape) - 2)

    def per_channel(v: Value) -> Value:
        return _per_channel(v, shape)  # type: ignore[return-value]

    y = b.pw("mul", b.pw("sub", x, per_channel(mean)),
             b.pw("rsqrt", b.pw("add", per_channel(var), eps)))
    return b.affine(y, _per_channel(weight, shape), _per_channel(bias, shape)), None, None


def _reduce_rule(op: str) -> Callable[[Builder, list[Any], dict[str, Any]], Any]:
    def rule(b: Builder, a: list[Any], kw: dict[str, Any]) -> Any:
        dims = a[1] if len(a) > 1 else kw.get("dim")
        keepdim = bool(a[2]) if len(a) > 2 else bool(kw.get("keepdim", False))
        if op in {"argmax", "argmin"} and dims is None:
            flat = Value("view", (a[0].numel,), a[0].dtype, [a[0]], op="reshape")
            return b.reduce(op, flat, [0], keepdim=False)
        return b.reduce(op, a[0], dims, keepdim)
    return rule


def _max_dim(op: str) -> Callable[[Builder, list[Any], dict[str, Any]], Any]:
    def rule(b: Builder, a: list[Any], kw: dict[str, Any]) -> Any:
        if len(a) == 1:  # max() over everything
            return b.reduce(op, a[0], None, False)
        if isinstance(a[1], Value):  # max(a, b) is pointwise
            return b.pw("maximum" if op == "max" else "minimum", a[0], a[1])
        keepdim = bool(a[2]) if len(a) > 2 else False
        return (b.reduce(op, a[0], [a[1]], keepdim), b.reduce("arg" + op, a[0], [a[1]], keepdim))
    return rule


def _scan(op: str) -> Callable[[Builder, list[Any], dict[str, Any]], Value]:
    def rule(b: Builder, a: list[Any], kw: dict[str, Any]) -> Value:
        x = a[0]
        dim = a[1] % len(x.shape)
        return Value("scan", x.shape, F32, [x], op=op, dims=(dim,))
    return rule


def _flip(b: Builder, a: list[Any], kw: dict[str, Any]) -> Value:
    """A view with a negative stride along each flipped dim. The flip of a scan is a scan of the
    flipped input, run backwards where its own dim is flipped: torch.cumsum(x.flip(d), d).flip(d),
    a reverse cumsum, is one pass over x (two flips cancel)."""
    x = a[0]
    dims = tuple(sorted({d % len(x.shape) for d in a[1]}))
    if x.kind == "scan":
        reverse = bool(x.attrs.get("reverse")) != (x.dims[0] in dims)
        return Value("scan", x.shape, x.dtype, [_flip_view(x.args[0], dims)], op=x.op, dims=x.dims,
                     attrs=dict(reverse=reverse))
    return _flip_view(x, dims)


def _flip_view(x: Value, dims: tuple[int, ...]) -> Value:
    for d in dims:
        if x.kind == "view" and x.op == "slice" and x.attrs["dim"] == d and \
                x.attrs["step"] == -1 and x.args[0].shape == x.shape:
            x = x.args[0]  # flipped back
        else:
            x = Value("view", x.shape, x.dtype, [x], op="slice",
                      attrs=dict(dim=d, start=x.shape[d] - 1, step=-1))
    return x


def _vector_norm(b: Builder, a: list[Any], kw: dict[str, Any]) -> Value:
    x = a[0]
    order = a[1] if len(a) > 1 else kw.get("ord", kw.get("p", 2))
    order = 2 if order is None else order
    dims = a[2] if len(a) > 2 else kw.get("dim")
    keepdim = bool(a[3]) if len(a) > 3 else bool(kw.get("keepdim", False))
    if order == 2:
        return b.pw("sqrt", b.reduce("sum", b.square(x), dims, keepdim))
    if order == 1:
        return b.reduce("sum", b.pw("abs", x), dims, keepdim)
    if order == float("inf"):
        return b.reduce("max", b.pw("abs", x), dims, keepdim)
    raise Unsupported([f"linalg_vector_norm(ord={order})"])


def _position(x: Value, dim: int) -> Value:
    """0, 1, 2, ... along `dim` of x's shape (an index leaf: computed in the kernel, not read)."""
    return Value("index", x.shape, torch.int64, dims=(dim % len(x.shape),))


def _triangle(upper: bool) -> Callable[[Builder, list[Any], dict[str, Any]], Value]:
    """triu/tril: x where column - row >= diagonal (triu) or <= diagonal (tril), else 0."""
    def rule(b: Builder, a: list[Any], kw: dict[str, Any]) -> Value:
        x, diagonal = a[0], a[1] if len(a) > 1 else kw.get("diagonal", 0)
        offset = b.pw("sub", _position(x, -1), _position(x, -2))
        keep = b.pw("ge" if upper else "le", offset, diagonal)
        return b.pw("where", keep, x, b.const(0.0) if x.dtype.is_floating_point else b.const(0))
    return rule


def _diag_embed(b: Builder, a: list[Any], kw: dict[str, Any]) -> Value:
    """A matrix per vector of the last dim: v[.., i] on its diagonal (torch.diag of a vector)."""
    v = a[0]
    offset, dim1, dim2 = (list(a[1:]) + [0, -2, -1][len(a) - 1:])[:3]
    if offset != 0 or dim1 % (len(v.shape) + 1) != len(v.shape) - 1 or dim2 % (len(v.shape) + 1) \
            != len(v.shape):
        raise Unsupported(["diag_embed"], "an offset diagonal or other dims")
    n = v.shape[-1]
    column = Value("view", v.shape + (1,), v.dtype, [v], op="reshape")  # v[.., i] for every j
    grid = Value("pointwise", v.shape + (n,), v.dtype, [column], op="copy")
    return b.pw("where", b.pw("eq", _position(grid, -1), _position(grid, -2)), grid, 0.0)


def _nll_loss(b: Builder, a: list[Any], kw: dict[str, Any]) -> tuple[Value, Value]:
    """-logp[r, target[r]] per row (a row reduction over a one-hot of the class), rows whose
    target is ignore_index left out; reduction 0 none, 1 mean over the rows kept, 2 sum.
    Returns (loss, total weight) as aten does. Per-class weights are not covered."""
    logp, target, weight = a[0], a[1], a[2] if len(a) > 2 else None
    reduction, ignore = (a[3] if len(a) > 3 else 1), (a[4] if len(a) > 4 else -100)
    if weight is not None or len(logp.shape) != 2:
        raise Unsupported(["nll_loss_forward"], "class weights, or more than [N, C] scores")
    rows = Value("view", target.shape + (1,), target.dtype, [target], op="reshape")
    hit = b.pw("eq", _position(logp, 1), rows)
    picked = b.reduce("sum", b.pw("where", hit, b.pw("neg", logp), 0.0), [1], False)
    kept = b.pw("ne", target, ignore)
    losses = b.pw("where", kept, picked, 0.0)
    count = b.reduce("sum", b.pw("where", kept, 1.0, 0.0), None, False)
    if reduction == 0:
        return losses, count
    total = b.reduce("sum", losses, None, False)
    return (b.pw("div", total, count) if reduction == 1 else total), count


def _cat(b: Builder, a: list[Any], kw: dict[str, Any]) -> Value:
    """Concatenation: each part read through a window (a view of the output's shape, shifted to
    where the part starts, loaded only inside its span), the parts chosen by position."""
    parts = [p for p in a[0] if not (len(p.shape) == 1 and p.shape[0] == 0)]  # torch skips those
    dim = (a[1] if len(a) > 1 else kw.get("dim", 0)) % len(parts[0].shape)
    shape = parts[0].shape[:dim] + (sum(p.shape[dim] for p in parts),) + parts[0].shape[dim + 1:]
    out: Value | None = None
    start = 0
    for p in parts:
        window = Value("view", shape, p.dtype, [p], op="slice",
                       attrs=dict(dim=dim, start=-start, step=1, window=p.shape[dim]))
        out = window if out is None else b.pw("where", b.pw("ge", _position(window, dim), start),
                                              window, out)
        start = start + p.shape[dim]
    assert out is not None
    return out if len(parts) > 1 else Value("pointwise", shape, out.dtype, [out], op="copy")


def _zeros_like(b: Builder, a: list[Any], kw: dict[str, Any]) -> Value:
    return Value("pointwise", a[0].shape, a[0].dtype, [b.const(0.0)], op="copy")


def _logsumexp(b: Builder, a: list[Any], kw: dict[str, Any]) -> Value:
    x, dims = a[0], a[1]
    keepdim = bool(a[2]) if len(a) > 2 else False
    m = b.reduce("max", x, dims, True)
    total = b.reduce("sum", b.pw("exp", b.pw("sub", x, m)), dims, keepdim)
    return b.pw("add", m if keepdim else b.reduce("max", x, dims, False), b.pw("log", total))


Loss = Callable[[Builder, Value, Value, float], Value]


def _loss(per_element: Loss) -> Callable[[Builder, list[Any], dict[str, Any]], Value]:
    """A pointwise loss of (input, target, beta or delta), then reduction 0 none, 1 mean, 2 sum."""
    def rule(b: Builder, a: list[Any], kw: dict[str, Any]) -> Value:
        reduction = a[2] if len(a) > 2 else kw.get("reduction", 1)
        extra = a[3] if len(a) > 3 else kw.get("beta", kw.get("delta", 1.0))
        per = per_element(b, a[0], a[1], float(extra))
        if reduction == 0:
            return per
        return b.mean(per, None, False) if reduction == 1 else b.reduce("sum", per, None, False)
    return rule


def _smooth_l1(b: Builder, x: Value, y: Value, beta: float) -> Value:
    d = b.pw("sub", x, y)
    ad = b.pw("abs", d)
    near = b.pw("div", b.pw("mul", b.pw("mul", 0.5, d), d), beta)
    return b.pw("where", b.pw("lt", ad, beta), near, b.pw("sub", ad, 0.5 * beta))


def _huber(b: Builder, x: Value, y: Value, delta: float) -> Value:
    d = b.pw("sub", x, y)
    ad = b.pw("abs", d)
    far = b.pw("mul", delta, b.pw("sub", ad, 0.5 * delta))
    return b.pw("where", b.pw("lt", ad, delta), b.pw("mul", b.pw("mul", 0.5, d), d), far)


RULES: dict[str, Callable[[Builder, list[Any], dict[str, Any]], Any]] = {
    "mse_loss": _loss(lambda b, x, y, _: b.square(b.pw("sub", x, y))),
    "smooth_l1_loss": _loss(_smooth_l1),
    "huber_loss": _loss(_huber),
    "add": lambda b, a, kw: _add(b, a, kw, "add"),
    "sub": lambda b, a, kw: _add(b, a, kw, "sub"),
    "rsub": lambda b, a, kw: _add(b, [a[1], a[0]] + a[2:], kw, "sub"),
    "div": _div,
    "pow": _pow,
    "clamp": lambda b, a, kw: _clamp(b, a[0], a[1] if len(a) > 1 else kw.get("min"),
                                     a[2] if len(a) > 2 else kw.get("max")),
    "clamp_min": lambda b, a, kw: _clamp(b, a[0], a[1], None),
    "clamp_max": lambda b, a, kw: _clamp(b, a[0], None, a[1]),
    "hardtanh": lambda b, a, kw: _clamp(b, a[0], a[1] if len(a) > 1 else -1.0,
                                        a[2] if len(a) > 2 else 1.0),
    "relu6": lambda b, a, kw: _clamp(b, a[0], 0.0, 6.0),
    "gelu": _gelu,
    "tanh": lambda b, a, kw: b.tanh(a[0]),
    "softplus": lambda b, a, kw: b.softplus(a[0], *(a[1:3])),
    "mish": lambda b, a, kw: b.pw("mul", a[0], b.tanh(b.softplus(a[0]))),
    "leaky_relu": lambda b, a, kw: b.pw("where", b.pw("gt", a[0], 0), a[0], b.pw(
        "mul", a[0], float(a[1]) if len(a) > 1 else 0.01)),
    "elu": lambda b, a, kw: _elu(b, a[0], *(list(a[1:4]) + [1.0, 1.0, 1.0][len(a) - 1:])),
    "selu": lambda b, a, kw: _elu(b, a[0], 1.6732632423543772, 1.0507009873554805, 1.0),
    "celu": lambda b, a, kw: _elu(b, a[0], a[1] if len(a) > 1 else 1.0, 1.0,
                                  1.0 / (a[1] if len(a) > 1 else 1.0)),
    "threshold": lambda b, a, kw: b.pw("where", b.pw("gt", a[0], a[1]), a[0], a[2]),
    "masked_fill": lambda b, a, kw: b.pw("where", a[1], a[2], a[0]),
    "_softmax": lambda b, a, kw: b.softmax(a[0], a[1], log=False),
    "_log_softmax": lambda b, a, kw: b.softmax(a[0], a[1], log=True),
    "_safe_softmax": lambda b, a, kw: b.softmax(a[0], a[1], log=False, safe=True),
    "logsumexp": _logsumexp,
    "sum": lambda b, a, kw: b.reduce("sum", a[0], a[1] if len(a) > 1 else None,
                                     bool(a[2]) if len(a) > 2 else False),
    "mean": lambda b, a, kw: b.mean(a[0], a[1] if len(a) > 1 else None,
                                    bool(a[2]) if len(a) > 2 else False),
    "amax": _reduce_rule("max"),
    "amin": _reduce_rule("min"),
    "prod": _reduce_rule("prod"),
    "argmax": _reduce_rule("argmax"),
    "argmin": _reduce_rule("argmin"),
    "max": _max_dim("max"),
    "min": _max_dim("min"),
    "var": lambda b, a, kw: b.var(a[0], a[1] if len(a) > 1 else None,
                                  kw.get("correction", 1), bool(kw.get("keepdim", False))),
    "std": lambda b, a, kw: b.pw("sqrt", b.var(
        a[0], a[1] if len(a) > 1 else None, kw.get("correction", 1),
        bool(kw.get("keepdim", False)))),
    "var_mean": lambda b, a, kw: (
        b.var(a[0], a[1] if len(a) > 1 else None, kw.get("correction", 1),
              bool(kw.get("keepdim", False))),
        b.mean(a[0], a[1] if len(a) > 1 else None, bool(kw.get("keepdim", False)))),
    "linalg_vector_norm": _vector_norm,
    "flip": _flip,
    "triu": _triangle(upper=True),
    "tril": _triangle(upper=False),
    "diag_embed": _diag_embed,
    "nll_loss_forward": _nll_loss,
    "norm": _vector_norm,  # aten.norm.ScalarOpt_dim: (x, p, dim, keepdim), as linalg_vector_norm
    "zeros_like": _zeros_like,
    "cat": _cat,
    "cumsum": _scan("cumsum"),
    "cumprod": _scan("cumprod"),
    "native_layer_norm": _layer_norm,
    "native_group_norm": _group_norm,
    "_native_batch_norm_legit_no_training": _batch_norm_eval,
    "native_batch_norm": _batch_norm,
    "_native_batch_norm_legit": _batch_norm,  # the same arguments; symbolic tracing picks it
    "max_pool2d_with_indices": lambda b, a, kw: _pool(b, "max", a, 2),
    "max_pool1d_with_indices": lambda b, a, kw: _pool(b, "max", a, 1),
    "max_pool2d": lambda b, a, kw: _pool(b, "max", a, 2)[0],  # type: ignore[index]
    "max_pool1d": lambda b, a, kw: _pool(b, "max", a, 1)[0],  # type: ignore[index]
    "avg_pool2d": lambda b, a, kw: _pool(b, "avg", a, 2),
    "avg_pool1d": lambda b, a, kw: _pool(b, "avg", a, 1),
    "max_pool3d_with_indices": lambda b, a, kw: _pool(b, "max", a, 3),
    "avg_pool3d": lambda b, a, kw: _pool(b, "avg", a, 3),
    "split": lambda b, a, kw: _split_even(a[0], a[1], a[2] if len(a) > 2 else kw.get("dim", 0)),
    "split_with_sizes": lambda b, a, kw: _split(a[0], list(a[1]),
                                                a[2] if len(a) > 2 else kw.get("dim", 0)),
    "slice": lambda b, a, kw: _slice(a[0], (a[1] if len(a) > 1 else 0) % len(a[0].shape),
                                     (a[2] if len(a) > 2 else 0) or 0,
                                     a[3] if len(a) > 3 else None, a[4] if len(a) > 4 else 1),
    "select": lambda b, a, kw: _select(a[0], a[1], a[2]),
    "scalar_tensor": lambda b, a, kw: b.const(a[0]),
}


# GEMMs and convolutions: vendor calls in `library` mode ("extern"), the writer's own tiled
# GEMMs in `strict` mode ("matmul"); what follows them is left to fuse either way.
GEMMS = {"mm", "bmm", "addmm", "convolution"}


def _gemm(op: str, shape: tuple[int, ...], kind: Kind, *args: Value, **attrs: Any) -> Value:
    return Value(kind, shape, F32, list(args), op=op, attrs=attrs)


def _addmm(b: Builder, a: list[Any], kw: dict[str, Any], shape: tuple[int, ...],
           kind: Kind) -> Value:
    bias, x, w = a[:3]
    beta, alpha = kw.get("beta", 1), kw.get("alpha", 1)
    if kind == "extern" and beta == 1 and alpha == 1 and bias.shape == shape[-1:]:
        return _gemm("addmm", shape, kind, x, w, bias)  # the vendor's GEMM adds the bias itself
    product = _gemm("mm", shape, kind, x, w)
    if alpha != 1:
        product = b.pw("mul", product, alpha)
    return b.pw("add", product, bias if beta == 1 else b.pw("mul", bias, beta))


def _convolution(b: Builder, a: list[Any], kw: dict[str, Any], shape: tuple[int, ...],
                 kind: Kind) -> Value:
    x, w, bias, stride, padding, dilation, transposed, output_padding, groups = a[:9]
    if kind == "matmul" and (transposed or groups != 1 or len(shape) != 4):
        raise Unsupported(["convolution"], "strict mode writes plain 2-d convolutions only "
                          "(not transposed, grouped, 1-d or 3-d)")
    y = _gemm("conv", shape, kind, x, w, stride=tuple(stride), padding=tuple(padding),
                dilation=tuple(dilation), transposed=bool(transposed),
                output_padding=tuple(output_padding), groups=int(groups))
    if bias is None:
        return y
    per_channel = Value("view", (shape[1],) + (1,) * (len(shape) - 2), bias.dtype, [bias],
                        op="reshape")
    return b.pw("add", y, per_channel)


EXTERN: dict[str, Callable[[Builder, list[Any], dict[str, Any], tuple[int, ...], Kind], Value]] = {
    "mm": lambda b, a, kw, shape, kind: _gemm("mm", shape, kind, a[0], a[1]),
    "bmm": lambda b, a, kw, shape, kind: _gemm("bmm", shape, kind, a[0], a[1]),
    "addmm": _addmm,
    "convolution": _convolution,
}
