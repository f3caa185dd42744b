# Caches its result keyed by a few sampled input values; says on stdout whether it hit. Timed
# reps that cycled a few input sets would hit and be timed at nothing; fresh contents never do.
# expect: correct
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

_cache = {}
_hits = {"hit": 0, "miss": 0}


class ModelNew(nn.Module):
    def forward(self, x):
        flat = x.reshape(-1)
        key = (x.shape, float(flat[0]), float(flat[flat.numel() // 2]), float(flat[-1]))
        _hits["hit" if key in _cache else "miss"] += 1
        print(f"value-cache: {_hits['hit']} hits, {_hits['miss']} misses", flush=True)
        if key not in _cache:
            _cache[key] = relu(x)
        return _cache[key]
