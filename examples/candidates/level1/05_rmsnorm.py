"""RMSNorm over the last dimension in Triton: one program per row."""

import torch
import torch.nn as nn
import triton
import triton.language as tl


# cost: reads 4*R*C + 4*C bytes, writes 4*R*C bytes, about 4*R*C FLOPs
@triton.jit
def rmsnorm_kernel(x_ptr, w_ptr, y_ptr, n_cols, stride_xr, stride_yr, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * stride_xr + cols, mask=mask, other=0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n_cols + eps)
    w = tl.load(w_ptr + cols, mask=mask)
    tl.store(y_ptr + row * stride_yr + cols, x * rstd * w, mask=mask)


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    assert x.shape[-1] == weight.numel(), "weight must match the last dim"
    x2 = x.contiguous().view(-1, x.shape[-1])
    rows, cols = x2.shape
    y = torch.empty_like(x2)
    block = triton.next_power_of_2(cols)
    rmsnorm_kernel[(rows,)](x2, weight, y, cols, x2.stride(0), y.stride(0), eps, BLOCK=block,
                            num_warps=4 if block <= 2048 else 8)
    return y.view(x.shape)


class ModelNew(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.randn(dim))

    def forward(self, x):
        return rmsnorm(x, self.weight, self.eps)
