"""SOL counts equal hand counts; the peak follows the precision policy; the flag fires."""

from pathlib import Path

import pytest
import torch
import torch.nn as nn

from kernelwright.core.problem import load_problem
from kernelwright.hardware.profiles import DATASHEETS
from kernelwright.tools.sol import count, count_problem, faster_than_sol, floor, judge

PROBLEMS = Path(__file__).resolve().parents[2] / "examples" / "problems"
F32 = 4  # bytes per fp32 element


def counts_of(relative, precision="fp32"):
    return count_problem(load_problem(PROBLEMS / relative).module(), precision)


def test_matmul_counts():
    n = 4096
    c = counts_of("level1/07_matmul.py")
    assert c.tensor_flops == 2 * n * n * n  # one multiply and one add per (i, j, k)
    assert c.vector_flops == 0
    assert c.bytes == 3 * n * n * F32  # a and b read, the product written
    assert c.uncounted_ops == []


def test_linear_with_bias_counts():
    m, k, n = 123, 300, 200
    c = count(nn.Linear(k, n), [torch.randn(m, k)])
    assert c.tensor_flops == 2 * m * n * k
    assert c.vector_flops == m * n  # the bias add fused into addmm
    assert c.bytes == (m * k + n * k + n + m * n) * F32  # x, weight, bias, output


def test_conv2d_counts():
    batch, cin, cout, h, w, ksz = 2, 3, 8, 17, 19, 3
    conv = nn.Conv2d(cin, cout, ksz, padding=1)
    c = count(conv, [torch.randn(batch, cin, h, w)])
    out = batch * cout * h * w  # padding 1 keeps 17 x 19
    assert c.tensor_flops == 2 * out * cin * ksz * ksz
    assert c.vector_flops == out  # bias
    assert c.bytes == (batch * cin * h * w + cout * cin * ksz * ksz + cout + out) * F32


def test_softmax_counts():
    rows, cols = 4096, 16384
    c = counts_of("level1/03_softmax.py")
    assert c.tensor_flops == 0
    assert c.vector_flops == 5 * rows * cols  # max, subtract, exp, sum, divide
    assert c.bytes == 2 * rows * cols * F32


def test_layernorm_counts():
    rows, dim = 8192, 4096
    c = counts_of("level1/04_layernorm.py")
    assert c.vector_flops == 7 * rows * dim  # mean, sub, square, sum, scale, * weight, + bias
    assert c.bytes == (2 * rows * dim + 2 * dim) * F32  # x, y, weight, bias


def test_level3_mlp_counts():
    batch, sizes = 128, [4096, 4096, 4096, 1024]
    layers = list(zip(sizes[:-1], sizes[1:], strict=True))
    c = counts_of("level3/01_mlp.py")
    assert c.tensor_flops == sum(2 * batch * i * o for i, o in layers)
    relus = batch * (4096 + 4096)
    biases = batch * sum(o for _, o in layers)
    assert c.vector_flops == relus + biases
    weights = sum(i * o + o for i, o in layers)
    assert c.bytes == (batch * sizes[0] + weights + batch * sizes[-1]) * F32
    assert c.tensor_ops == 3


def test_bf16_policy_halves_the_bytes():
    n = 4096
    assert counts_of("level1/07_matmul.py", "bf16").bytes == 3 * n * n * 2


@pytest.mark.parametrize("precision, rate", [("fp32", 494.5 / 3), ("tf32", 494.5),
                                             ("bf16", 989.5), ("fp16", 989.5)])
def test_peak_follows_the_precision_policy(precision, rate):
    c = counts_of("level1/07_matmul.py", precision)
    sol = floor(c, DATASHEETS["h100-sxm"], precision)
    assert sol.tensor_peak_tflops == rate
    assert sol.vector_peak_tflops == 67  # pointwise work never runs on tensor cores
    assert sol.compute_floor_us == pytest.approx(c.tensor_flops / (rate * 1e12) * 1e6)
    assert sol.bound == "compute"


def test_fp32_matmuls_are_charged_at_the_fastest_fp32_accurate_rate():
    """Under fp32 a GEMM may run as 3xTF32 (three TF32 products, fp32 accuracy): the floor charges
    the faster of the FP32 FMA rate and a third of the TF32 rate (or a 3xTF32 GEMM measured
    faster still), and says which."""
    c = counts_of("level1/07_matmul.py", "fp32")
    h100 = DATASHEETS["h100-sxm"]
    sol = floor(c, h100, "fp32")
    assert sol.tensor_peak_tflops == pytest.approx(494.5 / 3) and "3xTF32" in sol.tensor_peak_kind
    slow_tensor_cores = h100.model_copy(update={"tf32_tflops": 90.0})  # a third is under FMA's 67
    sol = floor(c, slow_tensor_cores, "fp32")
    assert sol.tensor_peak_tflops == 67 and sol.tensor_peak_kind == "FP32 FMA"
    measured = h100.model_copy(update={"tf32x3_tflops": 200.0})
    assert floor(c, measured, "fp32").tensor_peak_tflops == 200.0
    no_tf32 = DATASHEETS["ascend910b"]
    assert floor(c, no_tf32, "fp32").tensor_peak_tflops == no_tf32.fp32_tflops


def test_device_without_tf32_falls_back_to_fp32_rate():
    c = counts_of("level1/07_matmul.py", "tf32")
    ascend = DATASHEETS["ascend910b"]
    assert floor(c, ascend, "tf32").tensor_peak_tflops == ascend.fp32_tflops


def test_memory_bound_floor_is_bytes_over_bandwidth():
    c = counts_of("level1/03_softmax.py")
    sol = floor(c, DATASHEETS["h100-sxm"], "fp32")
    assert sol.bound == "memory"
    assert sol.floor_us == pytest.approx(c.bytes / 3350e9 * 1e6)


def test_faster_than_sol_flag_fires_on_a_fabricated_time():
    sol = floor(counts_of("level1/03_softmax.py"), DATASHEETS["h100-sxm"], "fp32")
    fraction, flagged = judge(sol, 0.5 * sol.floor_us)
    assert flagged and fraction == pytest.approx(2.0)
    assert not faster_than_sol(sol.floor_us, 0.96 * sol.floor_us)
    fraction, flagged = judge(sol, 4 * sol.floor_us)
    assert not flagged and fraction == pytest.approx(0.25)
