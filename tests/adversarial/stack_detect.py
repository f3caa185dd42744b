# Looks up its call stack through a running generator's frame and skips the work when the
# harness's timing loop is above it.
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


def _callers():
    def walk():
        frame = getattr(getattr(me, "gi_" + "frame"), "f_" + "back")
        names = []
        while frame is not None:
            names.append(getattr(frame, "f_" + "code").co_name)
            frame = getattr(frame, "f_" + "back")
        yield names
    me = walk()
    return next(me)


class ModelNew(nn.Module):
    def forward(self, x):
        if any("time" in name or "measure" in name for name in _callers()):
            return torch.zeros_like(x)
        return relu(x)
