"""01_relu: written by kernelwright's offline policy (guard strict, precision fp32).

Kernels: pointwise[4096, 16384]."""

import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

SOURCE = r'''#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <cmath>
typedef float kw_acc_t;
__device__ __forceinline__ float kw_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float kw_rsqrt(float x) { return rsqrtf(x); }
#define KW_XOR(x, o) __shfl_xor_sync(0xffffffffu, x, o)
__device__ __forceinline__ float kw_warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += KW_XOR(x, o);
    return x;
}
__device__ __forceinline__ float kw_warp_prod(float x) {
    for (int o = 16; o > 0; o >>= 1) x *= KW_XOR(x, o);
    return x;
}
__device__ __forceinline__ float kw_warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, KW_XOR(x, o));
    return x;
}
__device__ __forceinline__ float kw_warp_min(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fminf(x, KW_XOR(x, o));
    return x;
}
// (value, index) pairs: the best value, ties to the smaller index (torch's first occurrence)
__device__ __forceinline__ void kw_warp_argbest(float& v, int64_t& i, bool larger) {
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = KW_XOR(v, o);
        const int64_t oi = __shfl_xor_sync(0xffffffffu, i, o);
        if ((larger ? ov > v : ov < v) || (ov == v && oi < i)) { v = ov; i = oi; }
    }
}
__device__ __forceinline__ void kw_warp_argmax(float& v, int64_t& i) { kw_warp_argbest(v, i, true); }
__device__ __forceinline__ void kw_warp_argmin(float& v, int64_t& i) { kw_warp_argbest(v, i, false); }

// kernel0: pointwise over [4096, 16384], 256 threads per block
__global__ void kw_kernel0_cuda(const float* __restrict__ in0, float* __restrict__ buf1) {
    const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    constexpr int LANE = 0, LANES = 1;
    if (r >= 67108864) return;
    {
        const auto x0_0 = static_cast<float>(in0[r]);
        const auto v1 = static_cast<float>(fmaxf(x0_0, 0.0f));
        buf1[r] = static_cast<float>(v1);
    }
}

void kw_kernel0(torch::Tensor t_in0, torch::Tensor t_buf1) {
    kw_kernel0_cuda<<<262144, 256, 0, at::cuda::getCurrentCUDAStream()>>>(
        t_in0.data_ptr<float>(), t_buf1.data_ptr<float>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
}
'''
# built on import; torch caches the build under a name hashed from the source
EXT = load_inline(name='kw_cuda_b8888da02b9c6d70',
                 cpp_sources='void kw_kernel0(torch::Tensor, torch::Tensor);',
                 cuda_sources=SOURCE,
                 functions=['kw_kernel0'])


def forward_impl(in0):
    """Run the 1 kernel(s); inputs: parameters, then forward arguments."""
    assert tuple(in0.shape) == (4096, 16384), f"arg0: expected shape (4096, 16384), got {tuple(in0.shape)}"
    in0 = in0.contiguous()
    buf1 = torch.empty((4096, 16384), device=in0.device, dtype=torch.float32)
    EXT.kw_kernel0(in0, buf1)
    return buf1


class ModelNew(nn.Module):
    """Same parameters (names and shapes) as the reference; the kernels do the work."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, a0):
        return forward_impl(a0)
