"""GEMM kernels (mm, bmm, and 2-d convolutions as implicit GEMMs): BLOCK_M x BLOCK_N tiles of
the output, grouped program order for L2 reuse, a software-pipelined loop over K, and an
epilogue that computes the group's pointwise values on the accumulator before the one store.
The precision policy picks the dot's inputs (fp32: full-precision dots, FMA ("ieee") or 3xTF32
on the tensor cores, as the configuration says; tf32: TF32; bf16 and fp16: those operands),
always accumulating in fp32. Skinny GEMMs split K (partial sums, then a combine kernel that runs
the epilogue)."""

from __future__ import annotations

import re
from typing import Any

from kernelwright.writer.fuse import view_base
from kernelwright.writer.ir import Graph, Group, Value
from kernelwright.writer.kinds.base import (
    KernelWriter,
    Stage,
    StageName,
    dot_lines,
    tile_mask,
    view_strides,
    with_offset,
)
from kernelwright.writer.schedule import KernelConfig, k_inner, matmul_dims
from kernelwright.writer.sizes import ceil_div, divides, hint

PACK_KEY = 1 << 40  # pointer_of keys of the K-major copies, apart from value ids
PACKS: tuple[StageName, StageName] = ("pack_a", "pack_b")  # the stages that copy A, B K-major


class MatmulKernel(KernelWriter):
    """A matmul group: the GEMM and its epilogue."""

    two_d = True

    def body(self, precision: str) -> list[str]:
        """A tiled GEMM over [batch, M, N] and its epilogue; the masks on the tile's edges are
        written only where the sizes do not divide."""
        mm = self.g.values[0]
        a, b = mm.args
        batch, m, n, k = matmul_dims(self.g)
        if self.stage in PACKS:
            return self.pack_body(PACKS.index(self.stage))
        packed = packed_operands(self.g, self.cfg)
        if 0 in packed:  # read A from its K-major copy [.., M, K]
            kp = packed_k(k)
            pa, sa = self.use_pack(0), (m * kp, kp, 1)[-len(a.shape):]
        else:
            pa, sa = with_offset(self.pointer(view_base(a)), a), view_strides(a)
        if 1 in packed:  # read B from its K-major copy [.., N, K] (B^T row-major)
            kp = packed_k(k)
            pb, sb = self.use_pack(1), (n * kp, 1, kp)[-len(b.shape):]
        else:
            pb, sb = with_offset(self.pointer(view_base(b)), b), view_strides(b)
        if mm.op == "conv":  # the weight [C_out, K] is B^T; A is gathered from the input
            sa, sb = (k, 1), (1, k)
        za = f"z * {sa[0]} + " if len(a.shape) == 3 else ""
        zb = f"z * {sb[0]} + " if len(b.shape) == 3 else ""
        cfg = self.cfg
        # a tile's edge is masked unless a constant size divides it (a symbolic one never counts)
        edge_m, edge_n, edge_k = (not divides(m, cfg.block_r), not divides(n, cfg.block_c),
                                  not divides(k, cfg.block_k))
        # an operand whose K is its contiguous dim is read as a K-contiguous tile (coalesced)
        # and transposed in registers: weight.t(), b.transpose(1, 2), a.t() @ b
        a_k_inner, b_k_inner = k_inner(sa, sb)
        m_in = f"(rm < {m})" if edge_m else ""
        n_in = f"(rn < {n})" if edge_n else ""
        k_in = f"(rk < {k} - k0)" if edge_k else ""
        a_mask = tile_mask(m_in, k_in) if a_k_inner else tile_mask(k_in, m_in)
        b_mask = tile_mask(n_in, k_in) if b_k_inner else tile_mask(k_in, n_in)
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
            *dot_lines(x_tile, y_tile, "acc", precision, cfg.dot),
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

    def use_pack(self, j: int) -> str:
        name = f"pack{self.g.values[0].id}_{j}_ptr"
        self.params.append(name)
        return name

    def pack_body(self, j: int) -> list[str]:
        """A K-major copy of operand j (0: A, 1: B): out[z, p, q] with q along K, read along the
        operand's contiguous dim and written along K, the layout converted in shared memory (as
        the transpose kind does)."""
        mm = self.g.values[0]
        x = mm.args[j]
        batch, m, n, k = matmul_dims(self.g)
        s = view_strides(x)
        rows = (m, n)[j]  # the operand's other dim: p indexes it, q indexes K
        sp, sq = (s[-2], s[-1]) if j == 0 else (s[-1], s[-2])
        src = with_offset(self.pointer(view_base(x)), x)
        dst = self.use_pack(j)
        zs = f"z * {s[0]} + " if len(x.shape) == 3 else ""
        self.lines = [
            "    z = tl.program_id(2)",
            "    p = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)[:, None]",
            "    q = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]",
            f"    mask = (p < {rows}) & (q < {k})",
            f"    tile = tl.load({src} + {zs}p * {sp} + q * {sq}, mask=mask)",
            f"    tl.store({dst} + z * {rows * packed_k(k)} + p * {packed_k(k)} + q, tile, mask=mask)"]
        return self.lines

    def cost(self, graph: Graph) -> str:
        if self.stage not in PACKS:
            return super().cost(graph)
        x = self.g.values[0].args[PACKS.index(self.stage)]
        return f"cost: reads and writes {x.numel * 4} B each (a K-major copy)"

    def split_k_chunk(self) -> int:
        """K per program of a split-K GEMM: a multiple of BLOCK_K, so slices never overlap."""
        k = matmul_dims(self.g)[3]
        per = ceil_div(k, self.cfg.split)
        return ceil_div(per, self.cfg.block_k) * self.cfg.block_k

    def conv_rows(self, conv: Value) -> list[str]:
        """Before the K loop of an implicit-GEMM convolution: each GEMM row's (n, oh, ow)."""
        _, _, ho, wo = conv.shape
        return [f"    n_img, oh, ow = rm // {ho * wo}, (rm // {wo}) % {ho}, rm % {wo}"]

    def conv_gather(self, conv: Value, ptr: str, edge_m: bool, edge_k: bool) -> list[str]:
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

    def store_at(self, off: str, mask: str) -> tuple[str, str]:
        """A whole tile, even where a dim has size 1 (N = 1)."""
        used = set(re.findall(r"\b[rc]\b", off))
        return off + "".join(f" + 0 * {i}" for i in ("r", "c") if i not in used), "mask"

    def meta(self, precision: str) -> list[str]:
        if self.stage in PACKS:
            return ["BLOCK_R", "BLOCK_C"]
        return ["BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M"] + (
            ["WIDEN"] if precision in {"bf16", "fp16"} else [])

    @classmethod
    def stages(cls, g: Group, cfg: KernelConfig) -> list[Stage]:
        packs = [Stage(PACKS[j], cfg) for j in packed_operands(g, cfg)]
        if cfg.split == 1:
            return packs + [Stage("whole", cfg)]
        return packs + [Stage("partial", cfg), Stage("combine", cfg)]  # split-K

    def partials(self) -> list[tuple[int, str]]:
        batch, m, n, k = matmul_dims(self.g)
        mm = self.g.values[0]
        out = []
        for j in packed_operands(self.g, self.cfg):
            x = mm.args[j]
            copies = batch if len(x.shape) == 3 else 1
            out.append((PACK_KEY + 2 * mm.id + j, f"pack{mm.id}_{j} = torch.empty(({copies}, "
                        f"{(m, n)[j] * packed_k(k)}), device={{device}}.device, dtype=torch.float32)"))
        if self.cfg.split > 1:
            out.append((-mm.id, f"part{mm.id} = torch.empty(({self.cfg.split}, {batch * m * n}), "
                        "device={device}.device, dtype=torch.float32)"))
        return out

    def launch(self, precision: str) -> str:
        batch, m, n, k = matmul_dims(self.g)
        cfg = self.cfg
        if self.stage in PACKS:
            j = PACKS.index(self.stage)
            x = self.g.values[0].args[j]
            copies = batch if len(x.shape) == 3 else 1
            return (f"    {self.name}[(triton.cdiv({(m, n)[j]}, 64), triton.cdiv({k}, 64), "
                    f"{copies})]({self.args()}, BLOCK_R=64, BLOCK_C=64, num_warps=4)")
        slices = f", {cfg.split}" if self.stage == "partial" else ""
        return (f"    {self.name}[(triton.cdiv({m}, {cfg.block_r}) * triton.cdiv({n}, "
                f"{cfg.block_c}), {batch}{slices})]({self.args()}, BLOCK_M={cfg.block_r}, "
                f"BLOCK_N={cfg.block_c}, BLOCK_K={cfg.block_k}, GROUP_M={cfg.group_m}, "
                f"{self.dot_options(precision)}")


def packed_operands(g: Group, cfg: KernelConfig) -> list[int]:
    """The operands a 3xTF32 GEMM copies K-major before its K loop (0: A, 1: B). Hopper's TF32
    tensor-core instructions read shared-memory operands only K-major; a [K, N] B (a @ b) or an
    [K, M] A (a.t() @ b) is copied once per call (2 x 4 bytes an element: 65 us for 128 MB at
    4 TB/s) so the GEMM runs at the K-major rate (benchmarks/fp32-gemms-h200.md). So is a K-major
    operand whose rows do not start 64-byte aligned (K = 5921): the copy's rows are padded
    (`packed_k`), so its tiles load in 16-byte vectors."""
    mm = g.values[0]
    if cfg.dot != "tf32x3" or mm.op == "conv":
        return []
    sa, sb = view_strides(mm.args[0]), view_strides(mm.args[1])
    inner = k_inner(sa, sb)
    row = (hint(sa[-2]), hint(sb[-1]))  # a K-major operand's stride from one K-row to the next
    return [j for j in (0, 1) if not inner[j] or row[j] % PACK_ALIGN]


PACK_ALIGN = 16  # elements: a packed row's stride is a multiple of this (64 bytes)


def packed_k(k: Any) -> Any:
    """The row stride of a K-major copy: K rounded up to PACK_ALIGN (Triton sees it divide)."""
    return ceil_div(k, PACK_ALIGN) * PACK_ALIGN
