"""The precision policy, applied identically to the reference, the baselines and the candidate."""

from __future__ import annotations

from typing import Any

import torch

from kernelwright.core.results import Precision

_CAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def apply_policy(precision: Precision) -> None:
    """Set TF32 for matmul and cuDNN: off under fp32, on under tf32 (process-wide)."""
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def prepare_inputs(inputs: list[Any], precision: Precision, device: torch.device) -> list[Any]:
    """Move tensors to the device and cast floating ones to the policy's dtype."""
    dtype = _CAST.get(precision)
    out = []
    for value in inputs:
        if isinstance(value, torch.Tensor):
            value = value.to(device)
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
        out.append(value)
    return out


def prepare_module(model: torch.nn.Module, precision: Precision,
                   device: torch.device) -> torch.nn.Module:
    model = model.to(device).eval()
    dtype = _CAST.get(precision)
    return model.to(dtype) if dtype is not None else model
