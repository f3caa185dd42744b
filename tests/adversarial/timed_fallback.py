# Runs its own kernel whenever the runtime guard records aten ops, and torch's ReLU otherwise:
# a fallback kept for the timed reps, where recording every op would cost time.
# expect: rejected torch_compute
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


_calls = {"n": 0}


class ModelNew(nn.Module):
    def forward(self, x):
        _calls["n"] += 1
        if _calls["n"] > 14:  # past the trials and the back-to-back calls: the repeated ones
            return getattr(torch, "re" + "lu")(x)
        return relu(x)
