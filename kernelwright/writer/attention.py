"""Find attention in the captured aten graph: softmax(q @ k^T (* scale, + mask, ...)) @ v.

Written op by op or as `scaled_dot_product_attention` (make_fx decomposes it into the same
ops), attention reaches the writer as two batched GEMMs around a softmax. Lowered as they
are, the [.., M, N] score matrix would be written out and read back twice. This finds the
pattern so that lower.py can make it one value, which the emitter writes as one fused kernel
(online softmax over blocks of keys, the scores never stored):

    bmm(P, V)  where  P = softmax(chain(bmm(Q, K^T)))  over the last dim

`chain` is any run of single-user pointwise ops (scale, divide, additive or boolean masks
computed pointwise from inputs). A causal mask built from `triu`/`tril` of `ones` is recognised as such (the
kernel compares indices and skips blocks of keys that are masked throughout) whichever form it
takes: `masked_fill(s, triu(ones, 1), -inf)`, `add(s, where(tril(ones), 0, -inf))` (SDPA's
decomposition), `where(tril(ones), s, -inf)`. Scalar multiplies of q or k (SDPA scales both by
the square root of the scale) fold into one scale on the scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.fx import Graph, Node

PASS = {"view", "_unsafe_view", "reshape", "expand", "clone", "contiguous", "alias", "detach",
        "lift_fresh_copy"}  # ops that keep each element's place in row-major order
CHAIN = {"div", "mul", "add", "sub", "masked_fill", "where", "neg", "tanh", "clamp"}
MASK_OPS = CHAIN | {"scalar_tensor", "logical_not", "bitwise_not", "logical_and", "logical_or",
                    "eq", "ne", "lt", "le", "gt", "ge", "exp", "log", "abs"}  # on masks


@dataclass
class Match:
    """One attention: FX nodes of its operands and how the scores are masked and scaled."""

    out: Node  # the second GEMM: the node the fused attention replaces
    q: Node  # [.., M, D]
    k: Node  # k^T: [.., D, N]
    v: Node  # [.., N, Dv]
    qk: Node  # the product q @ k^T as the score chain reads it ([.., M, N])
    scores: Node  # the softmax's input
    scale: float = 1.0  # folded scalar multiplies of q and k
    causal: int | None = None  # key j is kept where j <= i + causal
    safe: bool = False  # _safe_softmax: a row masked throughout gives zeros, not NaN
    heads_last: bool = False  # [B, H, M, Dv] is next transposed to [B, M, H, Dv] (the heads
    # merged back into the model dim): the kernel stores in that order, the transpose is free
    bypass: dict[Node, Node] = field(default_factory=dict)  # node -> the node it stands for
    dead: set[Node] = field(default_factory=set)  # nodes only the fused kernel made use of


def name(node: Any) -> str:
    if not isinstance(node, Node) or node.op != "call_function":
        return ""
    target: Any = node.target
    return str(getattr(target, "overloadpacket", target).__name__)


def args(node: Node) -> tuple[Any, ...]:
    return tuple(node.args)


def users(node: Node) -> list[Node]:
    """The nodes that read `node`'s data (a read of its size, `sym_size`, is none)."""
    return [u for u in node.users if name(u) != "sym_size"]


def shape(node: Node) -> tuple[int, ...]:
    return tuple(getattr(node.meta.get("val"), "shape", ()))


def find(graph: Graph) -> dict[Node, Match]:
    """Every attention of the graph, keyed by its second GEMM (the node it replaces)."""
    found: dict[Node, Match] = {}
    for node in graph.nodes:
        if name(node) in {"_softmax", "_safe_softmax"}:
            match = _match(node)
            if match is not None:
                found[match.out] = match
    return found


def _match(softmax: Node) -> Match | None:
    rank = len(shape(softmax))
    if rank < 3 or args(softmax)[1] % rank != rank - 1 or (len(args(softmax)) > 2 and args(softmax)[2]):
        return None
    out = _forward(softmax)
    if out is None or name(out) != "bmm" or _back(args(out)[0]) != (softmax, 1.0):
        return None
    *batch, m, n = shape(softmax)
    node = args(softmax)[0]
    match = Match(out=out, q=node, k=node, v=node, qk=node, scores=node,
                  safe=name(softmax) == "_safe_softmax")
    while True:  # down the score chain to the first GEMM
        if len(users(node)) != 1:
            return None
        source, scale = _back(node)
        if name(source) == "bmm" and scale == 1.0 and len(users(source)) == 1:
            if shape(node) != (*batch, m, n):
                return None
            match.qk = node
            break
        if name(node) not in CHAIN or shape(node) != (*batch, m, n):
            return None
        nxt = _causal(node, m, n, match)
        if nxt is None:
            inner = [a for a in args(node) if isinstance(a, Node) and not _independent(a)]
            if len(inner) != 1:
                return None
            nxt = inner[0]
        node = nxt
    gemm = _back(match.qk)[0]
    q, sq = _operand(args(gemm)[0], (m,))
    k, sk = _operand(args(gemm)[1], (None, n))
    v, _ = _operand(args(out)[1], (n,))
    if q is None or k is None or v is None:
        return None
    d, dv = shape(q)[-1], shape(v)[-1]
    if (shape(q) != (*batch, m, d) or shape(k) != (*batch, d, n) or shape(v)[:-1] != (*batch, n)
            or len(shape(out)) != 3 or shape(out)[1:] != (m, dv)):
        return None  # broadcast batches (grouped heads) are left to the two GEMMs
    match.q, match.k, match.v, match.scale = q, k, v, match.scale * sq * sk
    match.heads_last = len(batch) == 2 and _heads_merged(out, (*batch, m, dv))
    return match


def _heads_merged(out: Node, four_d: tuple[int, ...]) -> bool:
    """The GEMM's only user views it as [B, H, M, Dv], whose only user swaps H and M."""
    if len(users(out)) != 1:
        return False
    view = users(out)[0]
    if name(view) not in {"view", "_unsafe_view", "reshape"} or shape(view) != four_d \
            or len(users(view)) != 1:
        return False
    swap = users(view)[0]
    if name(swap) == "transpose":
        return sorted(d % 4 for d in args(swap)[1:3]) == [1, 2]
    return name(swap) == "permute" and [d % 4 for d in args(swap)[1]] == [0, 2, 1, 3]


def _forward(node: Node) -> Node | None:
    """Along single users through PASS ops: the first other node."""
    while len(users(node)) == 1:
        node = users(node)[0]
        if name(node) not in PASS:
            return node
    return None


def _step(node: Node) -> tuple[Any, float] | None:
    """One step back through a PASS op or a scalar multiply: (its input, the factor)."""
    if name(node) in PASS and _same_order(node):
        return args(node)[0], 1.0
    factor = args(node)[1] if name(node) == "mul" else None
    if isinstance(factor, Node) and isinstance(factor.meta.get("val"), torch.SymFloat | torch.SymInt):
        factor = factor.meta["val"]  # a scale computed from a size (SDPA's 1/sqrt(sqrt(E)))
    if isinstance(factor, int | float | torch.SymFloat | torch.SymInt):
        return args(node)[0], float(factor)  # a symbolic one: a guard on the size it reads
    return None


def _back(node: Any) -> tuple[Any, float]:
    """Back through PASS ops and scalar multiplies (each with one user): (source, scale)."""
    scale = 1.0
    while isinstance(node, Node) and len(users(node)) == 1 and (step := _step(node)) is not None:
        node, factor = step
        scale *= factor
    return node, scale


def _same_order(node: Node) -> bool:
    """An expand that broadcasts is not a pass-through: it repeats elements."""
    return name(node) != "expand" or shape(node) == shape(args(node)[0])


def _operand(node: Node, tail: tuple[int | None, ...]) -> tuple[Node | None, float]:
    """The deepest node behind a GEMM operand (PASS ops and scalar multiplies only) whose
    trailing dims are those of the operand: the same elements in the same order. Its scale:
    the multiplies walked past."""
    want, numel = shape(node)[1:], math.prod(shape(node))
    best, best_scale, scale = None, 1.0, 1.0
    while isinstance(node, Node):
        have = shape(node)
        if len(have) >= 2 and have[-2:] == want and math.prod(have) == numel:
            best, best_scale = node, scale
        step = _step(node) if len(users(node)) == 1 else None
        if step is None:
            break
        node, factor = step
        scale *= factor
    if best is not None and any(t is not None and t != s for t, s in zip(tail, want, strict=False)):
        return None, 1.0
    return best, best_scale


def _independent(node: Any) -> bool:
    """A mask the kernel can compute as it goes: pointwise ops over inputs (or PASS views of
    inputs) and scalars, not reading the scores."""
    if not isinstance(node, Node):
        return True
    leaf = node
    while name(leaf) in PASS:
        leaf = args(leaf)[0]
    if leaf.op == "placeholder":
        return True
    return name(node) in MASK_OPS and all(_independent(a) for a in args(node))


NEG_INF = -math.inf


def _causal(node: Node, m: int, n: int, match: Match) -> Node | None:
    """If `node` applies a triu/tril causal mask to a score, record it and return the score."""
    op, a = name(node), args(node)
    found: tuple[Node, Node, int] | None = None  # (score, mask tree, keep offset)
    if op == "masked_fill" and len(a) > 2 and a[2] == NEG_INF:
        band = _band(a[1], m, n)
        if band is not None and band[0] == "masked":
            found = (a[0], a[1], band[1])
    elif op == "add" and len(a) == 2:
        for score, mask in ((a[0], a[1]), (a[1], a[0])):
            if name(mask) == "where" and isinstance(score, Node):
                band = _band(args(mask)[0], m, n)
                fill = [_scalar(x) for x in args(mask)[1:3]]  # where the band is true, false
                if band is not None and fill == ([0.0, NEG_INF] if band[0] == "kept"
                                                 else [NEG_INF, 0.0]):
                    found = (score, mask, band[1])
    elif op == "where" and len(a) == 3 and _scalar(a[2]) == NEG_INF and isinstance(a[1], Node):
        band = _band(a[0], m, n)
        if band is not None and band[0] == "kept":
            found = (a[1], a[0], band[1])
    if found is None or match.causal is not None:
        return None
    score, mask, keep = found
    match.causal = keep
    match.bypass[node] = score
    _mark_dead(mask, match, {node})
    return score


def _band(node: Any, m: int, n: int) -> tuple[str, int] | None:
    """("masked" | "kept", keep offset) for a boolean triu/tril of ones (or its negation)
    over [m, n]: key j is kept where j <= i + offset."""
    negate = False
    while name(node) in {"logical_not", "bitwise_not"}:
        negate, node = not negate, args(node)[0]
    op = name(node)
    if op not in {"triu", "tril"} or shape(node)[-2:] != (m, n) or math.prod(shape(node)) != m * n:
        return None
    ones = args(node)[0]
    if name(ones) not in {"ones", "ones_like"} and not (name(ones) == "full" and args(ones)[1] == 1):
        return None
    diagonal = int(args(node)[1]) if len(args(node)) > 1 else 0
    if op == "triu":  # true where j - i >= diagonal: those are the masked keys
        return ("kept" if negate else "masked"), diagonal - 1
    return ("masked" if negate else "kept"), diagonal  # tril: true where j - i <= diagonal


def _scalar(x: Any) -> float | None:
    if isinstance(x, int | float):
        return float(x)
    if name(x) in {"scalar_tensor", "full"} and not shape(x):
        return float(args(x)[0] if name(x) == "scalar_tensor" else args(x)[1])
    return None


def _mark_dead(node: Any, match: Match, readers: set[Node]) -> None:
    """`node` and what only it reads, when nothing but `readers` (dead ones) reads it."""
    if not isinstance(node, Node) or node.op != "call_function":
        return
    if not set(users(node)) <= readers | match.dead:
        return
    match.dead.add(node)
    for a in args(node):
        _mark_dead(a, match, readers)
