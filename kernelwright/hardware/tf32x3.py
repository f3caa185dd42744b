"""A 3xTF32 GEMM for `hw calibrate`: the rate fp32-accurate matmuls reach on the tensor cores.

Each fp32 operand is split into a TF32 value and a TF32 residual and three products are summed
(Triton's `input_precision="tf32x3"`), which is as accurate as an fp32 FMA GEMM. Imported only
by calibrate (it defines a Triton kernel).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _gemm(a_ptr, bt_ptr, c_ptr, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
          BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    pid = tl.program_id(0)
    tiles_m, tiles_n = tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N)
    width = GROUP_M * tiles_n  # grouped order: row tiles share a column tile while it is in L2
    first_m = (pid // width) * GROUP_M
    rows_here = tl.minimum(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % rows_here
    pid_n = (pid % width) // rows_here
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + rm[:, None] * K + rk[None, :]
    bt_ptrs = bt_ptr + rn[:, None] * K + rk[None, :]  # B^T is [N, K]: both operands K-major
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for _ in range(0, K, BLOCK_K):  # sizes are multiples of the blocks: no masks
        acc = tl.dot(tl.load(a_ptrs), tl.trans(tl.load(bt_ptrs)), acc, input_precision="tf32x3")
        a_ptrs += BLOCK_K
        bt_ptrs += BLOCK_K
    tl.store(c_ptr + rm[:, None] * N + rn[None, :], acc)


def gemm(a: torch.Tensor, bt: torch.Tensor) -> torch.Tensor:
    """a @ bt.T for fp32 matrices whose sizes are multiples of 128. Both operands are K-major,
    the layout Hopper's TF32 tensor-core instructions read from shared memory (a row-major B
    ran 1.3-2x slower with 3xTF32 on the H200: benchmarks/fp32-gemms-h200.md)."""
    m, k = a.shape
    n = bt.shape[0]
    c = torch.empty((m, n), device=a.device, dtype=torch.float32)
    grid = (triton.cdiv(m, 128) * triton.cdiv(n, 128),)
    _gemm[grid](a, bt, c, m, n, k, BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8,
                num_warps=8, num_stages=3)
    return c
