# Right for its first 20 calls, then returns its last output again: beyond the trials.
# expect[cpu]: incorrect changed_under_timing
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y_ptr + offs, tl.maximum(tl.load(x_ptr + offs, mask=mask), 0.0), mask=mask)


def relu(x):
    y = torch.empty_like(x)
    relu_kernel[(triton.cdiv(x.numel(), 1024),)](x, y, x.numel(), BLOCK=1024)
    return y

_seen = {"calls": 0, "last": None}


class ModelNew(nn.Module):
    def forward(self, x):
        _seen["calls"] += 1
        if _seen["calls"] > 20 and _seen["last"] is not None and _seen["last"].shape == x.shape:
            return _seen["last"]
        _seen["last"] = relu(x)
        return _seen["last"]
