"""Datasheet lookup, calibration cache, and a calibrated profile winning over the datasheet."""

import pytest

from kernelwright.hardware import calibrate as cal
from kernelwright.hardware.profiles import DATASHEETS, datasheet_for


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cal.CACHE_ENV, str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name, key", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"), ("NVIDIA H200", "h200"),
    ("NVIDIA A100-SXM4-80GB", "a100"), ("NVIDIA L40S", "l40s"),
    ("NVIDIA GeForce RTX 4090", "rtx4090"), ("AMD Instinct MI300X", "mi300x"),
    ("Ascend910B3", "ascend910b"),
])
def test_device_names_pick_their_datasheet(name, key):
    assert datasheet_for(name) is DATASHEETS[key]


def test_unknown_or_weaker_variant_gets_no_datasheet():
    assert datasheet_for("NVIDIA H100 PCIe") is None  # less bandwidth than the SXM figures


def test_every_datasheet_names_its_source_and_has_rates():
    for profile in DATASHEETS.values():
        assert profile.source and profile.memory_bandwidth_gbps > 0 and profile.fp32_tflops > 0
        assert not profile.calibrated


def test_calibrated_profile_wins_over_the_datasheet(monkeypatch):
    monkeypatch.setattr(cal, "device_name", lambda device: "NVIDIA H100 80GB HBM3")
    assert cal.resolve_profile("cuda") is DATASHEETS["h100-sxm"]
    measured = DATASHEETS["h100-sxm"].model_copy(update=dict(
        memory_bandwidth_gbps=3000.0, fp32_tflops=51.0, calibrated=True, source="measured"))
    path = cal.profile_path("NVIDIA H100 80GB HBM3")
    path.parent.mkdir(parents=True)
    path.write_text(measured.model_dump_json())
    resolved = cal.resolve_profile("cuda")
    assert resolved.calibrated and resolved.memory_bandwidth_gbps == 3000.0


def test_corrupt_cache_falls_back_to_the_datasheet(monkeypatch):
    monkeypatch.setattr(cal, "device_name", lambda device: "NVIDIA H100 80GB HBM3")
    path = cal.profile_path("NVIDIA H100 80GB HBM3")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert cal.resolve_profile("cuda") is DATASHEETS["h100-sxm"]


def test_cpu_calibration_measures_and_caches(cache):
    profile = cal.calibrate("cpu")
    assert profile.calibrated and profile.memory_bandwidth_gbps > 0 and profile.fp32_tflops > 0
    assert cal.profile_path(cal.device_name("cpu")).is_file()
    assert cal.resolve_profile("cpu") == profile


def test_the_calibration_3xtf32_gemm_computes_a_matmul():
    """`hw calibrate` times this kernel on a GPU beside cuBLAS fp32; it must be a GEMM (here
    through the interpreter, in a process of its own, which runs its dots in fp32)."""
    import os
    import subprocess
    import sys

    check = ("import torch; from kernelwright.hardware.tf32x3 import gemm; "
             "a, b = torch.randn(256, 384), torch.randn(384, 128); "
             "torch.testing.assert_close(gemm(a, b.t().contiguous()), a @ b, rtol=1e-4, atol=1e-4)")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr[-800:]
