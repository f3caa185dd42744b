# Replaces the global RNG generator (were inputs drawn in its process, every trial would repeat).
# expect: rejected global_state
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

getattr(torch, "__set" + "attr__")("default_" + "generator", getattr(torch, "Gener" + "ator")())


class ModelNew(nn.Module):
    def forward(self, x):
        return relu(x)
