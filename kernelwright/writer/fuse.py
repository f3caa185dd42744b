"""Partition the IR into fusion groups: each group is one kernel over one iteration domain.

A group has a domain shape S and, for reductions and scans, the domain dims it reduces (the
"columns"; the other dims are "rows"). Every value in the group maps each of its real dims onto
a domain dim (`dmap`), so a value of shape [C] inside a [R, C] domain is a per-column vector,
and a keepdim reduction is a per-row one. Values are placed greedily in topological order; one
that cannot be mapped onto the current domain (another reduction axis, a reshape of a computed
value, a second pool) closes the group, and whatever later groups read from it is stored to a
buffer (materialised). Over few long rows a group holds one reduction and nothing per column
after it, so each kernel can be split across the GPU (a softmax over one huge row becomes max,
then exp-sum, then the normalisation). An extern value (a vendor call in `library` mode) is a group of its
own: its arguments are read from buffers and its result is a buffer the next kernel reads.
A matmul (the writer's own GEMM) opens a group over its output, [batch.., M, N]: its operands
are read from buffers, and pointwise values after it join as the kernel's epilogue (bias,
activation, scale, residual); a reduction over its rows is the next kernel. An attention
value is a group of its own over its scores [batch.., M, N] (keys are the columns), holding the
score chain of its body; its operands are read from buffers or inputs.
"""

from __future__ import annotations

from kernelwright.writer.ir import DMap, Graph, Group, Unsupported, Value
from kernelwright.writer.schedule import few_long_rows

COMPUTED = {"pointwise", "reduce", "scan", "pool", "matmul", "extern", "attention"}




def partition(graph: Graph) -> list[Group]:
    """Fusion groups in launch order; group outputs are what later groups or the caller read."""
    groups: list[Group] = []
    current: Group | None = None
    for v in graph.topo():
        if v.kind not in COMPUTED:
            continue
        if v.kind == "extern":
            groups.append(Group(kind="extern", shape=v.shape, values=[v],
                                dmap={v.id: tuple(range(len(v.shape)))}))
            current = None
            continue
        if v.kind == "attention":
            groups.append(attention_group(v))
            current = None
            continue
        if current is not None and _place(current, v):
            continue
        current = Group(kind="pointwise")
        groups.append(current)
        if not _place(current, v):
            raise Unsupported([f"{v.kind}:{v.op[:30]}"], "no iteration domain fits it")
    owner = {v.id: g for g in groups for v in g.values}
    needed = {o.id for o in graph.outputs}
    for g in groups:
        for v in g.values:
            for a in v.args:
                if a.id in owner and owner[a.id] is not g:
                    needed.add(a.id)
    for v in graph.topo():  # a view of a computed value reads that value from a buffer
        if v.kind == "view" and view_base(v).id in owner:
            needed.add(view_base(v).id)
    for g in groups:
        g.outputs = [v for v in g.values if v.id in needed]
    return groups


def attention_group(v: Value) -> Group:
    """The group of an attention value: its domain is the scores', and the values of its score
    chain (from the scores down to the product q @ k^T) map onto it."""
    scores, qk = v.body
    g = Group(kind="attention", shape=scores.shape, axes=(len(scores.shape) - 1,), values=[v])
    g.dmap[v.id] = tuple(range(len(v.shape)))
    identity = tuple(range(len(scores.shape)))
    todo = [scores]
    while todo:
        x = todo.pop()
        if g.has(x):
            continue
        amap = leaf_map(x.shape, scores.shape, identity)
        if amap is None:
            raise Unsupported([f"attention score {x.op[:30]}"], "does not broadcast to the scores")
        g.dmap[x.id] = amap
        if x is not qk:
            todo += [a for a in x.args if a.kind == "pointwise" or a is qk]
    return g


def _place(g: Group, v: Value) -> bool:
    """Add `v` to `g` if its dims map onto g's domain; True when placed."""
    computed_args = [a for a in v.args if g.has(a)]
    if any(a.kind == "view" and g.has(view_base(a)) for a in v.args):
        return False  # the view's base is written by this kernel: read it in the next one
    if not g.values:
        return _open(g, v)
    if v.kind == "matmul" or g.kind == "matmul" and v.kind != "pointwise":
        return False  # a GEMM opens its own kernel; only an epilogue follows it there
    if v.kind == "pool" or g.kind == "pool" and v.kind != "pointwise":
        return False
    if v.kind == "pointwise":
        dmap = _pointwise_dmap(g, v, computed_args)
        if dmap is None:
            return False
        if few_long_rows(g) and any(k in g.axes for k in dmap) and _after_reduction(g, v):
            return False  # per column after a reduction: the next kernel, so this one splits
        return _add(g, v, dmap)
    if v.kind == "reduce":
        if g.kind == "scan" or few_long_rows(g):
            return False
        arg = v.args[0]
        amap = g.dmap[arg.id] if g.has(arg) else _right_aligned(g, arg.shape)
        if amap is None:
            return False
        mapped = {amap[d] for d in v.dims if arg.shape[d] > 1}
        if None in mapped or not mapped:
            return False
        axes = tuple(sorted(k for k in mapped if k is not None))
        if g.kind == "reduction" and axes != g.axes:
            return False
        if g.kind == "pointwise":
            g.kind, g.axes = "reduction", axes
        return _add(g, v, _reduced_map(v, amap))
    if v.kind == "scan":
        return False  # a scan opens its own group (rows, then the scanned dim)
    return False


def _after_reduction(g: Group, v: Value) -> bool:
    """True when `v` reads (through this group's values) a reduction of this group."""
    return any(g.has(a) and (a.kind == "reduce" or _after_reduction(g, a)) for a in v.args)


def _open(g: Group, v: Value) -> bool:
    if v.kind == "pointwise":
        g.kind, g.shape = "pointwise", v.shape
        return _add(g, v, tuple(range(len(v.shape))))
    if v.kind == "pool":
        g.kind, g.shape = "pool", v.shape
        return _add(g, v, tuple(range(len(v.shape))))
    if v.kind == "matmul":  # rows: batch dims and M (a convolution: N, H, W); columns: N (C)
        g.kind, g.shape = "matmul", v.shape
        g.axes = (1,) if v.op == "conv" else (len(v.shape) - 1,)
        return _add(g, v, tuple(range(len(v.shape))))
    arg = v.args[0]
    g.shape = arg.shape
    amap = tuple(range(len(arg.shape)))
    if v.kind == "reduce":
        g.kind, g.axes = "reduction", tuple(d for d in v.dims if arg.shape[d] > 1) or v.dims
        amap = tuple(range(len(arg.shape)))
        return _add(g, v, _reduced_map(v, amap))
    g.kind, g.axes = "scan", v.dims
    return _add(g, v, amap)


def _add(g: Group, v: Value, dmap: DMap) -> bool:
    g.values.append(v)
    g.dmap[v.id] = dmap
    return True


def _reduced_map(v: Value, amap: DMap) -> DMap:
    if v.keepdim:
        return tuple(None if d in v.dims else m for d, m in enumerate(amap))
    return tuple(m for d, m in enumerate(amap) if d not in v.dims)


def _right_aligned(g: Group, shape: tuple[int, ...]) -> DMap | None:
    """Map a leaf's dims onto the domain as broadcasting would; None if the sizes disagree."""
    return leaf_map(shape, g.shape, tuple(range(len(g.shape))))


def _pointwise_dmap(g: Group, v: Value, computed: list[Value]) -> DMap | None:
    """Each real dim of `v` takes the domain dim its computed arguments give it; dims only
    leaves reach are mapped by broadcasting; any conflict means another domain."""
    rank = len(v.shape)
    chosen: list[int | None] = [None] * rank
    for a in computed:
        amap = g.dmap[a.id]
        off = rank - len(a.shape)
        for j, s in enumerate(a.shape):
            if s == 1 or amap[j] is None:
                continue
            d = j + off
            if chosen[d] is not None and chosen[d] != amap[j]:
                return None
            chosen[d] = amap[j]
    fallback = _right_aligned(g, v.shape)
    for d, s in enumerate(v.shape):
        if s == 1:
            chosen[d] = None
        elif chosen[d] is None:
            if fallback is None or fallback[d] is None:
                return None
            chosen[d] = fallback[d]
    used = [c for c in chosen if c is not None]
    if len(used) != len(set(used)):
        return None
    if any(c is not None and g.shape[c] != v.shape[d] for d, c in enumerate(chosen)):
        return None
    for a in v.args:  # leaves must also fit the domain by broadcasting against v
        if a.kind in {"input", "view", "index"} or (a.kind in COMPUTED and not g.has(a)):
            if leaf_map(a.shape, v.shape, tuple(chosen)) is None:
                return None
    return tuple(chosen)


def view_base(v: Value) -> Value:
    """The tensor a chain of views reads from."""
    while v.kind == "view":
        v = v.args[0]
    return v


def leaf_map(shape: tuple[int, ...], user_shape: tuple[int, ...], user_map: DMap) -> DMap | None:
    """Domain dims of a leaf read by a value of `user_shape` mapped by `user_map`."""
    off = len(user_shape) - len(shape)
    if off < 0:
        return None
    out: list[int | None] = []
    for j, s in enumerate(shape):
        if s == 1:
            out.append(None)
        elif user_shape[j + off] == s:
            out.append(user_map[j + off])
        else:
            return None
    return tuple(out)
