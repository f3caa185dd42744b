"""Measure this machine's peaks (`kernelwright hw calibrate`) and pick the profile to use.

Bandwidth is the better of a large device copy (bytes read plus written) and a large sum (bytes
read), since read-mostly kernels go a little faster than a copy; each rate is the better of two
large square matmuls per precision: what a good kernel reaches here, not a vendor peak. On a GPU
a 3xTF32 Triton GEMM is measured beside cuBLAS fp32 (fp32 accuracy on the tensor cores: the
fp32 policy's SOL floor charges GEMMs at the faster of the two, DeviceProfile.fp32_accurate). The
profile is cached per device name in the user cache dir and wins over the datasheet.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from kernelwright.hardware.profiles import DeviceProfile, cpu_profile, datasheet_for

log = logging.getLogger(__name__)

CACHE_ENV = "KERNELWRIGHT_CACHE_DIR"


def cache_dir() -> Path:
    """Where calibrated profiles live: $KERNELWRIGHT_CACHE_DIR, else the user cache dir."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs

    return platformdirs.user_cache_path("kernelwright")


def profile_path(device_name: str) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")
    return cache_dir() / "hardware" / f"{slug}.json"


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"cpu-{os.cpu_count()}"


def load_calibrated(name: str) -> DeviceProfile | None:
    path = profile_path(name)
    if not path.is_file():
        return None
    try:
        return DeviceProfile.model_validate_json(path.read_text())
    except ValueError as exc:  # a corrupt cache must not stop an evaluation; recalibrate
        log.warning("ignoring unreadable calibrated profile %s: %s", path, exc)
        return None


def resolve_profile(device: str) -> DeviceProfile | None:
    """The profile for `device` ("cuda" or "cpu"): calibrated, else datasheet, else None.

    None means an unknown GPU that was never calibrated; SOL figures are then left out.
    """
    name = device_name(device)
    calibrated = load_calibrated(name)
    if calibrated is not None:
        return calibrated
    if device == "cpu":
        return cpu_profile(os.cpu_count() or 1)
    return datasheet_for(name)


def calibrate(device: str, progress: Callable[[str], None] = lambda _: None) -> DeviceProfile:
    """Measure bandwidth and matmul rates on `device`, save the profile and return it."""
    import torch

    name = device_name(device)
    base = datasheet_for(name) if device == "cuda" else cpu_profile(os.cpu_count() or 1)
    timer = _cuda_time_s if device == "cuda" else _cpu_time_s
    copy_bytes = (1 << 30) if device == "cuda" else (1 << 27)
    progress(f"copy and sum of {copy_bytes >> 20} MiB")
    bandwidth = _bandwidth_gbps(copy_bytes, device, timer)
    rates: dict[str, float | None] = {}
    sizes = [4096, 8192] if device == "cuda" else [512, 1024]
    kinds = ["fp32", "tf32", "bf16", "fp16"] if device == "cuda" else ["fp32"]
    for kind in kinds:
        progress(f"{kind} matmuls of {' and '.join(map(str, sizes))}")
        rates[kind] = max(_matmul_tflops(kind, size, device, timer) for size in sizes)
    if device == "cuda":
        progress(f"3xTF32 Triton GEMMs of {' and '.join(map(str, sizes))}")
        rates["tf32x3"] = max(_matmul_tflops("tf32x3", size, device, timer) for size in sizes)
        props = torch.cuda.get_device_properties(0)
        l2, units = int(getattr(props, "L2_cache_size", 0)), props.multi_processor_count
    else:
        l2, units = 0, os.cpu_count() or 1
    profile = DeviceProfile(
        name=base.name if base else "unknown", marketing_name=name,
        vendor=base.vendor if base else "unknown", memory_bandwidth_gbps=bandwidth,
        fp32_tflops=rates["fp32"] or 0.0, tf32_tflops=rates.get("tf32"),
        bf16_tflops=rates.get("bf16"), fp16_tflops=rates.get("fp16"),
        tf32x3_tflops=rates.get("tf32x3"),
        fp8_tflops=base.fp8_tflops if base else None,  # not measured: datasheet figure kept
        l2_bytes=l2 or (base.l2_bytes if base else 0), sm_count=units,
        source=f"measured by `kernelwright hw calibrate` on {time.strftime('%Y-%m-%d')} "
               f"(torch {torch.__version__}); fp8 from the datasheet",
        calibrated=True)
    path = profile_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(profile.model_dump_json(indent=2))
    return profile


def _bandwidth_gbps(nbytes: int, device: str, timer: Callable[..., float]) -> float:
    """The better of a copy (bytes read plus written) and a sum (bytes read), in GB/s."""
    import torch

    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    copy = 2 * nbytes / timer(lambda: dst.copy_(src)) / 1e9
    read = nbytes / timer(lambda: src.sum()) / 1e9
    return max(copy, read)


def _matmul_tflops(kind: str, size: int, device: str, timer: Callable[..., float]) -> float:
    import torch

    from kernelwright.core.precision import apply_policy

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(kind, torch.float32)
    apply_policy("tf32" if kind == "tf32" else "fp32")
    try:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        if kind == "tf32x3":  # fp32 accuracy on the tensor cores (hardware/tf32x3.py)
            from kernelwright.hardware.tf32x3 import gemm

            bt = b.t().contiguous()
            torch.testing.assert_close(gemm(a, bt), a @ b, rtol=1e-4, atol=1e-3)
            seconds = timer(lambda: gemm(a, bt))
        else:
            seconds = timer(lambda: torch.mm(a, b))
    finally:
        apply_policy("fp32")
    return 2 * size**3 / seconds / 1e12


def _cuda_time_s(fn: Callable[[], object], reps: int = 20) -> float:
    """Median seconds per call between CUDA events, after a warm-up."""
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def _cpu_time_s(fn: Callable[[], object], reps: int = 5) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
