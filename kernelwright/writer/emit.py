"""Emit one readable Triton source for the fusion groups: imports, kernels, launchers, ModelNew.

Pointwise and pool groups are 1-D kernels over the flattened domain (BLOCK elements per
program). Reduction and scan groups are 2-D: BLOCK_R rows per program, the reduced dims as
columns, either persistent (a whole row in registers, read once) or looped over BLOCK_C-wide
chunks (one loop per dependent reduction pass, then one that computes and stores the outputs;
re-reads of a row hit L2). A plain reduction over few long rows is split: SPLIT programs per
row each reduce a slice into a partial buffer, and a second kernel combines the partials and
computes what follows the reduction. A matmul group is a tiled GEMM (BLOCK_M x BLOCK_N tiles
of the output, grouped program order for L2 reuse, a software-pipelined loop over K) whose
epilogue computes the group's pointwise values on the accumulator before the one store; the
precision policy picks the dot's inputs (fp32: full-precision "ieee" dots, tf32: TF32, bf16 and
fp16: those operands), always accumulating in fp32. Sizes and strides are baked in as
constants: the launcher checks the shapes it was written for.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import torch

from kernelwright.writer.fuse import leaf_map, view_base
from kernelwright.writer.ir import (
    DMap,
    Graph,
    Group,
    Unsupported,
    Value,
    contiguous_strides,
    view_layout,
)
from kernelwright.writer.ops import OPS, triton_literal
from kernelwright.writer.schedule import (
    KernelConfig,
    matmul_dims,
    splittable,
    triton_next_pow2,
)

NEUTRAL = {"sum": "0.0", "prod": "1.0", "max": '-float("inf")', "min": 'float("inf")',
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
    """Writes the kernel of one group; leaves become pointer arguments."""

    def __init__(self, group: Group, name: str, config: KernelConfig, pointer_of: dict[int, str],
                 stage: Literal["whole", "partial", "combine"] = "whole"):
        self.g, self.name, self.cfg, self.stage = group, name, config, stage
        self.pointer_of = pointer_of  # buffer value id -> pointer argument name
        self.params: list[str] = []  # pointer arguments in order
        self.two_d = group.kind in {"reduction", "scan", "matmul", "attention"}
        self.rows_dims = [k for k in range(len(group.shape)) if k not in group.axes]
        self.col_dims = list(group.axes)
        self.lines: list[str] = []
        self.helpers: set[str] = set()

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

    def load(self, leaf: Value, dmap: DMap) -> str:
        buffer = view_base(leaf)
        off, mask = self.offset(leaf.shape, view_strides(leaf), dmap)
        ptr = with_offset(self.pointer(buffer), leaf)
        cast = ".to(tl.float32)" if leaf.dtype.is_floating_point else ""
        if not mask:
            return f"tl.load({ptr}){cast}"
        return f"tl.load({ptr} + {off}, mask={mask}, other=0){cast}"

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
        if v.kind == "pool":
            return self.emit_pool(v, env, indent)
        raise AssertionError(f"{v.kind} {v.op} must be computed by its pass")

    def define_leaf(self, name: str, leaf: Value, lmap: DMap) -> str:
        return f"{name} = {self.load(leaf, lmap)}"

    literal = staticmethod(triton_literal)

    def define_value(self, v: Value, args: list[str]) -> str:
        expr = OPS[v.op].triton.format(*args)
        if v.dtype.is_floating_point and any(a.kind == "const" and isinstance(a.scalar, int)
                                             for a in v.args):
            expr = f"({expr}).to(tl.float32)"
        return f"v{v.id} = {expr}"

    def emit_pool(self, v: Value, env: dict[object, str], indent: int) -> str:
        pad = "    " * indent
        p = v.attrs
        nd = int(p["nd"])  # type: ignore[arg-type]
        src = v.args[0]
        in_sp = src.shape[-nd:]
        out_sp = v.shape[-nd:]
        ptr = with_offset(self.pointer(view_base(src)), src)
        if src.kind == "view" and view_strides(src) != contiguous_strides(src.shape):
            raise Unsupported(["pooling a permuted tensor"])
        lines = [f"lead = r // {math.prod(out_sp)}"]
        for i in range(nd):
            inner = math.prod(out_sp[i + 1:])
            q = "r" if inner == 1 else f"(r // {inner})"
            lines.append(f"o{i} = {q} % {out_sp[i]}")
        kernel, stride, padding, dil = (p[k] for k in ("kernel", "stride", "padding", "dilation"))
        acc = f"v{v.id}"
        is_max = v.op == "max"
        lines.append(f"{acc} = tl.full([BLOCK], {NEUTRAL['max'] if is_max else '0.0'}, "
                     "tl.float32)")
        if not is_max:
            lines.append(f"cnt{v.id} = tl.zeros([BLOCK], dtype=tl.float32)")
        body_pad = ""
        for i in range(nd):
            lines.append(f"{body_pad}for k{i} in tl.static_range({kernel[i]}):")  # type: ignore[index]
            body_pad += "    "
            lines.append(f"{body_pad}i{i} = o{i} * {stride[i]} - {padding[i]} + k{i} * {dil[i]}")  # type: ignore[index]
        ok = " & ".join(f"(i{i} >= 0) & (i{i} < {in_sp[i]})" for i in range(nd))
        off = f"lead * {math.prod(in_sp)}" + "".join(
            f" + i{i} * {math.prod(in_sp[i + 1:])}" for i in range(nd))
        other = NEUTRAL["max"] if is_max else "0.0"
        lines.append(f"{body_pad}ok = rmask & {ok}")
        lines.append(f"{body_pad}x = tl.load({ptr} + {off}, mask=ok, other={other}).to(tl.float32)")
        if is_max:
            lines.append(f"{body_pad}{acc} = tl.maximum({acc}, x)")
        else:
            lines.append(f"{body_pad}{acc} += x")
            lines.append(f"{body_pad}cnt{v.id} += tl.where(ok, 1.0, 0.0)")
        if not is_max:
            lines.append(f"{acc} = {acc} / {self.avg_divisor(v, in_sp, out_sp)}")
        self.lines += [f"{pad}{line}" for line in lines]
        env[v.id] = acc
        return acc

    def avg_divisor(self, v: Value, in_sp: tuple[int, ...], out_sp: tuple[int, ...]) -> str:
        p = v.attrs
        if p["divisor"]:
            return f"{float(p['divisor'])!r}"  # type: ignore[arg-type]
        if not p["include_pad"]:
            return f"tl.maximum(cnt{v.id}, 1.0)"
        terms = []
        for i in range(len(in_sp)):
            k, s, pd = p["kernel"][i], p["stride"][i], p["padding"][i]  # type: ignore[index]
            start = f"(o{i} * {s} - {pd})"
            end = f"tl.minimum({start} + {k}, {in_sp[i] + pd})"
            terms.append(f"({end} - {start})")
        return "(" + " * ".join(terms) + ").to(tl.float32)"

    def store(self, v: Value, name: str, indent: int) -> None:
        ptr = self.pointer(v)
        off, mask = self.offset(v.shape, contiguous_strides(v.shape), self.g.dmap[v.id])
        pad = "    " * indent
        dtype = f"{ptr}.dtype.element_ty"
        if not mask:  # one element (a 0-d result): the first row stores it
            off, mask = "0 * r", "r < 1"
        if self.g.kind == "matmul":  # a whole tile, even where a dim has size 1 (N = 1)
            used = set(re.findall(r"\b[rc]\b", off))
            off += "".join(f" + 0 * {i}" for i in ("r", "c") if i not in used)
            mask = "mask"
        self.lines.append(f"{pad}tl.store({ptr} + {off}, {name}.to({dtype}), mask={mask})")

    # kernels -----------------------------------------------------------------------------
    def write(self, precision: str = "fp32") -> list[str]:
        if self.g.kind == "matmul":
            body = self.write_matmul(precision)
            meta = ["BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M"] + (
                ["WIDEN"] if precision in {"bf16", "fp16"} else [])
        elif self.g.kind == "attention":
            body = self.write_attention(precision)
            meta = ["BLOCK_M", "BLOCK_N"] + (["WIDEN"] if precision in {"bf16", "fp16"} else [])
        elif self.two_d:
            body, meta = self.write_2d(), ["BLOCK_R", "BLOCK_C"]
        else:
            body, meta = self.write_1d(), ["BLOCK"]
        sig = ", ".join(self.params + [f"{m}: tl.constexpr" for m in meta])
        return ["@triton.jit", f"def {self.name}({sig}):"] + body

    def write_matmul(self, precision: str) -> list[str]:
        """A tiled GEMM over [batch, M, N] and its epilogue; the masks on the tile's edges are
        written only where the sizes do not divide."""
        mm = self.g.values[0]
        a, b = mm.args
        batch, m, n, k = matmul_dims(self.g)
        sa, sb = view_strides(a), view_strides(b)
        pa = with_offset(self.pointer(view_base(a)), a)
        pb = with_offset(self.pointer(view_base(b)), b)
        if mm.op == "conv":  # the weight [C_out, K] is B^T; A is gathered from the input
            sa, sb = (k, 1), (1, k)
        za = f"z * {sa[0]} + " if len(a.shape) == 3 else ""
        zb = f"z * {sb[0]} + " if len(b.shape) == 3 else ""
        cfg = self.cfg
        edge_m, edge_n, edge_k = m % cfg.block_r, n % cfg.block_c, k % cfg.block_k
        # an operand whose K is its contiguous dim is read as a K-contiguous tile (coalesced)
        # and transposed in registers: weight.t(), b.transpose(1, 2), a.t() @ b
        a_k_inner, b_k_inner = sa[-1] == 1 or sa[-2] != 1, sb[-2] == 1 and sb[-1] != 1
        m_in = f"(rm < {m})" if edge_m else ""
        n_in = f"(rn < {n})" if edge_n else ""
        k_in = f"(rk < {k} - k0)" if edge_k else ""
        a_mask = _tile_mask(m_in, k_in) if a_k_inner else _tile_mask(k_in, m_in)
        b_mask = _tile_mask(n_in, k_in) if b_k_inner else _tile_mask(k_in, n_in)
        a_tile = (f"rm[:, None] * {sa[-2]} + rk[None, :] * {sa[-1]}" if a_k_inner
                  else f"rk[:, None] * {sa[-1]} + rm[None, :] * {sa[-2]}")
        b_tile = (f"rn[:, None] * {sb[-1]} + rk[None, :] * {sb[-2]}" if b_k_inner
                  else f"rk[:, None] * {sb[-2]} + rn[None, :] * {sb[-1]}")
        x_tile = "x" if a_k_inner else "tl.trans(x)"
        y_tile = "tl.trans(y)" if b_k_inner else "y"
        split, chunk = cfg.split, self.split_k_chunk()
        head = [
            "    pid = tl.program_id(0)",
            "    z = tl.program_id(1)" if batch > 1 else "    z = 0",
            *(["    s = tl.program_id(2)  # this program's slice of K"] if split > 1 else []),
            f"    tiles_m, tiles_n = tl.cdiv({m}, BLOCK_M), tl.cdiv({n}, BLOCK_N)",
            "    # grouped order: GROUP_M row tiles share each column tile while it is in L2",
            "    width = GROUP_M * tiles_n",
            "    first_m = (pid // width) * GROUP_M",
            "    rows_here = tl.minimum(tiles_m - first_m, GROUP_M)",
            "    pid_m = first_m + (pid % width) % rows_here",
            "    pid_n = (pid % width) // rows_here",
            "    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)",
            "    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)",
        ]
        k_loop = [
            "    rk = tl.arange(0, BLOCK_K)",
            *([f"    a_ptrs = {pa} + {za}{a_tile}" + (f" + s * {chunk * sa[-1]}" if split > 1
                                                     else "")]
              if mm.op != "conv" else self.conv_rows(mm)),
            f"    b_ptrs = {pb} + {zb}{b_tile}" + (f" + s * {chunk * sb[-2]}" if split > 1 else ""),
            "    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
            f"    for k0 in range(s * {chunk}, tl.minimum(s * {chunk} + {chunk}, {k}), BLOCK_K):"
            if split > 1 else f"    for k0 in range(0, {k}, BLOCK_K):",
            *([f"        x = tl.load(a_ptrs{', mask=' + a_mask + ', other=0.0' if a_mask else ''})"]
              if mm.op != "conv" else self.conv_gather(mm, pa, edge_m, edge_k)),
            f"        y = tl.load(b_ptrs{', mask=' + b_mask + ', other=0.0' if b_mask else ''})",
            *dot_lines(x_tile, y_tile, "acc", precision),
            *([f"        a_ptrs += BLOCK_K * {sa[-1]}"] if mm.op != "conv" else []),
            f"        b_ptrs += BLOCK_K * {sb[-2]}",
        ]
        where = [
            "    # epilogue: r indexes (batch, M), c indexes N, as in the row kernels",
            f"    r = (z * {m} + rm)[:, None]",
            "    c = rn[None, :]",
            f"    rmask = (rm < {m})[:, None]",
            f"    cmask = c < {n}",
            "    mask = rmask & cmask",
        ]
        if self.stage == "partial":  # split-K: this slice's sum, for the combine kernel
            part = self.pointer_of[-mm.id]
            self.params.append(part)
            self.lines = head + k_loop + where[1:] + [
                f"    tl.store({part} + s * {batch * m * n} + r * {n} + c, acc, mask=mask)"]
            return self.lines
        if self.stage == "combine":  # split-K: add the slices, then the epilogue
            part = self.pointer_of[-mm.id]
            self.params.append(part)
            self.lines = head + where + [
                "    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
                f"    for s in range({split}):",
                f"        acc += tl.load({part} + s * {batch * m * n} + r * {n} + c, mask=mask, "
                "other=0.0)"]
        else:
            self.lines = head + k_loop + where
        env: dict[object, str] = {mm.id: "acc"}
        for out in self.g.outputs:
            self.store(out, self.emit(out, env, 1), 1)
        return self.lines

    def write_attention(self, precision: str) -> list[str]:
        """Fused attention over one BLOCK_M block of queries of one batch entry: blocks of
        BLOCK_N keys stream through an online softmax (running max and sum, the output
        rescaled as the max grows), so the scores are never stored. A causal mask is compared
        from indices and the loop stops at the last block of keys with anything unmasked."""
        att = self.g.values[0]
        q, kt, v = att.args
        scores, qk = att.body
        *batch, m, d = q.shape
        n, dv = kt.shape[-1], v.shape[-1]
        sq, sk, sv = view_strides(q), view_strides(kt), view_strides(v)
        pq = with_offset(self.pointer(view_base(q)), q)
        pk = with_offset(self.pointer(view_base(kt)), kt)
        pv = with_offset(self.pointer(view_base(v)), v)
        zq, zk, zv = (index_expr("z", list(batch), list(st[:-2])) or "0" for st in (sq, sk, sv))
        dp, dvp = max(16, triton_next_pow2(d)), max(16, triton_next_pow2(dv))
        cfg = self.cfg
        causal: int | None = att.attrs.get("causal")  # type: ignore[assignment]
        scale: float = att.attrs.get("scale", 1.0)  # type: ignore[assignment]
        m_in = f"(rm < {m})" if m % cfg.block_r else ""
        n_in = f"(rn < {n})" if n % cfg.block_c else ""
        d_in, e_in = (f"(rd < {d})" if d != dp else ""), (f"(re < {dv})" if dv != dvp else "")
        def load(ptr: str, rows: tuple[str, int, str], cols: tuple[str, int, str]) -> str:
            (ri, rs, rmk), (ci, cs, cmk) = rows, cols
            mask = _tile_mask(rmk, cmk)
            return (f"tl.load({ptr} + {ri}[:, None] * {rs} + {ci}[None, :] * {cs}"
                    + (f", mask={mask}, other=0.0)" if mask else ")"))

        stop = str(n) if causal is None else \
            f"tl.minimum({n}, (pid + 1) * BLOCK_M + {causal})"
        self.lines = [
            "    pid = tl.program_id(0)",
            "    z = tl.program_id(1)  # the batch entry (all leading dims, flattened)",
            "    rm = pid * BLOCK_M + tl.arange(0, BLOCK_M)",
            f"    rd = tl.arange(0, {dp})",
            f"    re = tl.arange(0, {dvp})",
            f"    pq = {pq} + {zq}",
            f"    pk = {pk} + {zk}",
            f"    pv = {pv} + {zv}",
            f"    q = {load('pq', ('rm', sq[-2], m_in), ('rd', sq[-1], d_in))}",
            "    m_i = tl.full((BLOCK_M,), -float(\"inf\"), tl.float32)  # running max of a row",
            "    l_i = tl.zeros((BLOCK_M,), tl.float32)  # running sum of exp(score - max)",
            f"    acc = tl.zeros((BLOCK_M, {dvp}), tl.float32)",
            "    # the score chain's r (batch, M) and c (N), as in the row kernels",
            f"    r = (z * {m} + rm)[:, None]",
            f"    rmask = (rm < {m})[:, None]",
            *(["    # causal: the blocks of keys past this block's last query are masked throughout"]
              if causal is not None else []),
            f"    for n0 in range(0, {stop}, BLOCK_N):",
            "        rn = n0 + tl.arange(0, BLOCK_N)",
            "        c = rn[None, :]",
            f"        cmask = c < {n}",
            "        mask = rmask & cmask",
            f"        kt = {load('pk', ('rd', sk[-2], d_in), ('rn', sk[-1], n_in))}",
            "        qk = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)",
            *dot_lines("q", "kt", "qk", precision),
        ]
        if scale != 1.0:
            self.lines.append(f"        qk = qk * {scale!r}")
        env: dict[object, str] = {qk.id: "qk"}
        x = self.emit(scores, env, 2)
        keep = [f"(c <= rm[:, None] + {causal})"] if causal is not None else []
        keep += ["cmask"] if n_in else []  # keys past the end
        if keep:
            self.lines.append(f"        s = tl.where({' & '.join(keep)}, {x}, -float(\"inf\"))")
            x = "s"
        self.lines += [
            f"        m_new = tl.maximum(m_i, tl.max({x}, 1))",
            "        m_use = tl.where(m_new == -float(\"inf\"), 0.0, m_new)  # a row masked so far",
            f"        p = tl.exp({x} - m_use[:, None])",
            "        alpha = tl.exp(m_i - m_use)",
            "        l_i = l_i * alpha + tl.sum(p, 1)",
            f"        vt = {load('pv', ('rn', sv[-2], n_in), ('re', sv[-1], e_in))}",
            "        acc = acc * alpha[:, None]",
            *dot_lines("p", "vt", "acc", precision),
            "        m_i = m_new",
            ("    out = tl.where(l_i[:, None] > 0, acc / l_i[:, None], 0.0)  # masked rows: 0"
             if att.attrs.get("safe") else "    out = acc / l_i[:, None]"),
        ]
        out = self.pointer(att)
        so = contiguous_strides((*batch, m, dv))
        if att.attrs.get("heads_last"):  # stored [B, M, H, Dv]: (b, h, m, e) lands there
            so = (so[0], dv, batch[1] * dv, 1)
        zo = index_expr("z", list(batch), list(so[:-2])) or "0"
        mask = _tile_mask(m_in, e_in)
        self.lines += [f"    po = {out} + {zo}",
                       f"    tl.store(po + rm[:, None] * {so[-2]} + re[None, :], "
                       f"out.to({out}.dtype.element_ty)" + (f", mask={mask})" if mask else ")")]
        return self.lines

    def split_k_chunk(self) -> int:
        """K per program of a split-K GEMM: a multiple of BLOCK_K, so slices never overlap."""
        k = matmul_dims(self.g)[3]
        per = -(-k // self.cfg.split)
        return -(-per // self.cfg.block_k) * self.cfg.block_k

    def conv_rows(self, conv: Value) -> list[str]:
        """Before the K loop of an implicit-GEMM convolution: each GEMM row's (n, oh, ow)."""
        _, _, ho, wo = conv.shape
        return [f"    n_img, oh, ow = rm // {ho * wo}, (rm // {wo}) % {ho}, rm % {wo}"]

    def conv_gather(self, conv: Value, ptr: str, edge_m: int, edge_k: int) -> list[str]:
        """In the K loop: the [BLOCK_M, BLOCK_K] tile of the unfolded input (im2col, never
        stored), zero outside the padded image."""
        x = conv.args[0]
        _, cin, h, w = x.shape
        kh, kw = conv.args[1].shape[2:]
        sx = view_strides(x)
        (sh, sw), (ph, pw), (dh, dw) = (tuple(conv.attrs[key])  # type: ignore[arg-type]
                                        for key in ("stride", "padding", "dilation"))
        ok = [f"(ih >= 0) & (ih < {h}) & (iw >= 0) & (iw < {w})"]
        if edge_m:
            ok.append(f"(rm < {conv.shape[0] * conv.shape[2] * conv.shape[3]})[:, None]")
        if edge_k:
            ok.append(f"(kk < {cin * kh * kw})[None, :]")
        return [
            "        kk = k0 + rk",
            f"        ci, i, j = kk // {kh * kw}, (kk // {kw}) % {kh}, kk % {kw}",
            f"        ih = oh[:, None] * {sh} - {ph} + i[None, :] * {dh}",
            f"        iw = ow[:, None] * {sw} - {pw} + j[None, :] * {dw}",
            f"        x = tl.load({ptr} + n_img[:, None] * {sx[0]} + ci[None, :] * {sx[1]} "
            f"+ ih * {sx[2]} + iw * {sx[3]}, mask={' & '.join(ok)}, other=0.0)"]

    def write_1d(self) -> list[str]:
        n = math.prod(self.g.shape)
        self.lines = ["    r = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
                      f"    rmask = r < {n}"]
        env: dict[object, str] = {}
        for out in self.g.outputs:
            self.store(out, self.emit(out, env, 1), 1)
        return self.lines

    def passes(self) -> dict[int, int]:
        """Pass number of each reduction: 1 + the deepest reduction its input depends on."""
        memo: dict[int, int] = {}

        def depth(v: Value) -> int:
            if not self.g.has(v):
                return 0
            if v.id not in memo:
                inner = max((depth(a) for a in v.args), default=0)
                memo[v.id] = inner + 1 if v.kind == "reduce" else inner
            return memo[v.id]

        return {v.id: depth(v) for v in self.g.values if v.kind == "reduce"}

    def write_2d(self) -> list[str]:
        rows, cols = self.g.rows, self.g.cols
        self.lines = ["    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)[:, None]",
                      f"    rmask = r < {rows}"]
        passes = self.passes()
        reductions = sorted((v for v in self.g.values if v.kind == "reduce"),
                            key=lambda v: passes[v.id])
        full_outputs = [o for o in self.g.outputs if self.is_full(o)]
        row_outputs = [o for o in self.g.outputs if not self.is_full(o)]
        row_env: dict[object, str] = {}
        if self.stage == "partial":  # this program's slice of each row, into a partial buffer
            chunk = self.split_chunk()
            self.lines.append("    s = tl.program_id(1)")
            for red in reductions:
                self.init_acc(red, 1)
            self.lines += [f"    for c0 in range(0, {chunk}, BLOCK_C):",
                           f"        c = s * {chunk} + c0 + tl.arange(0, BLOCK_C)[None, :]",
                           f"        cmask = c < {cols}",
                           "        mask = rmask & cmask"]
            env: dict[object, str] = {}
            for red in reductions:
                self.update_acc(red, self.emit_arg(red, env, 2), 2)
            for out in full_outputs:  # read by a later kernel; never after the reduction here
                self.store(out, self.emit(out, env, 2), 2)
            for red in reductions:
                self.finish_reduction(red, None, row_env, 1)
                ptr = self.pointer_of[-red.id]
                self.params.append(ptr)
                self.lines.append(f"    tl.store({ptr} + r * {self.cfg.split} + s, v{red.id}, "
                                  "mask=rmask)")
            return self.lines
        if self.stage == "combine":  # reduce the partials, then what follows per row
            self.lines += ["    c = tl.arange(0, BLOCK_C)[None, :]",
                           f"    cmask = c < {self.cfg.split}", "    mask = rmask & cmask"]
            for red in reductions:
                ptr = self.pointer_of[-red.id]
                self.params.append(ptr)
                self.lines.append(f"    p{red.id} = tl.load({ptr} + r * {self.cfg.split} + c, "
                                  f"mask=mask, other={NEUTRAL[red.op]})")
                self.finish_reduction(red, f"p{red.id}", row_env, 1)
            for out in row_outputs:
                self.store(out, self.emit(out, row_env, 1), 1)
            return self.lines
        if self.cfg.persistent:
            self.lines += ["    c = tl.arange(0, BLOCK_C)[None, :]", f"    cmask = c < {cols}",
                           "    mask = rmask & cmask"]
            env = row_env
            for red in reductions:
                self.finish_reduction(red, self.emit_arg(red, env, 1), env, 1)
            self.emit_outputs(full_outputs, env, 1, direct=True)
        else:
            for p in sorted(set(passes.values())):
                group = [v for v in reductions if passes[v.id] == p]
                for red in group:
                    self.init_acc(red, 1)
                self.open_loop()
                env = dict(row_env)
                for red in group:
                    self.update_acc(red, self.emit_arg(red, env, 2), 2)
                for red in group:
                    self.finish_reduction(red, None, row_env, 1)
            if full_outputs:
                scans = [v for v in self.g.values if v.kind == "scan"]
                for s in scans:
                    self.lines.append(f"    carry{s.id} = tl.full([BLOCK_R, 1], "
                                      f"{'0.0' if s.op == 'cumsum' else '1.0'}, tl.float32)")
                self.open_loop()
                self.emit_outputs(full_outputs, dict(row_env), 2, direct=False)
        for out in row_outputs:
            self.store(out, self.emit(out, row_env, 1), 1)
        return self.lines

    def split_chunk(self) -> int:
        """Columns per program of a split row: a multiple of BLOCK_C, so slices never overlap."""
        per = -(-self.g.cols // self.cfg.split)
        return -(-per // self.cfg.block_c) * self.cfg.block_c

    def is_full(self, v: Value) -> bool:
        return any(k in self.g.axes for k, s in zip(self.g.dmap[v.id], v.shape, strict=True)
                   if k is not None and s > 1)

    def open_loop(self) -> None:
        self.lines += [f"    for c0 in range(0, {self.g.cols}, BLOCK_C):",
                       "        c = c0 + tl.arange(0, BLOCK_C)[None, :]",
                       f"        cmask = c < {self.g.cols}",
                       "        mask = rmask & cmask"]

    def emit_arg(self, v: Value, env: dict[object, str], indent: int) -> str:
        arg = v.args[0]
        if self.g.has(arg):
            return self.emit(arg, env, indent)
        amap = leaf_map(arg.shape, self.g.shape, tuple(range(len(self.g.shape))))
        return self.emit(arg, env, indent, amap, arg.shape) if amap is not None else \
            self.emit(arg, env, indent, tuple(range(len(self.g.shape))), self.g.shape)

    def emit_outputs(self, outputs: list[Value], env: dict[object, str], indent: int,
                     direct: bool) -> None:
        pad = "    " * indent
        for s in (v for v in self.g.values if v.kind == "scan"):
            x = self.emit_arg(s, env, indent)
            neutral = "0.0" if s.op == "cumsum" else "1.0"
            self.lines.append(f"{pad}s{s.id} = tl.where(mask, {x}, {neutral})")
            if direct:
                self.lines.append(f"{pad}v{s.id} = tl.{s.op}(s{s.id}, axis=1)")
            elif s.op == "cumsum":
                self.lines += [f"{pad}v{s.id} = tl.cumsum(s{s.id}, axis=1) + carry{s.id}",
                               f"{pad}carry{s.id} += tl.sum(s{s.id}, axis=1)[:, None]"]
            else:
                self.helpers.add(PROD_COMBINE)
                self.lines += [f"{pad}v{s.id} = tl.cumprod(s{s.id}, axis=1) * carry{s.id}",
                               f"{pad}carry{s.id} *= tl.reduce(s{s.id}, 1, _prod_combine)[:, None]"]
            env[s.id] = f"v{s.id}"
        for out in outputs:
            self.store(out, self.emit(out, env, indent), indent)

    def init_acc(self, red: Value, indent: int) -> None:
        pad = "    " * indent
        self.lines.append(f"{pad}acc{red.id} = tl.full([BLOCK_R, BLOCK_C], {NEUTRAL[red.op]}, "
                          "tl.float32)")
        if red.op.startswith("arg"):
            self.lines.append(f"{pad}idx{red.id} = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.int32)")

    def update_acc(self, red: Value, arg: str, indent: int) -> None:
        pad = "    " * indent
        x = f"tl.where(mask, {arg}, {NEUTRAL[red.op]})"
        a = f"acc{red.id}"
        if red.op == "sum":
            self.lines.append(f"{pad}{a} += {x}")
        elif red.op == "prod":
            self.lines.append(f"{pad}{a} *= {x}")
        elif red.op in {"max", "min"}:
            fn = "maximum" if red.op == "max" else "minimum"
            self.lines.append(f"{pad}{a} = tl.{fn}({a}, {x})")
        else:
            cmp = ">" if red.op == "argmax" else "<"
            self.lines += [f"{pad}x{red.id} = {x}", f"{pad}take = x{red.id} {cmp} {a}",
                           f"{pad}idx{red.id} = tl.where(take, c + 0 * r, idx{red.id})",
                           f"{pad}{a} = tl.where(take, x{red.id}, {a})"]

    def finish_reduction(self, red: Value, direct_arg: str | None, env: dict[object, str],
                         indent: int) -> None:
        """Collapse the accumulator (or, persistent, the whole row) to one value per row."""
        pad = "    " * indent
        name = f"v{red.id}"
        if direct_arg is not None:  # persistent: the row is in registers
            self.lines.append(f"{pad}acc{red.id} = tl.where(mask, {direct_arg}, {NEUTRAL[red.op]})")
            if red.op.startswith("arg"):
                self.lines.append(f"{pad}idx{red.id} = c + 0 * r")
        a = f"acc{red.id}"
        if red.op == "sum":
            self.lines.append(f"{pad}{name} = tl.sum({a}, axis=1)[:, None]")
        elif red.op in {"max", "min"}:
            self.lines.append(f"{pad}{name} = tl.{red.op}({a}, axis=1)[:, None]")
        elif red.op == "prod":
            self.helpers.add(PROD_COMBINE)
            self.lines.append(f"{pad}{name} = tl.reduce({a}, 1, _prod_combine)[:, None]")
        else:
            best = "max" if red.op == "argmax" else "min"
            self.lines += [f"{pad}best{red.id} = tl.{best}({a}, axis=1)[:, None]",
                           f"{pad}{name} = tl.min(tl.where({a} == best{red.id}, idx{red.id}, "
                           f"{self.g.cols}), axis=1)[:, None]"]
        env[red.id] = name


def dot_lines(x: str, y: str, acc: str, precision: str) -> list[str]:
    """`acc += x @ y` inside a loop, as the precision policy says: fp32 full-precision ("ieee")
    dots, tf32 TF32, bf16/fp16 16-bit operands; always accumulating in fp32."""
    cast = {"bf16": ".to(tl.bfloat16)", "fp16": ".to(tl.float16)"}.get(precision, "")
    if not cast:
        mode = {"fp32": ', input_precision="ieee"', "tf32": ', input_precision="tf32"'}.get(
            precision, "")
        return [f"        {acc} = tl.dot({x}, {y}, {acc}{mode})"]
    return ["        if WIDEN:  # the interpreter's 16-bit dot is wrong; fp32 products match",
            f"            {acc} = tl.dot({x}.to(tl.float32), {y}.to(tl.float32), {acc}, "
            'input_precision="ieee")',
            "        else:",
            f"            {acc} = tl.dot({x}{cast}, {y}{cast}, {acc})"]


def _tile_mask(rows: str, cols: str) -> str:
    """The mask of a 2-D tile from its row and column conditions ("" where a side divides)."""
    return " & ".join(t for t in (rows and f"{rows}[:, None]", cols and f"{cols}[None, :]") if t)


PROD_COMBINE = '''@triton.jit
def _prod_combine(a, b):
    return a * b
'''


def write_module(title: str, graph: Graph, groups: list[Group], configs: list[KernelConfig],
                 param_names: list[str], buffer_names: set[str], precision: str = "fp32") -> str:
    """The candidate source: kernels, launchers, a forward and ModelNew holding the parameters."""
    pointer_of: dict[int, str] = {}
    for v in graph.inputs:
        pointer_of[v.id] = f"in{v.input_index}_ptr"
    for g in groups:
        for v in g.outputs:
            pointer_of[v.id] = f"buf{v.id}_ptr"
    kernels, launches, helpers, partials = [], [], set(), []
    for i, (g, cfg) in enumerate(zip(groups, configs, strict=True)):
        if g.kind == "extern":  # `library` mode: the vendor's GEMM or convolution
            launches.append(f"    buf{g.values[0].id} = {_extern_call(g.values[0])}")
            continue
        if cfg.split > 1 and g.kind != "matmul" and not splittable(g):
            raise ValueError(f"kernel{i}: a {g.kind} group cannot be split")
        if cfg.split > 1 and g.kind == "matmul":  # split-K: partial sums, then the epilogue
            batch, m, n, _ = matmul_dims(g)
            mm = g.values[0]
            pointer_of[-mm.id] = f"part{mm.id}_ptr"
            partials.append(f"part{mm.id} = torch.empty(({cfg.split}, {batch * m * n}), "
                            "device={device}.device, dtype=torch.float32)")
            stages = [("partial", cfg, ""), ("combine", cfg, "")]
        elif cfg.split > 1:
            for red in (v for v in g.values if v.kind == "reduce"):
                pointer_of[-red.id] = f"part{red.id}_ptr"  # keyed -id: the partials of red
                partials.append(f"part{red.id} = torch.empty(({g.rows}, {cfg.split}), "
                                "device={device}.device, dtype=torch.float32)")
            stages = [("partial", cfg, f"(triton.cdiv({g.rows}, {cfg.block_r}), {cfg.split})"),
                      ("combine", KernelConfig(block_r=1, block_c=triton_next_pow2(cfg.split),
                                               num_warps=4, split=cfg.split), f"({g.rows},)")]
        else:
            stages = [("whole", cfg, "")]
        for stage, stage_cfg, grid in stages:
            name = f"kernel{i}_{g.kind}" + ("" if stage == "whole" else f"_{stage}")
            writer = KernelWriter(g, name, stage_cfg, pointer_of, stage)  # type: ignore[arg-type]
            body = writer.write(precision)
            helpers |= writer.helpers
            kernels.append("\n".join([f"# {_cost(g, writer, graph)}; {cfg.describe(g.kind)}"]
                                     + body))
            args = ", ".join(p.removesuffix("_ptr") for p in writer.params)
            # tl.dot kernels: 16-bit dots widened to fp32 under the interpreter (on the CPU)
            dots = (f"WIDEN={args.split(',')[0]}.device.type == 'cpu', "
                    if precision in {"bf16", "fp16"} else "") + \
                f"num_warps={cfg.num_warps}, num_stages={cfg.num_stages})"
            if g.kind == "attention":
                *lead, m, _ = g.shape
                launches.append(
                    f"    {writer.name}[(triton.cdiv({m}, {cfg.block_r}), {math.prod(lead)})]"
                    f"({args}, BLOCK_M={cfg.block_r}, BLOCK_N={cfg.block_c}, {dots}")
                continue
            if g.kind == "matmul":
                batch, m, n, _ = matmul_dims(g)
                slices = f", {cfg.split}" if stage == "partial" else ""
                launches.append(
                    f"    {writer.name}[(triton.cdiv({m}, {cfg.block_r}) * triton.cdiv({n}, "
                    f"{cfg.block_c}), {batch}{slices})]({args}, BLOCK_M={cfg.block_r}, "
                    f"BLOCK_N={cfg.block_c}, BLOCK_K={cfg.block_k}, GROUP_M={cfg.group_m}, {dots}")
                continue
            if writer.two_d:
                grid = grid or f"(triton.cdiv({g.rows}, {stage_cfg.block_r}),)"
                meta = f"BLOCK_R={stage_cfg.block_r}, BLOCK_C={stage_cfg.block_c}"
            else:
                grid = f"(triton.cdiv({math.prod(g.shape)}, {cfg.block_r}),)"
                meta = f"BLOCK={cfg.block_r}"
            launches.append(f"    {writer.name}[{grid}]({args}, {meta}, "
                            f"num_warps={stage_cfg.num_warps})")
    lines = [f'"""{title}"""', "", "import torch", "import torch.nn as nn", "import triton",
             "import triton.language as tl", "", ""]
    for h in sorted(helpers):
        lines += [h, ""]
    for k in kernels:
        lines += [k, "", ""]
    lines += forward_impl(graph, groups, partials, launches)
    lines += ["", ""] + _model_class(graph, param_names, buffer_names)
    return "\n".join(lines) + "\n"


def forward_impl(graph: Graph, groups: list[Group], partials: list[str], launches: list[str]
                 ) -> list[str]:
    """The module's forward_impl: check shapes, allocate each group's buffers, run the launches."""
    n_in = len(graph.inputs)
    lines = [f"def forward_impl({', '.join(f'in{i}' for i in range(n_in))}):",
             f'    """Run the {len(groups)} kernel(s); inputs: parameters, then forward arguments."""']
    for v in graph.inputs:
        i = v.input_index
        lines.append(f"    assert tuple(in{i}.shape) == {tuple(v.shape)!r}, "
                     f'f"{graph.input_names[i]}: expected shape {tuple(v.shape)}, got '
                     f'{{tuple(in{i}.shape)}}"')
        lines.append(f"    in{i} = in{i}.contiguous()")
    device = "in" + str(graph.n_params if graph.n_params < n_in else 0)
    outs = {view_base(o).id for o in graph.outputs}  # an output's dtype, even through a view
    for g in (g for g in groups if g.kind != "extern"):
        for v in g.outputs:
            dtype = v.dtype if v.id in outs or not v.dtype.is_floating_point else torch.float32
            lines.append(f"    buf{v.id} = torch.empty({tuple(v.shape)!r}, device={device}.device, "
                         f"dtype={dtype})")
    lines += ["    " + p.format(device=device) for p in partials]
    lines += launches
    results = [_tensor_expr(o) for o in graph.outputs]
    lines.append(f"    return {results[0] if len(results) == 1 else '(' + ', '.join(results) + ')'}")
    return lines


def _tensor_expr(v: Value) -> str:
    """The launcher's name for `v`: a buffer, an input, or a view of one."""
    if v.kind == "input":
        return f"in{v.input_index}"
    if v.kind != "view":
        return f"buf{v.id}"
    base = _tensor_expr(v.args[0])
    if v.op == "permute":
        return f"{base}.permute{tuple(v.dims)!r}"
    if v.op == "slice":
        dim, start, step = (v.attrs[k] for k in ("dim", "start", "step"))
        return f"{base}[{':, ' * int(dim)}{start}:{start + v.shape[dim] * step}:{step}]"  # type: ignore
    return f"{base}.reshape{tuple(v.shape)!r}"


def _extern_call(v: Value) -> str:
    args = [_tensor_expr(a) for a in v.args]
    if v.op in {"mm", "bmm"}:
        return f"torch.{v.op}({args[0]}, {args[1]})"
    if v.op == "addmm":  # (x, w, bias): the bias added in the GEMM's epilogue
        return f"torch.addmm({args[2]}, {args[0]}, {args[1]})"
    a = v.attrs
    nd = len(v.shape) - 2
    if a["transposed"]:
        return (f"torch.nn.functional.conv_transpose{nd}d({args[0]}, {args[1]}, None, "
                f"{a['stride']}, {a['padding']}, {a['output_padding']}, {a['groups']}, "
                f"{a['dilation']})")
    return (f"torch.nn.functional.conv{nd}d({args[0]}, {args[1]}, None, {a['stride']}, "
            f"{a['padding']}, {a['dilation']}, {a['groups']})")


def _model_class(graph: Graph, param_names: list[str], buffer_names: set[str]) -> list[str]:
    """ModelNew with the reference's parameter and buffer names, so its state dict loads."""
    lists = {name.rsplit(".", 1)[0] for name in _prefixes(param_names)
             if "." in name and name.rsplit(".", 1)[1].isdigit()}  # nn.Sequential and friends
    lines = ["class ModelNew(nn.Module):",
             '    """Same parameters (names and shapes) as the reference; the kernels do the work."""',
             "", "    def __init__(self, *args, **kwargs):", "        super().__init__()"]
    for prefix in _prefixes(param_names):
        container = "nn.ModuleDict()" if prefix in lists else "nn.Module()"
        lines.append(f"        {_attr(prefix)} = {container}")
    for i, name in enumerate(param_names):
        parent, _, leaf = name.rpartition(".")
        owner = _attr(parent) if parent else "self"
        init = f"torch.zeros({tuple(graph.inputs[i].shape)!r}, dtype={graph.inputs[i].dtype})"
        if name in buffer_names:
            lines.append(f"        {owner}.register_buffer({leaf!r}, {init})")
        else:
            lines.append(f"        {owner}.register_parameter({leaf!r}, nn.Parameter({init}))")
    args = [f"a{i}" for i in range(len(graph.inputs) - graph.n_params)]
    params = [_attr(name) for name in param_names]
    lines += ["", f"    def forward(self, {', '.join(args)}):",
              f"        return forward_impl({', '.join(params + args)})"]
    return lines


def _prefixes(names: list[str]) -> list[str]:
    """Every submodule path above the given parameter names, parents first."""
    out: list[str] = []
    for name in names:
        parts = name.split(".")[:-1]
        for k in range(1, len(parts) + 1):
            prefix = ".".join(parts[:k])
            if prefix not in out:
                out.append(prefix)
    return out


def _attr(path: str) -> str:
    """`self.net["0"].weight` for "net.0.weight"."""
    expr = "self"
    for part in path.split("."):
        expr = f"{expr}[{part!r}]" if part.isdigit() else f"{expr}.{part}"
    return expr


def _cost(g: Group, writer: KernelWriter, graph: Graph) -> str:
    read = sum(v.numel * v.dtype.itemsize for v in graph.inputs
               if f"in{v.input_index}_ptr" in writer.params)
    written = sum(v.numel * 4 for v in g.outputs)
    if g.kind == "attention":  # two GEMMs of [M, N] scores; about half of them if causal
        att = g.values[0]
        flops = 2 * math.prod(g.shape) * (att.args[0].shape[-1] + att.shape[-1])
        flops //= 2 if att.attrs.get("causal") is not None else 1
        return f"cost: writes {written} B, about {flops} FLOPs (scores never stored)"
    flops = sum(math.prod(g.shape) * (2 * matmul_dims(g)[3] if v.kind == "matmul" else 1)
                for v in g.values if v.kind != "pool")
    return f"cost: reads about {read} B, writes {written} B, about {flops} FLOPs"
