"""Sum over dimension 1 in Triton: one program per row, the row read in chunks."""

import torch
import torch.nn as nn
import triton
import triton.language as tl


# cost: reads 4*R*C bytes, writes 4*R bytes, R*C FLOPs
@triton.jit
def row_sum_kernel(x_ptr, y_ptr, n_cols, stride_xr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        acc += tl.load(x_ptr + row * stride_xr + cols, mask=cols < n_cols, other=0.0)
    tl.store(y_ptr + row, tl.sum(acc, axis=0))


def row_sum(x: torch.Tensor) -> torch.Tensor:
    assert x.dim() == 2, f"row_sum expects [rows, cols], got shape {tuple(x.shape)}"
    x = x.contiguous()
    rows, cols = x.shape
    y = torch.empty(rows, device=x.device, dtype=x.dtype)
    block = min(4096, triton.next_power_of_2(cols))
    row_sum_kernel[(rows,)](x, y, cols, x.stride(0), BLOCK=block, num_warps=8)
    return y


class ModelNew(nn.Module):
    def forward(self, x):
        return row_sum(x)
