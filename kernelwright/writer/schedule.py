"""Launch configurations: what the writer starts from and what the refiner searches, per kind
and backend, with the heuristics that pick them.

The figures that drive them: a large GPU has about 132 SMs and runs several programs on each,
so a launch wants SM_TARGET programs or more (fewer leaves SMs idle: split the work); a row held
in registers (a persistent program) must fit in MAX_PERSISTENT_COLS fp32 values; tiles read
adjacent memory (coalesced) along the contiguous dim.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

from kernelwright.writer.ir import Group, Value
from kernelwright.writer.sizes import hint

SM_TARGET = 512  # programs that fill a large GPU (H100: 132 SMs, several programs each)


def few_long_rows(g: Group) -> bool:
    """A reduction domain too narrow for one program per row to fill the GPU."""
    return g.kind == "reduction" and hint(g.rows) * 4 < SM_TARGET and hint(g.cols) >= 32768


@dataclass(frozen=True)
class KernelConfig:
    """Launch configuration of one group's kernel (what the refiner searches)."""

    block_r: int  # rows per program (1-D kernels: elements per program)
    block_c: int = 1  # columns per chunk (2-D kernels)
    num_warps: int = 4
    persistent: bool = False  # 2-D only: a whole row per program, read once
    split: int = 1  # 2-D only: programs per row (two passes: partials, then a combine)
    block_k: int = 0  # matmul only (block_r, block_c are BLOCK_M, BLOCK_N): K per step
    group_m: int = 8  # matmul: tiles of M side by side in launch order (L2 reuse)
    num_stages: int = 3  # matmul: software-pipelining depth of the K loop
    dot: str = "ieee"  # matmul and attention under the fp32 policy: "ieee" (fp32 FMA) or
    # "tf32x3" (three TF32 tensor-core products of each operand's TF32 value and residual: as
    # accurate as fp32, which accuracy parity checks); other policies use their own dots

    def describe(self) -> str:
        dots = ", 3xTF32 dots" if self.dot == "tf32x3" else ""
        if self.block_k:
            return (f"BLOCK_M={self.block_r}, BLOCK_N={self.block_c}, BLOCK_K={self.block_k}, "
                    f"GROUP_M={self.group_m}, num_warps={self.num_warps}, "
                    f"num_stages={self.num_stages}" + (f", split-K {self.split}"
                                                       if self.split > 1 else "") + dots)
        if self.block_c == 1:
            return f"BLOCK={self.block_r}, num_warps={self.num_warps}"
        mode = "persistent" if self.persistent else "looped" if self.split == 1 else \
            f"split {self.split}"
        return (f"{mode}, BLOCK_R={self.block_r}, BLOCK_C={self.block_c}, "
                f"num_warps={self.num_warps}{dots}")


# Each kind's starting point (the refiner improves on it) and search space (most promising
# first); writer/kinds/__init__.py names which a kind uses.

def flat_default(group: Group) -> KernelConfig:
    """1-D kernels (pointwise, pool): 1024 elements per program, 4 warps (8 per thread)."""
    return KernelConfig(block_r=1024, num_warps=4)


def flat_space(group: Group) -> list[KernelConfig]:
    """Larger blocks amortise index math; more warps keep more bytes in flight per SM."""
    return [KernelConfig(block_r=b, num_warps=w)
            for b, w in [(1024, 4), (2048, 8), (4096, 8), (512, 4), (2048, 4), (4096, 16)]]


# The safe configurations: what a repair falls back to when a kernel gave a wrong answer at its
# default (small tiles, no split, no row held in registers: the fewest assumptions).

def rows_safe(group: Group) -> KernelConfig:
    """One row a program, looped in chunks of at most 1024 columns, never split."""
    return KernelConfig(block_r=1, block_c=min(1024, triton_next_pow2(hint(group.cols))), num_warps=4)


def matmul_safe(group: Group) -> KernelConfig:
    """64 x 64 tiles, two pipeline stages, K never split."""
    return matmul_config(group, 64, 64, 32, 4, 2)


def attention_safe(group: Group) -> KernelConfig:
    """32 queries by 32 keys a step, no software pipelining."""
    *_, m, n = hint(group.shape)
    return KernelConfig(block_r=max(16, min(32, triton_next_pow2(m))),
                        block_c=max(16, min(32, triton_next_pow2(n))), num_warps=4, num_stages=1)


def transpose_default(group: Group) -> KernelConfig:
    """64 x 64 tiles: each program moves 16 KiB, and a warp reads 256 contiguous bytes a row."""
    return KernelConfig(block_r=64, block_c=64, num_warps=4)


def transpose_space(group: Group) -> list[KernelConfig]:
    """Square and flat tiles; more warps for the larger ones (bytes in flight per SM)."""
    return [KernelConfig(block_r=r, block_c=c, num_warps=w)
            for r, c, w in [(64, 64, 4), (32, 32, 4), (32, 64, 4), (64, 32, 4), (128, 64, 8),
                            (64, 128, 8)]]


# Under the fp32 policy a GEMM's draft takes 3xTF32 dots (tensor cores, fp32 accuracy) where K is
# at least TF32X3_MIN_K; FMA ("ieee") dots otherwise and for convolutions (their A is gathered in
# registers). Measured on the H200 (Triton 3.6, benchmarks/fp32-gemms-h200.md): Hopper's TF32
# tensor-core instructions read shared-memory operands only K-major; with both operands K-major
# (x @ weight.t(), a @ b.t()) 3xTF32 ran 3.3x faster than FMA dots and 1.44x faster than cuBLAS
# fp32 (1873 against 6282 and 2703 us, 1024 x 8192 x 8192), while a row-major B read in place ran
# 1.26x slower than FMA. So a 3xTF32 GEMM copies an operand that is not K-major once per call
# (kinds/matmul.py `packed_operands`), and runs at the K-major rate. Short K: bound by bytes,
# either dot. The search space holds both dots, so the refiner measures them.
TF32X3_MIN_K = 64  # at K = 64 (32768 x 64 x 32768) 3xTF32 ran 1.32x faster than FMA (3493 us)


def k_inner(sa: tuple, sb: tuple) -> tuple[bool, bool]:
    """Whether each GEMM operand has K as its contiguous dim, from its strides: A [.., M, K]
    row-major; B the transpose of a row-major [.., N, K] (a weight in F.linear, b.t())."""
    return sa[-1] == 1 or sa[-2] != 1, sb[-2] == 1 and sb[-1] != 1


def draft_dot(group: Group) -> str:
    """The dot a GEMM's draft is written with under fp32 (see TF32X3_MIN_K)."""
    k = hint(matmul_dims(group)[3])
    return "tf32x3" if k >= TF32X3_MIN_K and group.values[0].op != "conv" else "ieee"


SPLIT_K_MAX = 64  # slices of K per tile; each at least 4096 long (a combine reads them all)


def matmul_default(group: Group) -> KernelConfig:
    """128 x 128 tiles; split K where too few tiles fill the GPU and K is long (up to SM_TARGET
    programs: 256 x 524288 x 256 ran 1.35x faster with 256 programs than with 64 on the H200);
    the draft's dot (`draft_dot`)."""
    batch, m, n, k = hint(matmul_dims(group))
    tiles = batch * -(-m // 128) * -(-n // 128)
    split = min(SPLIT_K_MAX, SM_TARGET // tiles, k // 4096) if tiles * 4 < SM_TARGET else 1
    return matmul_config(group, 128, 128, 32, 8, split=split, dot=draft_dot(group))


def attention_default(group: Group) -> KernelConfig:
    """BLOCK_M queries, BLOCK_N keys a step: 64 x 64, clamped to the problem."""
    *_, m, n = hint(group.shape)
    d = hint(group.values[0].args[0].shape[-1])
    return KernelConfig(block_r=max(16, min(64, triton_next_pow2(m))),
                        block_c=max(16, min(64, triton_next_pow2(n))), num_warps=4,
                        num_stages=2, dot="tf32x3" if d >= 64 else "ieee")


def rows_default(group: Group) -> KernelConfig:
    """Reductions and scans: a whole row in registers where it fits, several short rows per
    program, long rows looped; too few rows for the GPU are split across programs."""
    cols = triton_next_pow2(hint(group.cols))
    if rows_are_contiguous(group):  # reduce over a non-last dim: a program reads many rows
        block_r = min(128, triton_next_pow2(hint(group.rows)))
        if cols * block_r <= 8192:
            return KernelConfig(block_r=block_r, block_c=cols, num_warps=4, persistent=True)
        programs = -(-hint(group.rows) // block_r)
        split = 1
        if splittable(group) and programs * 4 < SM_TARGET:  # too few programs: split columns
            split = max(1, min(1024, SM_TARGET // programs, -(-hint(group.cols) // 256)))
        # 8 warps over the 4096-element tile: on the H200 an argmin over (128, 4096, 4095) ran
        # 4.5x faster than with 4 (2042 against 9122 us: value and index, twice the registers);
        # a mean over the same shape the same either way (benchmarks/memory-bound-h200.md)
        return KernelConfig(block_r=block_r, block_c=max(1, 4096 // block_r), num_warps=8,
                            split=split)
    if splittable(group) and few_long_rows(group):
        split = min(1024, SM_TARGET // hint(group.rows), -(-hint(group.cols) // 4096))
        return KernelConfig(block_r=1, block_c=2048, num_warps=8, split=split)
    if cols <= 16384:
        block_r = max(1, min(64, 2048 // cols))
        warps = max(1, min(16, block_r * cols // 512))
        return KernelConfig(block_r=block_r, block_c=cols, num_warps=warps, persistent=True)
    return KernelConfig(block_r=1, block_c=4096, num_warps=8)


def matmul_dims(group: Group) -> tuple[int, int, int, int]:
    """(batch, M, N, K) of a matmul group; a convolution is the implicit GEMM
    [N*H_out*W_out, C_in*kh*kw] x [C_in*kh*kw, C_out]."""
    mm = group.values[0]
    if mm.op == "conv":
        out, w = mm.shape, mm.args[1].shape
        return 1, out[0] * math.prod(out[2:]), out[1], math.prod(w[1:])
    *lead, m, n = mm.shape
    return math.prod(lead), m, n, mm.args[0].shape[-1]


def matmul_config(group: Group, bm: int, bn: int, bk: int, warps: int, stages: int = 3,
                  group_m: int = 8, split: int = 1, dot: str = "ieee") -> KernelConfig:
    """A GEMM tile clamped to the problem (tl.dot needs 16 or more on each side); `split` > 1
    divides K among that many programs per tile (split-K: partial sums, then a combine)."""
    _, m, n, k = hint(matmul_dims(group))

    def fit(block: int, size: int) -> int:
        return max(16, min(block, triton_next_pow2(size)))

    bm, bn, bk = fit(bm, m), fit(bn, n), fit(bk, k)
    warps = max(1, min(warps, bm * bn // 256))  # small tiles: fewer warps
    split = max(1, min(split, k // (2 * bk)))  # each slice at least two steps of K
    return KernelConfig(block_r=bm, block_c=bn, block_k=bk, num_warps=warps, num_stages=stages,
                        group_m=group_m, split=split, dot=dot)


def rows_are_contiguous(group: Group) -> bool:
    """True when the reduced dims are not the innermost: neighbouring rows are adjacent."""
    return group.kind == "reduction" and bool(group.axes) and \
        group.axes[-1] != len(group.shape) - 1 and hint(group.shape[-1]) > 1


def splittable(group: Group) -> bool:
    """A reduction whose rows can be split: one pass of sum/max/min/prod, nothing per column
    stored after it (a softmax's second pass needs the whole row's statistics first)."""
    if group.kind != "reduction":
        return False
    reds = [v for v in group.values if v.kind == "reduce"]
    if any(r.op not in {"sum", "max", "min", "prod"} for r in reds):
        return False
    reduced = {r.id for r in reds}

    def after_reduction(v: Value) -> bool:
        return v.id in reduced or any(group.has(a) and after_reduction(a) for a in v.args)

    per_col = [v for v in group.values if v.kind != "reduce" and any(
        k in group.axes for k, s in zip(group.dmap[v.id], v.shape, strict=True)
        if k is not None and hint(s) > 1)]
    return not any(after_reduction(v) for v in per_col) and \
        not any(after_reduction(r.args[0]) for r in reds)


def triton_next_pow2(n: int) -> int:
    return 1 << max(0, (hint(n) - 1).bit_length())


MAX_PERSISTENT_COLS = 32768  # fp32 elements of one row held in registers across a program


MATMUL_TILES = [(128, 128, 32, 8, 3), (128, 64, 32, 4, 4), (64, 128, 32, 4, 4),
                (128, 256, 32, 8, 3), (256, 128, 32, 8, 3), (64, 64, 32, 4, 4),
                (128, 128, 64, 8, 3), (128, 128, 16, 8, 4), (32, 32, 32, 2, 4)]

# 3xTF32 tiles for Hopper's tensor cores (wgmma: a warpgroup of 4 warps per 64 rows), most
# promising first: each stage holds (BLOCK_M + BLOCK_N) x BLOCK_K fp32 operands in shared memory
# (128 x 128 x 32: 32 KiB), so 3-4 stages fit in the 228 KiB of an SM.
TF32X3_TILES = [(128, 128, 32, 8, 3), (128, 256, 32, 8, 3), (128, 128, 32, 4, 4),
                (256, 128, 32, 8, 3), (128, 64, 32, 4, 4), (64, 128, 32, 4, 4),
                (128, 128, 64, 8, 2), (64, 64, 32, 4, 4)]


ATTENTION_TILES = [(64, 64, 4, 2), (128, 64, 8, 2), (64, 32, 4, 3), (128, 32, 4, 2),
                   (32, 64, 4, 2), (128, 128, 8, 2), (64, 128, 4, 2), (32, 32, 2, 3)]


def attention_space(group: Group) -> list[KernelConfig]:
    """Queries and keys per block, warps, pipeline stages."""
    *_, m, n = hint(group.shape)
    space: list[KernelConfig] = []
    for dot in ("tf32x3", "ieee"):  # both dots of each tile, 3xTF32 first (attention_default)
        for bm, bn, warps, stages in ATTENTION_TILES:
            cfg = KernelConfig(block_r=max(16, min(bm, triton_next_pow2(m))),
                               block_c=max(16, min(bn, triton_next_pow2(n))), num_warps=warps,
                               num_stages=stages, dot=dot)
            if cfg not in space:
                space.append(cfg)
    return space


def matmul_space(group: Group) -> list[KernelConfig]:
    """Tiles (M, N, K), warps, pipeline stages; skinny GEMMs with a long K also split K."""
    out: list[KernelConfig] = []
    batch, m, n, k = hint(matmul_dims(group))
    few_tiles = batch * -(-m // 64) * -(-n // 64) * 4 < SM_TARGET
    fma = [(t, "ieee") for t in MATMUL_TILES]
    tensor = [(t, "tf32x3") for t in TF32X3_TILES]
    first, second = (tensor, fma) if draft_dot(group) == "tf32x3" else (fma, tensor)
    # the two dots alternate, the draft's first, so a short search measures both
    tiles = [t for pair in itertools.zip_longest(first, second) for t in pair if t]
    for (bm, bn, bk, warps, stages), dot in tiles:
        for split in (1, 4, 16, SPLIT_K_MAX) if few_tiles and k >= 2048 else (1,):
            cfg = matmul_config(group, bm, bn, bk, warps, stages, split=split, dot=dot)
            if cfg not in out:
                out.append(cfg)
    return out


def rows_space(group: Group) -> list[KernelConfig]:
    """Splits of few long rows, coalesced tiles over adjacent rows, rows held in registers,
    then looped chunks."""
    cols = triton_next_pow2(hint(group.cols))
    out = []
    if splittable(group) and hint(group.cols) >= 8192:  # few long rows: spread each over programs
        shapes = [(128, 32, 4), (64, 64, 4)] if rows_are_contiguous(group) else \
            [(1, 2048, 8), (1, 1024, 4)]
        for programs in (SM_TARGET, SM_TARGET // 2, SM_TARGET * 2):
            for block_r, block_c, warps in shapes:
                rows = -(-hint(group.rows) // block_r)
                split = min(1024, max(2, programs // rows), -(-hint(group.cols) // block_c))
                cfg = KernelConfig(block_r=block_r, block_c=block_c, num_warps=warps, split=split)
                if split > 1 and cfg not in out:
                    out.append(cfg)
    if rows_are_contiguous(group):  # only tiles that read many adjacent rows stay coalesced
        tiles = [(64, 32, 4), (32, 64, 4), (128, 32, 8), (256, 16, 8), (64, 16, 2)]
        return out + [KernelConfig(block_r=r, block_c=c, num_warps=w) for r, c, w in tiles]
    if cols <= MAX_PERSISTENT_COLS:
        for block_r in (1, 2, 4, 8, 16):
            if block_r * cols > MAX_PERSISTENT_COLS or block_r > hint(group.rows):
                continue
            for warps in (4, 8, 16):
                if block_r * cols >= warps * 32:
                    out.append(KernelConfig(block_r=block_r, block_c=cols, num_warps=warps,
                                            persistent=True))
    for block_c in (4096, 2048, 1024):
        if block_c < cols:
            for warps in (8, 4):
                out.append(KernelConfig(block_r=1, block_c=block_c, num_warps=warps))
    return out


CppBackend = Literal["cuda", "cpu"]


def cpp_default_config(group: Group, backend: CppBackend) -> KernelConfig:
    if group.kind == "extern":
        return KernelConfig(block_r=1)
    if backend == "cuda":
        return KernelConfig(block_r=256 if group.kind == "pointwise" else 4)
    if group.kind == "pointwise":
        return KernelConfig(block_r=32768)
    return KernelConfig(block_r=max(1, 32768 // max(1, hint(group.cols))))


def cpp_config_space(group: Group, backend: CppBackend) -> list[KernelConfig]:
    """Alternatives for one kernel, most promising first."""
    if group.kind == "extern":
        return []
    if backend == "cuda":
        sizes = [256, 128, 512, 1024] if group.kind == "pointwise" else [4, 1, 2, 8]
    elif group.kind == "pointwise":
        sizes = [32768, 4096, 262144]
    else:
        grain = cpp_default_config(group, backend).block_r
        sizes = list(dict.fromkeys([grain, max(1, grain // 8), grain * 8, 1]))
    return [KernelConfig(block_r=s) for s in sizes]


def cpp_describe(group: Group, config: KernelConfig, backend: CppBackend) -> str:
    if backend == "cpu":
        unit = "elements" if group.kind == "pointwise" else "rows"
        return f"parallel_for grain {config.block_r} {unit}"
    if group.kind == "pointwise":
        return f"{config.block_r} threads per block"
    return f"{config.block_r} rows (warps) per block"
