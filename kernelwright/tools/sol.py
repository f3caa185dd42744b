"""Speed-of-light: the fewest FLOPs and bytes a problem needs, over the device's peaks.

FLOPs of matmuls, convolutions and attention come from torch's FlopCounterMode; it ignores
pointwise and reduction work, which a second dispatch mode counts by the rules below. Bytes are
the fewest any implementation moves: each input, parameter and buffer read once, each output
written once. The floor is max(compute time, memory time), where compute time charges
matmul-class FLOPs at the precision policy's tensor rate and pointwise/reduction FLOPs at the FP32
FMA rate. Under the fp32 policy the matmul rate is the fastest at fp32 accuracy: the FP32 FMA
rate or a third of the TF32 tensor rate (3xTF32), whichever is larger
(DeviceProfile.fp32_accurate); the floor names which (`tensor_peak_kind`).

Counting rules for what FlopCounterMode leaves out (per element; documented so tests can hold
them to hand counts):
- pointwise op: 1 FLOP per output element (a bias fused into addmm/convolution counts the same);
- reduction: 1 FLOP per input element (var/std: 3, for subtract, square, add);
- softmax and log_softmax: 5 per input element (max, subtract, exp, sum, divide or log);
- layer/group norm: 5 per element (mean, subtract, square, sum, scale) plus 2 with an affine;
  batch norm in eval mode: 4 per element;
- pooling: one FLOP per window element per output (average pooling adds 1 for the divide);
- data movement (views, copies, cat, triu, index): 0.
Any other op is listed in `uncounted_ops` rather than guessed.
"""

from __future__ import annotations

import logging
import math
import types
from typing import Any

import torch
from pydantic import BaseModel, Field
from torch.utils._python_dispatch import TorchDispatchMode

from kernelwright.core.results import Precision, SolAnalysis
from kernelwright.hardware.profiles import DeviceProfile, RateKind

log = logging.getLogger(__name__)

FASTER_THAN_SOL = 0.95  # a time under this fraction of the floor is flagged
TENSOR_RATE: dict[str, RateKind] = {"fp32": "fp32", "tf32": "tf32", "bf16": "bf16", "fp16": "fp16"}

_PER_INPUT = {"var": 3, "std": 3, "var_mean": 3, "std_mean": 3, "_softmax": 5, "_log_softmax": 5,
              "_native_batch_norm_legit_no_training": 4, "native_batch_norm": 4,
              "max": 1, "min": 1, "cumsum": 1, "cumprod": 1, "logcumsumexp": 3}
_NORMS = {"native_layer_norm", "native_group_norm"}
_POOLS = {"max_pool1d", "max_pool2d", "max_pool2d_with_indices", "max_pool3d_with_indices",
          "avg_pool1d", "avg_pool2d", "avg_pool3d"}
_BIASED = {"addmm", "baddbmm", "convolution", "_convolution"}
_DATA_MOVEMENT = {"clone", "copy_", "_to_copy", "copy", "cat", "stack", "ones", "zeros", "empty",
                  "empty_like", "zeros_like", "ones_like", "full", "full_like", "fill_", "zero_",
                  "arange", "triu", "tril", "index", "index_select", "gather", "scatter",
                  "slice_scatter", "select_scatter", "constant_pad_nd", "detach",
                  "lift_fresh_copy", "_unsafe_view", "split", "split_with_sizes", "unbind",
                  "contiguous", "flip", "roll", "repeat", "embedding", "new_empty", "new_zeros",
                  "new_ones", "new_full", "scalar_tensor", "empty_strided", "resize_",
                  "set_", "randn", "rand", "randint", "normal_", "uniform_", "item",
                  "_local_scalar_dense", "unfold", "pad"}


class SolCounts(BaseModel):
    """What a problem needs at least, independent of any device."""

    tensor_flops: int = Field(description="matmul, convolution and attention FLOPs")
    vector_flops: int = Field(description="pointwise and reduction FLOPs")
    bytes: int = Field(description="inputs, parameters and buffers read once, outputs written once")
    uncounted_ops: list[str] = Field(default_factory=list, description="ops with no FLOP rule")
    tensor_ops: int = Field(0, description="matmul-class calls: the fewest kernels that would do")

    @property
    def flops(self) -> int:
        return self.tensor_flops + self.vector_flops


def floor(counts: SolCounts, profile: DeviceProfile, precision: Precision) -> SolAnalysis:
    """The SOL floor: max(FLOPs over the policy's peaks, bytes over the bandwidth)."""
    if precision == "fp32":  # fp32-accurate matmuls may run on the tensor cores (3xTF32)
        tensor_peak, kind = profile.fp32_accurate()
    else:
        tensor_peak, kind = profile.peak_tflops(TENSOR_RATE[precision]), f"{precision} tensor rate"
    vector_peak = profile.peak_tflops("fp32")
    compute_us = (counts.tensor_flops / tensor_peak + counts.vector_flops / vector_peak) / 1e6
    memory_us = counts.bytes / profile.memory_bandwidth_gbps / 1e3
    return SolAnalysis(
        flops=counts.flops, tensor_flops=counts.tensor_flops, vector_flops=counts.vector_flops,
        bytes=counts.bytes, profile=profile.name, calibrated=profile.calibrated,
        precision=precision, tensor_peak_tflops=tensor_peak, tensor_peak_kind=kind,
        vector_peak_tflops=vector_peak,
        bandwidth_gbps=profile.memory_bandwidth_gbps, compute_floor_us=compute_us,
        memory_floor_us=memory_us, floor_us=max(compute_us, memory_us),
        bound="compute" if compute_us > memory_us else "memory",
        uncounted_ops=counts.uncounted_ops, min_launches=max(1, counts.tensor_ops))


def sol_fraction(floor_us: float, measured_us: float) -> float:
    """Floor over measured time: 1.0 is the speed-of-light, 0.25 is four times slower."""
    return floor_us / measured_us


def faster_than_sol(floor_us: float, measured_us: float) -> bool:
    """True when a measurement beats physics by more than 5%: a bug in the kernel or a cheat."""
    return measured_us < FASTER_THAN_SOL * floor_us


def judge(sol: SolAnalysis, measured_us: float) -> tuple[float, bool]:
    """(SOL fraction, faster-than-SOL flag) of a measured time against the floor."""
    return sol_fraction(sol.floor_us, measured_us), faster_than_sol(sol.floor_us, measured_us)


def count_problem(module: types.ModuleType, precision: Precision) -> SolCounts:
    """Count an executed problem module's reference forward at its full sizes.

    Runs on the meta device (shapes only, instant); a model that needs real data falls back
    to one CPU forward.
    """
    from kernelwright.core.precision import prepare_inputs, prepare_module

    init = list(module.get_init_inputs()) if hasattr(module, "get_init_inputs") else []
    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                model = module.Model(*init)
                inputs = list(module.get_inputs())
            model = prepare_module(model, precision, torch.device(device))
            inputs = prepare_inputs(inputs, precision, torch.device(device))
            return count(model, inputs)
        except (NotImplementedError, RuntimeError, TypeError, ValueError) as exc:
            if device == "cpu":
                raise
            log.info("meta-device count failed (%s); counting with one CPU forward", exc)
    raise AssertionError("unreachable")


def count(model: torch.nn.Module, inputs: list[Any]) -> SolCounts:
    """Count one forward of `model` on `inputs` (any device, meta included)."""
    from torch.utils.flop_counter import FlopCounterMode

    vector = _VectorCounter()
    with torch.no_grad(), FlopCounterMode(display=False) as flop_counter, vector:
        outputs = model(*inputs)
    read = _unique_tensors([*inputs, *model.parameters(), *model.buffers()])
    written = _unique_tensors(_flatten(outputs))
    nbytes = sum(_nbytes(t) for t in read) + sum(_nbytes(t) for t in written)
    return SolCounts(tensor_flops=int(flop_counter.get_total_flops()),
                     vector_flops=vector.flops, bytes=nbytes,
                     uncounted_ops=sorted(vector.uncounted), tensor_ops=vector.tensor_ops)


class _VectorCounter(TorchDispatchMode):
    """Counts pointwise and reduction FLOPs by the rules in the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0
        self.tensor_ops = 0
        self.uncounted: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.flops += self._rule(func, args, kwargs, out)
        return out

    def _rule(self, func: Any, args: tuple, kwargs: dict, out: Any) -> int:
        from torch.utils.flop_counter import flop_registry

        name = func.overloadpacket.__name__
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        outputs = [t for t in _flatten(out) if isinstance(t, torch.Tensor)]
        out_numel = outputs[0].numel() if outputs else 0
        if func.overloadpacket in flop_registry:
            self.tensor_ops += 1
        if name in _BIASED:
            bias = args[0] if name in {"addmm", "baddbmm"} else args[2]
            return out_numel if isinstance(bias, torch.Tensor) else 0
        if func.overloadpacket in flop_registry:  # counted by FlopCounterMode
            return 0
        if _is_zero_cost(func, name):
            return 0
        if name in _NORMS:
            affine = isinstance(args[1], torch.Tensor) or isinstance(args[2], torch.Tensor)
            return (7 if affine else 5) * (first.numel() if first is not None else 0)
        if name in _POOLS:
            window = math.prod(_as_list(args[1]))
            return out_numel * (window + (1 if name.startswith("avg") else 0))
        if name in _PER_INPUT and first is not None:
            return _PER_INPUT[name] * first.numel()
        if torch.Tag.reduction in func.tags and first is not None:
            return first.numel()
        if torch.Tag.pointwise in func.tags:
            return out_numel
        self.uncounted.add(name)
        return 0


def _is_zero_cost(func: Any, name: str) -> bool:
    return name in _DATA_MOVEMENT or bool(getattr(func, "is_view", False)) or name.startswith(
        ("view", "as_strided", "expand", "permute", "transpose", "t", "unsqueeze", "squeeze",
         "select", "slice", "alias", "reshape", "flatten", "narrow", "detach"))


def _as_list(value: Any) -> list[int]:
    return list(value) if isinstance(value, list | tuple) else [int(value)]


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [x for v in value for x in _flatten(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    return [value]


def _unique_tensors(values: list[Any]) -> list[torch.Tensor]:
    seen: dict[int, torch.Tensor] = {}
    for v in values:
        if isinstance(v, torch.Tensor):
            seen.setdefault(id(v), v)
    return list(seen.values())


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()
