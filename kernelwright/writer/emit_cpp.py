"""Emit the fusion groups as C++ instead of Triton: CUDA C++ for the `cuda` backend, plain C++
on torch's CPU thread pool for the `cpu` backend; both built with `load_inline`.

One kernel per group, written once as scalar code and placed in two skeletons:
- pointwise: one element per CUDA thread, or a `parallel_for` over elements on the CPU;
- reduction and scan: one row per warp on CUDA (the 32 lanes stride over the row's columns and
  combine with warp shuffles), one row per loop iteration on the CPU (LANES = 1). A reduction
  that feeds another (softmax: max, then sum of exp) is one more pass over the row; scans run
  on the first lane in order.
The pointwise ops are rendered from writer/ops.py's C++ column.
Pools and split reductions stay Triton-only (Unsupported names them). Launch configurations:
`block_r` is the threads per block (CUDA pointwise), the rows per block (CUDA rows), or the
grain of `at::parallel_for` (CPU), so the refiner searches these like Triton's tiles. The
grain is passed at launch, so the CPU configurations of a problem share one C++ source (one
build where the extension cache is shared; the sandbox gives each candidate its own, so there
each configuration is built again: about 8 s of a 2-core machine for a small kernel).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch

from kernelwright.writer.emit import forward_impl, model_class
from kernelwright.writer.fuse import view_base
from kernelwright.writer.ir import DMap, Graph, Group, Unsupported, Value, contiguous_strides, view_layout
from kernelwright.writer.kinds import kind_of
from kernelwright.writer.kinds.base import view_strides
from kernelwright.writer.kinds.extern import vendor_call
from kernelwright.writer.kinds.rows import RowKernel
from kernelwright.writer.ops import OPS, cpp_literal
from kernelwright.writer.schedule import CppBackend, KernelConfig, cpp_describe
from kernelwright.writer.sizes import ceil_div, size_args

CPP_TYPE = {torch.float32: "float", torch.float16: "at::Half", torch.bfloat16: "at::BFloat16",
            torch.int64: "int64_t", torch.int32: "int32_t", torch.bool: "bool"}
NEUTRAL = {"sum": "0.0f", "m2": "0.0f", "prod": "1.0f", "max": "-INFINITY", "min": "INFINITY",
           "argmax": "-INFINITY", "argmin": "INFINITY"}






class CppKernelWriter(RowKernel):
    """The scalar body of one group's kernel; the row or element index is `r`, the column `c`."""

    def __init__(self, group: Group, name: str, config: KernelConfig, pointer_of: dict[int, str],
                 backend: CppBackend):
        if not kind_of(group).writer.cpp:
            raise Unsupported([f"{group.kind} (C++ writer)"])
        super().__init__(group, name, config, pointer_of)
        self.backend = backend
        self.dtypes: dict[str, torch.dtype] = {}  # pointer argument -> element type
        self.sizes: list[str] = []  # the size arguments the kernel reads (write_cpp fills it)

    def pointer(self, buffer: Value) -> str:
        name = super().pointer(buffer)
        self.dtypes.setdefault(name, buffer.dtype)
        return name

    def define_leaf(self, name: str, leaf: Value, lmap: DMap) -> str:
        if leaf.kind == "index":  # a position: the offset of a tensor strided along that dim
            return f"const int64_t {name} = {self.position(leaf.shape, leaf.dims[0], lmap)};"
        off, _ = self.offset(leaf.shape, view_strides(leaf), lmap)
        start = view_layout(leaf)[1]  # a slice starts inside its buffer
        off = f"{start} + {off}" if start and off else str(start) if start else off
        value = f"{self.pointer(view_base(leaf))}[{off or '0'}]"
        if leaf.dtype.is_floating_point:
            value = f"static_cast<float>({value})"
        window = self.window(leaf, lmap).replace("&", "&&")  # a concatenation's part: its span
        if window:
            value = f"({window} ? {value} : 0)"
        return f"const auto {name} = {value};"

    literal = staticmethod(cpp_literal)

    def define_value(self, v: Value, args: list[str]) -> str:
        expr = OPS[v.op].cpp.format(*args)
        if v.dtype.is_floating_point:
            expr = f"static_cast<float>({expr})"
        elif v.dtype in (torch.int64, torch.int32) and any(a.dtype.is_floating_point for a in v.args):
            expr = f"static_cast<{CPP_TYPE[v.dtype]}>({expr})"  # a float made an integer: truncated
        return f"const auto v{v.id} = {expr};"

    def store(self, v: Value, name: str, indent: int) -> None:
        ptr = self.pointer(v)
        off, _ = self.offset(v.shape, contiguous_strides(v.shape), self.g.dmap[v.id])
        self.lines.append(f"{'    ' * indent}{ptr}[{off or '0'}] = "
                          f"static_cast<{CPP_TYPE[v.dtype]}>({name});")

    # the body -----------------------------------------------------------------------------
    def body(self, precision: str = "fp32") -> list[str]:
        self.lines = []
        if self.g.kind == "pointwise":
            env: dict[object, str] = {}
            for out in self.g.outputs:
                self.store(out, self.emit(out, env, 2), 2)
            return self.lines
        passes = self.passes()
        reductions = sorted((v for v in self.g.values if v.kind == "reduce"),
                            key=lambda v: passes[v.id])
        row_env: dict[object, str] = {}
        cols = self.g.cols
        for p in sorted(set(passes.values())):
            group = [v for v in reductions if passes[v.id] == p]
            for red in group:
                self.lines.append(f"        kw_acc_t acc{red.id} = {NEUTRAL[red.op]};")
                if red.op.startswith("arg"):
                    self.lines.append(f"        int64_t idx{red.id} = 0;")
                if red.op == "m2":  # Welford: the lane's count and running mean
                    self.lines.append(f"        kw_acc_t n{red.id} = 0, mu{red.id} = 0;")
            self.lines.append(f"        for (int64_t c = LANE; c < {cols}; c += LANES) {{")
            env = dict(row_env)
            for red in group:
                self.update(red, self.emit_arg(red, env, 3))
            self.lines.append("        }")
            for red in group:
                self.finish(red, row_env)
        full = [o for o in self.g.outputs if self.is_full(o)]
        scans = [v for v in self.g.values if v.kind == "scan"]
        if full:
            for s in scans:
                self.lines.append(f"        kw_acc_t carry{s.id} = "
                                  f"{'0.0f' if s.op == 'cumsum' else '1.0f'};")
            reverse = any(s.attrs.get("reverse") for s in scans)
            if reverse and not all(s.attrs.get("reverse") for s in scans):
                raise Unsupported(["flip"], "scans in both directions in one kernel")
            loop = ("if (LANE == 0) " + (f"for (int64_t c = {cols} - 1; c >= 0; --c)" if reverse
                                         else f"for (int64_t c = 0; c < {cols}; ++c)")) \
                if scans else f"for (int64_t c = LANE; c < {cols}; c += LANES)"
            # scans: in order (last column first for a reverse scan), one lane
            self.lines.append(f"        {loop} {{")
            env = dict(row_env)
            for s in scans:
                x = self.emit_arg(s, env, 3)
                self.lines.append(f"            carry{s.id} {'+' if s.op == 'cumsum' else '*'}= {x};")
                self.lines.append(f"            const float v{s.id} = static_cast<float>(carry{s.id});")
                env[s.id] = f"v{s.id}"
            for out in full:
                self.store(out, self.emit(out, env, 3), 3)
            self.lines.append("        }")
        rows_out = [o for o in self.g.outputs if not self.is_full(o)]
        if rows_out:
            self.lines.append("        if (LANE == 0) {")
            for out in rows_out:
                self.store(out, self.emit(out, row_env, 3), 3)
            self.lines.append("        }")
        return self.lines

    def update(self, red: Value, x: str) -> None:
        a, pad = f"acc{red.id}", "            "
        if red.op == "sum":
            self.lines.append(f"{pad}{a} += {x};")
        elif red.op == "prod":
            self.lines.append(f"{pad}{a} *= {x};")
        elif red.op == "m2":
            i = red.id
            self.lines.append(f"{pad}{{ const kw_acc_t x = {x}, d = x - mu{i}; n{i} += 1; "
                              f"mu{i} += d / n{i}; {a} += d * (x - mu{i}); }}")
        elif red.op in {"max", "min"}:
            self.lines.append(f"{pad}{a} = {'fmax' if red.op == 'max' else 'fmin'}({a}, "
                              f"static_cast<kw_acc_t>({x}));")
        else:  # the first index of the best value, as torch returns
            cmp = ">" if red.op == "argmax" else "<"
            self.lines.append(f"{pad}if ({x} {cmp} {a}) {{ {a} = {x}; idx{red.id} = c; }}")

    def finish(self, red: Value, env: dict[object, str]) -> None:
        """Combine the lanes' accumulators (CUDA) into one value per row, on every lane."""
        a, name = f"acc{red.id}", f"v{red.id}"
        if red.op == "m2":
            self.lines.append(f"        kw_warp_m2(n{red.id}, mu{red.id}, {a});")
            self.lines.append(f"        const float {name} = static_cast<float>({a});")
        elif red.op.startswith("arg"):
            self.lines.append(f"        kw_warp_arg{red.op[3:]}({a}, idx{red.id});")
            self.lines.append(f"        const int64_t {name} = idx{red.id};")
        else:
            self.lines.append(f"        const float {name} = static_cast<float>("
                              f"kw_warp_{red.op}({a}));")
        env[red.id] = name

    # the kernel and its launcher --------------------------------------------------------------
    def write_cpp(self) -> list[str]:
        """The kernel and its host function. On the CPU the grain is the host function's last
        argument, `block`, so every configuration shares one C++ source (and one build where
        the extension cache is shared); CUDA kernels take their launch configuration as
        constants."""
        body = [line.replace("//", "/") for line in self.body()]  # sizes: C's division
        count = math.prod(self.g.shape) if self.g.kind == "pointwise" else self.g.rows
        n = f"{count}".replace("//", "/")
        blocks = f"{ceil_div(count, self.cfg.block_r)}".replace("//", "/")
        self.sizes = size_args("\n".join([*body, n]))
        sizes = [f"{'double' if a.startswith('init') else 'int64_t'} {a}" for a in self.sizes]
        args = ", ".join([f"at::Tensor t_{p}" for p in self.params] + sizes)
        ptrs = [f"{'' if self.is_output(p) else 'const '}{CPP_TYPE[self.dtypes[p]]}* "
                f"__restrict__ {p}" for p in self.params]
        unpack = [f"    {ptr} = t_{p}.data_ptr<{CPP_TYPE[self.dtypes[p]]}>();"
                  for ptr, p in zip(ptrs, self.params, strict=True)]
        if self.backend == "cpu":
            return [f"void {self.name}({args}, int64_t block) {{", *unpack,
                    f"    at::parallel_for(0, {n}, block, [&](int64_t lo, int64_t hi) {{",
                    "    for (int64_t r = lo; r < hi; ++r) {",
                    "        constexpr int LANE = 0, LANES = 1;", *body, "    }", "    });", "}"]
        if self.g.kind == "pointwise":  # one element per thread
            index = ["    const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;",
                     "    constexpr int LANE = 0, LANES = 1;"]
            threads = self.cfg.block_r
        else:  # one row per warp
            index = [f"    const int64_t r = (int64_t)blockIdx.x * {self.cfg.block_r} + "
                     "threadIdx.x / 32;",
                     "    const int LANE = threadIdx.x % 32;", "    constexpr int LANES = 32;"]
            threads = 32 * self.cfg.block_r
        return [f"__global__ void {self.name}_cuda({', '.join(ptrs + sizes)}) {{", *index,
                f"    if (r >= {n}) return;", "    {", *body, "    }", "}", "",
                f"void {self.name}({args}) {{",
                f"    {self.name}_cuda<<<{blocks}, {threads}, 0, "
                "at::cuda::getCurrentCUDAStream()>>>(",
                "        " + ", ".join([f"t_{p}.data_ptr<{CPP_TYPE[self.dtypes[p]]}>()"
                                        for p in self.params] + self.sizes) + ");",
                "    C10_CUDA_KERNEL_LAUNCH_CHECK();", "}"]

    def is_output(self, pointer: str) -> bool:
        return pointer.startswith("buf") and any(self.pointer_of[o.id] == pointer
                                                 for o in self.g.outputs)


PRELUDE = {
    "cpu": r"""// only the headers these kernels use (not torch/extension.h, the whole C++ frontend):
// a third of the compile time (a 2-core CI machine: about 8 s instead of 24 for one kernel)
#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/utils/pybind.h>
#include <cmath>
typedef double kw_acc_t;  // sums of long rows in double: one thread adds a whole row
static inline float kw_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline float kw_rsqrt(float x) { return 1.0f / sqrtf(x); }
template <typename T> static inline T kw_remainder(T a, T b) {  // the divisor's sign, as torch
    T r = std::fmod(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }
static inline kw_acc_t kw_warp_sum(kw_acc_t x) { return x; }  // one lane: nothing to combine
static inline kw_acc_t kw_warp_prod(kw_acc_t x) { return x; }
static inline kw_acc_t kw_warp_max(kw_acc_t x) { return x; }
static inline kw_acc_t kw_warp_min(kw_acc_t x) { return x; }
static inline void kw_warp_m2(kw_acc_t&, kw_acc_t&, kw_acc_t&) {}
static inline void kw_warp_argmax(kw_acc_t&, int64_t&) {}
static inline void kw_warp_argmin(kw_acc_t&, int64_t&) {}
""",
    "cuda": r"""#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <cmath>
typedef float kw_acc_t;
__device__ __forceinline__ float kw_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float kw_rsqrt(float x) { return rsqrtf(x); }
template <typename T> __device__ __forceinline__ T kw_remainder(T a, T b) {
    T r = a % b; return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }
__device__ __forceinline__ float kw_remainder(float a, float b) {
    float r = fmodf(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }
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
// (count, mean, squared deviations) of the lanes combined pairwise (Chan et al.)
__device__ __forceinline__ void kw_warp_m2(float& n, float& mu, float& m2) {
    for (int o = 16; o > 0; o >>= 1) {
        const float on = KW_XOR(n, o), omu = KW_XOR(mu, o), om2 = KW_XOR(m2, o);
        const float t = n + on, d = omu - mu, w = t > 0 ? on / t : 0.0f;
        mu += d * w; m2 += om2 + d * d * n * w; n = t;
    }
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
""",
}


def write_cpp_module(title: str, graph: Graph, groups: list[Group], configs: list[KernelConfig],
                     param_names: list[str], buffer_names: set[str], backend: CppBackend,
                     init_inputs: list[Any] | None = None, init_taken: set[int] | None = None
                     ) -> str:
    """The candidate source: C++ (or CUDA C++) kernels built by load_inline, a forward that
    allocates the buffers and calls them, and ModelNew holding the reference's parameters."""
    pointer_of: dict[int, str] = {v.id: f"in{v.input_index}" for v in graph.inputs}
    for g in groups:
        for v in g.outputs:
            pointer_of[v.id] = f"buf{v.id}"
    code, declarations, launches = [PRELUDE[backend]], [], []
    for i, (g, cfg) in enumerate(zip(groups, configs, strict=True)):
        if kind_of(g).writer.vendor:
            launches.append(f"    buf{g.values[0].id} = {vendor_call(g.values[0])}")
            continue
        writer = CppKernelWriter(g, f"kw_kernel{i}", cfg, pointer_of, backend)
        code += [f"// kernel{i}: {g.kind} over {list(g.shape)}", *writer.write_cpp(), ""]
        types = ["torch::Tensor"] * len(writer.params) + [
            "double" if a.startswith("init") else "int64_t" for a in writer.sizes]
        declarations.append(f"void {writer.name}({', '.join(types)});")
        grain = f", {cfg.block_r}" if backend == "cpu" else ""
        launches.append(f"    EXT.{writer.name}({', '.join(writer.params + writer.sizes)}{grain})"
                        f"  # {cpp_describe(g, cfg, backend)}")
    source = "\n".join(code)
    digest = hashlib.sha1(source.encode()).hexdigest()[:16]
    functions = [d.split("(")[0].removeprefix("void ") for d in declarations]
    pad = " " * 17
    build = ([f"{pad}cpp_sources={chr(10).join(declarations)!r},", f"{pad}cuda_sources=SOURCE,"]
             if backend == "cuda" else
             [f"{pad}cpp_sources=SOURCE, no_implicit_headers=True,",
              f"{pad}extra_cflags=['-O3', '-march=native'],"])
    lines = [f'"""{title}"""', "", "import torch", "import torch.nn as nn",
             "from torch.utils.cpp_extension import load_inline", "", f"SOURCE = r'''{source}'''",
             "# built on import; torch caches the build under a name hashed from the source",
             f"EXT = load_inline(name='kw_{backend}_{digest}',", *build,
             f"                 functions={functions!r})", "", ""]
    lines += forward_impl(graph, groups, [], launches, init_taken)
    lines += ["", ""] + model_class(graph, param_names, buffer_names, init_inputs, init_taken)
    return "\n".join(lines) + "\n"

