"""LayerNorm over the last dimension in Triton: one program per row, statistics in fp32."""

import torch
import torch.nn as nn
import triton
import triton.language as tl


# cost: reads 4*R*C + 8*C bytes, writes 4*R*C bytes, about 8*R*C FLOPs
@triton.jit
def layernorm_kernel(x_ptr, w_ptr, b_ptr, y_ptr, n_cols, stride_xr, stride_yr, eps,
                     BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * stride_xr + cols, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / n_cols
    centered = tl.where(mask, x - mean, 0.0)
    var = tl.sum(centered * centered, axis=0) / n_cols
    rstd = 1.0 / tl.sqrt(var + eps)
    w = tl.load(w_ptr + cols, mask=mask)
    b = tl.load(b_ptr + cols, mask=mask)
    tl.store(y_ptr + row * stride_yr + cols, centered * rstd * w + b, mask=mask)


def layernorm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float):
    assert x.shape[-1] == weight.numel() == bias.numel(), "weight/bias must match the last dim"
    x2 = x.contiguous().view(-1, x.shape[-1])
    rows, cols = x2.shape
    y = torch.empty_like(x2)
    block = triton.next_power_of_2(cols)
    warps = 4 if block <= 2048 else 8
    layernorm_kernel[(rows,)](x2, weight, bias, y, cols, x2.stride(0), y.stride(0), eps,
                              BLOCK=block, num_warps=warps)
    return y.view(x.shape)


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)  # holds the parameters; the kernel does the work

    def forward(self, x):
        return layernorm(x, self.norm.weight, self.norm.bias, self.norm.eps)
