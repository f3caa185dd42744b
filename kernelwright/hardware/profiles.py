"""Device profiles: peak memory bandwidth and peak rates per precision, with their sources.

Datasheet figures are dense (no structured sparsity). A profile measured on this machine by
`kernelwright hw calibrate` wins over the datasheet (see `calibrate.py`): the SOL floor should
be what the hardware actually allows, and a vendor peak is never reached by a real kernel.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# Rates a kernel can run at. "fp32" is the FMA rate of the vector units (no tensor cores):
# pointwise and reduction work always runs there, and so do matmuls under the fp32 policy.
RateKind = Literal["fp32", "tf32", "bf16", "fp16", "fp8"]


class DeviceProfile(BaseModel):
    """Peaks of one device. Rates in TFLOP/s, bandwidth in GB/s (1e9 bytes per second)."""

    name: str = Field(description="profile key, e.g. 'h100-sxm'")
    marketing_name: str = Field(description="what the vendor calls it")
    vendor: str
    memory_bandwidth_gbps: float = Field(gt=0, description="peak DRAM bandwidth")
    fp32_tflops: float = Field(gt=0, description="FP32 FMA rate of the vector units")
    tf32_tflops: float | None = Field(None, description="TF32 tensor rate (None: no TF32)")
    bf16_tflops: float | None = Field(None, description="BF16 tensor rate, FP32 accumulate")
    fp16_tflops: float | None = Field(None, description="FP16 tensor rate, FP32 accumulate")
    fp8_tflops: float | None = Field(None, description="FP8 tensor rate (None: no FP8)")
    tf32x3_tflops: float | None = Field(None, description="a 3xTF32 GEMM's rate (three TF32 "
                                        "products per product: fp32 accuracy on the tensor "
                                        "cores), as `hw calibrate` measured it; None: not measured")
    l2_bytes: int = Field(0, ge=0, description="last-level on-chip cache the L2 flush must beat")
    sm_count: int = Field(0, ge=0, description="SMs (NVIDIA), CUs (AMD), AI cores (Ascend), cores")
    source: str = Field(description="where the figures come from")
    calibrated: bool = Field(False, description="True when measured on this machine")

    def peak_tflops(self, kind: RateKind) -> float:
        """Peak rate for a precision; a precision the device lacks falls back to FP32 FMA."""
        rate = getattr(self, f"{kind}_tflops", None)
        return rate if rate else self.fp32_tflops

    def fp32_accurate(self) -> tuple[float, str]:
        """The fastest rate at fp32 accuracy, and what gives it: the FP32 FMA rate, or one third
        of the TF32 tensor rate (3xTF32: each operand a TF32 value plus a TF32 residual, three
        products), or a 3xTF32 GEMM measured faster than that."""
        rates = [(self.fp32_tflops, "FP32 FMA")]
        if self.tf32_tflops:
            rates.append((self.tf32_tflops / 3, "3xTF32 (a third of the TF32 tensor rate)"))
        if self.tf32x3_tflops:
            rates.append((self.tf32x3_tflops, "3xTF32 (a measured 3xTF32 GEMM)"))
        return max(rates, key=lambda r: r[0])


# Vendor datasheets, dense figures. A sparse-only figure in a datasheet was halved.
DATASHEETS: dict[str, DeviceProfile] = {
    # NVIDIA H100 Tensor Core GPU datasheet (SXM5 80 GB): FP32 67, TF32 989*, BF16/FP16 1979*,
    # FP8 3958* TFLOPS (* with sparsity), HBM3 3.35 TB/s; Hopper whitepaper: 132 SMs, 50 MB L2.
    "h100-sxm": DeviceProfile(
        name="h100-sxm", marketing_name="NVIDIA H100 SXM5 80GB", vendor="nvidia",
        memory_bandwidth_gbps=3350, fp32_tflops=67, tf32_tflops=494.5, bf16_tflops=989.5,
        fp16_tflops=989.5, fp8_tflops=1979, l2_bytes=50 * 2**20, sm_count=132,
        source="NVIDIA H100 datasheet (SXM5), Hopper architecture whitepaper"),
    # NVIDIA H200 datasheet (SXM 141 GB): same compute as H100 SXM, HBM3e 4.8 TB/s.
    "h200": DeviceProfile(
        name="h200", marketing_name="NVIDIA H200 SXM 141GB", vendor="nvidia",
        memory_bandwidth_gbps=4800, fp32_tflops=67, tf32_tflops=494.5, bf16_tflops=989.5,
        fp16_tflops=989.5, fp8_tflops=1979, l2_bytes=50 * 2**20, sm_count=132,
        source="NVIDIA H200 datasheet (SXM)"),
    # NVIDIA A100 datasheet (SXM4 80 GB): FP32 19.5, TF32 156, BF16/FP16 312 TFLOPS,
    # HBM2e 2039 GB/s; Ampere whitepaper: 108 SMs, 40 MB L2. No FP8.
    "a100": DeviceProfile(
        name="a100", marketing_name="NVIDIA A100 SXM4 80GB", vendor="nvidia",
        memory_bandwidth_gbps=2039, fp32_tflops=19.5, tf32_tflops=156, bf16_tflops=312,
        fp16_tflops=312, l2_bytes=40 * 2**20, sm_count=108,
        source="NVIDIA A100 datasheet (SXM4 80GB), Ampere architecture whitepaper"),
    # NVIDIA L40S datasheet: FP32 91.6, TF32 183, BF16/FP16 362.05, FP8 733 TFLOPS (dense),
    # GDDR6 864 GB/s; Ada whitepaper: 142 SMs, 96 MB L2.
    "l40s": DeviceProfile(
        name="l40s", marketing_name="NVIDIA L40S", vendor="nvidia",
        memory_bandwidth_gbps=864, fp32_tflops=91.6, tf32_tflops=183, bf16_tflops=362.05,
        fp16_tflops=362.05, fp8_tflops=733, l2_bytes=96 * 2**20, sm_count=142,
        source="NVIDIA L40S datasheet, Ada Lovelace architecture whitepaper"),
    # NVIDIA Ada whitepaper, GeForce RTX 4090: FP32 82.6, TF32 82.6, FP16/BF16 165.2 (FP32
    # accumulate), FP8 330.3 TFLOPS (dense); GDDR6X 1008 GB/s, 128 SMs, 72 MB L2.
    "rtx4090": DeviceProfile(
        name="rtx4090", marketing_name="NVIDIA GeForce RTX 4090", vendor="nvidia",
        memory_bandwidth_gbps=1008, fp32_tflops=82.6, tf32_tflops=82.6, bf16_tflops=165.2,
        fp16_tflops=165.2, fp8_tflops=330.3, l2_bytes=72 * 2**20, sm_count=128,
        source="NVIDIA Ada Lovelace architecture whitepaper (RTX 4090)"),
    # AMD Instinct MI300X datasheet: FP32 vector 81.7, TF32 653.7, BF16/FP16 1307.4,
    # FP8 2614.9 TFLOPS (dense); HBM3 5.3 TB/s; 304 CUs; 4 MB L2 per XCD x 8 (256 MB Infinity
    # Cache behind it is not flushed by a 256 MB buffer reliably, so L2 is what we name here).
    "mi300x": DeviceProfile(
        name="mi300x", marketing_name="AMD Instinct MI300X", vendor="amd",
        memory_bandwidth_gbps=5300, fp32_tflops=81.7, tf32_tflops=653.7, bf16_tflops=1307.4,
        fp16_tflops=1307.4, fp8_tflops=2614.9, l2_bytes=32 * 2**20, sm_count=304,
        source="AMD Instinct MI300X datasheet, CDNA 3 whitepaper"),
    # Huawei Ascend 910B: Huawei publishes no full datasheet; figures as publicly reported for
    # the 910B (FP16/BF16 about 320 TFLOPS on the cube units, 64 GB HBM2e at about 1.6 TB/s,
    # 20-25 AI cores; vector FP32 not published, estimated here). Calibrate on the device.
    "ascend910b": DeviceProfile(
        name="ascend910b", marketing_name="Huawei Ascend 910B", vendor="huawei",
        memory_bandwidth_gbps=1600, fp32_tflops=40, bf16_tflops=320, fp16_tflops=320,
        l2_bytes=192 * 2**20, sm_count=24,
        source="public reports on the Ascend 910B (no vendor datasheet); FP32 is an estimate"),
}

# Substrings of torch.cuda.get_device_name() (lower case) that pick a datasheet, most specific
# first. A PCIe H100 has less bandwidth and clock: it matches no key, so it needs calibration.
NAME_PATTERNS: list[tuple[str, str]] = [
    ("h100 80gb hbm3", "h100-sxm"), ("h100 sxm", "h100-sxm"), ("h200", "h200"),
    ("a100-sxm4-80gb", "a100"), ("a100 80gb", "a100"), ("l40s", "l40s"),
    ("rtx 4090", "rtx4090"), ("mi300x", "mi300x"), ("910b", "ascend910b"),
]


def datasheet_for(device_name: str) -> DeviceProfile | None:
    """The datasheet profile whose pattern the device name contains, if any."""
    lowered = device_name.lower()
    for pattern, key in NAME_PATTERNS:
        if pattern in lowered:
            return DATASHEETS[key]
    return None


def cpu_profile(cores: int) -> DeviceProfile:
    """A nominal CPU profile (no datasheet applies): 16 GFLOP/s and 5 GB/s per core.

    These are rough figures for one AVX2 core; `kernelwright hw calibrate` measures the truth.
    """
    return DeviceProfile(
        name="cpu", marketing_name=f"CPU ({cores} cores)", vendor="cpu",
        memory_bandwidth_gbps=5.0 * cores, fp32_tflops=0.016 * cores, l2_bytes=0, sm_count=cores,
        source="nominal per-core estimate; run `kernelwright hw calibrate` to measure")
