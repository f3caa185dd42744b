# LayerNorm that registers weight and bias but never reads them (right for their defaults).
# problem: layernorm
# expect: incorrect mismatch
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def norm_kernel(x_ptr, w_ptr, b_ptr, y_ptr, n_cols, eps, AFFINE: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    mask = offs < n_cols
    x = tl.load(x_ptr + row * n_cols + offs, mask=mask, other=0.0)
    mean = tl.sum(x, axis=0) / n_cols
    d = tl.where(mask, x - mean, 0.0)
    y = d / tl.sqrt(tl.sum(d * d, axis=0) / n_cols + eps)
    if AFFINE:
        y = y * tl.load(w_ptr + offs, mask=mask, other=1.0) + tl.load(b_ptr + offs, mask=mask, other=0.0)
    tl.store(y_ptr + row * n_cols + offs, y, mask=mask)


def norm(x, w, b, affine):
    y = torch.empty_like(x)
    n = x.shape[-1]
    norm_kernel[(x.numel() // n,)](x, w, b, y, n, 1e-5, AFFINE=affine, BLOCK=triton.next_power_of_2(n))
    return y


class ModelNew(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.ln = nn.LayerNorm(features)

    def forward(self, x):
        return norm(x, x, x, affine=False)
