"""Fused attention kernels: softmax(scores(q @ k^T)) @ v over one BLOCK_M block of queries of
one batch entry; blocks of BLOCK_N keys stream through an online softmax, so the scores are never
stored (writer/attention.py finds the pattern in the aten graph)."""

from __future__ import annotations

import math

from kernelwright.writer.fuse import view_base
from kernelwright.writer.ir import Graph, contiguous_strides
from kernelwright.writer.kinds.base import (
    KernelWriter,
    dot_lines,
    index_expr,
    tile_mask,
    view_strides,
    with_offset,
)
from kernelwright.writer.schedule import KernelConfig, triton_next_pow2
from kernelwright.writer.sizes import divides


class AttentionKernel(KernelWriter):
    """An attention group: the two GEMMs, the score chain and the online softmax."""

    two_d = True

    def body(self, precision: str) -> list[str]:
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
        m_in = "" if divides(m, cfg.block_r) else f"(rm < {m})"
        n_in = "" if divides(n, cfg.block_c) else f"(rn < {n})"
        d_in, e_in = (f"(rd < {d})" if d != dp else ""), (f"(re < {dv})" if dv != dvp else "")
        def load(ptr: str, rows: tuple[str, int, str], cols: tuple[str, int, str]) -> str:
            (ri, rs, rmk), (ci, cs, cmk) = rows, cols
            mask = tile_mask(rmk, cmk)
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
            *dot_lines("q", "kt", "qk", precision, cfg.dot),
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
            *dot_lines("p", "vt", "acc", precision, cfg.dot),
            "        m_i = m_new",
            ("    out = tl.where(l_i[:, None] > 0, acc / l_i[:, None], 0.0)  # masked rows: 0"
             if att.attrs.get("safe") else "    out = acc / l_i[:, None]"),
        ]
        out = self.pointer(att)
        so = contiguous_strides((*batch, m, dv))
        if att.attrs.get("heads_last"):  # stored [B, M, H, Dv]: (b, h, m, e) lands there
            so = (so[0], dv, batch[1] * dv, 1)
        zo = index_expr("z", list(batch), list(so[:-2])) or "0"
        mask = tile_mask(m_in, e_in)
        self.lines += [f"    po = {out} + {zo}",
                       f"    tl.store(po + rm[:, None] * {so[-2]} + re[None, :], "
                       f"out.to({out}.dtype.element_ty)" + (f", mask={mask})" if mask else ")")]
        return self.lines

    @classmethod
    def describe(cls, config: KernelConfig) -> str:
        return (f"BLOCK_M={config.block_r} queries, BLOCK_N={config.block_c} keys a step, "
                f"num_warps={config.num_warps}, num_stages={config.num_stages}")

    def meta(self, precision: str) -> list[str]:
        return ["BLOCK_M", "BLOCK_N"] + (["WIDEN"] if precision in {"bf16", "fp16"} else [])

    def launch(self, precision: str) -> str:
        *lead, m, _ = self.g.shape
        return (f"    {self.name}[(triton.cdiv({m}, {self.cfg.block_r}), {math.prod(lead)})]"
                f"({self.args()}, BLOCK_M={self.cfg.block_r}, BLOCK_N={self.cfg.block_c}, "
                f"{self.dot_options(precision)}")

    def cost(self, graph: Graph) -> str:
        """Two GEMMs of [M, N] scores; about half of them if causal."""
        att = self.g.values[0]
        written = sum(v.numel * 4 for v in self.g.outputs)
        flops = 2 * math.prod(self.g.shape) * (att.args[0].shape[-1] + att.shape[-1])
        flops //= 2 if att.attrs.get("causal") is not None else 1
        return f"cost: writes {written} B, about {flops} FLOPs (scores never stored)"
