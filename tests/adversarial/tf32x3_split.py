# The same GEMM as tf32_emulated.py with the error-compensated split (3xTF32): each operand is a
# TF32 value plus a TF32 residual, and three products recover fp32's accuracy. Must pass.
# problem: mm_deep
# expect: correct
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def to_tf32(x):
    """x rounded to the nearest TF32 value (10 of fp32's 23 mantissa bits)."""
    bits = x.to(tl.int32, bitcast=True)
    return ((bits + 0x1000) & -8192).to(tl.float32, bitcast=True)


@triton.jit
def mm_kernel(a_ptr, b_ptr, c_ptr, M, N, K, SPLIT: tl.constexpr, BM: tl.constexpr,
              BN: tl.constexpr, BK: tl.constexpr):
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, K, BK):
        rk = k + tl.arange(0, BK)
        a = tl.load(a_ptr + rm[:, None] * K + rk[None, :],
                    mask=(rm[:, None] < M) & (rk[None, :] < K), other=0.0)
        b = tl.load(b_ptr + rk[:, None] * N + rn[None, :],
                    mask=(rk[:, None] < K) & (rn[None, :] < N), other=0.0)
        a_big, b_big = to_tf32(a), to_tf32(b)
        if SPLIT:  # the residuals' products first, then the big one (3xTF32)
            acc += tl.dot(to_tf32(a - a_big), b_big, input_precision="ieee")
            acc += tl.dot(a_big, to_tf32(b - b_big), input_precision="ieee")
        acc += tl.dot(a_big, b_big, input_precision="ieee")
    tl.store(c_ptr + rm[:, None] * N + rn[None, :], acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


SPLIT = True


class ModelNew(nn.Module):
    def forward(self, a, b):
        a, b = a.contiguous(), b.contiguous()
        M, K = a.shape
        N = b.shape[1]
        c = torch.empty((M, N), device=a.device, dtype=torch.float32)
        grid = (triton.cdiv(M, 16), triton.cdiv(N, 16))
        mm_kernel[grid](a, b, c, M, N, K, SPLIT=SPLIT, BM=16, BN=16, BK=32)
        return c
