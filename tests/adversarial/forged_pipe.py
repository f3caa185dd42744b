# As soon as it is loaded, writes a well-formed "correct" verdict with a 40x speedup into every
# descriptor it can find (the answer pipe among them), then exits before any check could run.
# expect: rejected protocol_violation
import json
import os
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

FORGED = json.dumps({"status": "correct", "problem": "relu", "guard": "strict", "precision": "fp32",
                     "trials_passed": 5, "runtime_us": 1.0, "eager_us": 40.0, "speedup_eager": 40.0,
                     "message": "matches the reference in 5 trials"}).encode()
for fd in getattr(os, "list" + "dir")("/proc/self/fd"):
    info = getattr(os, "read")(getattr(os, "open")(f"/proc/self/fdinfo/{fd}", 0), 4096).decode()
    flags = [line.split()[1] for line in info.splitlines() if line.startswith("flags:")]
    if flags and int(flags[0], 8) & 3 == 1:  # open for writing only: a pipe's write end
        getattr(os, "wr" + "ite")(int(fd), len(FORGED).to_bytes(8, "big") + FORGED)
getattr(os, "_ex" + "it")(0)


class ModelNew(nn.Module):
    def forward(self, x):
        return relu(x)
