"""Accuracy parity: a candidate's error against a float64 evaluation of the reference may be at
most PARITY_FACTOR times the eager reference's own (tools/correctness.py). A GEMM on TF32
operands fails it, the three-product split of the same GEMM (3xTF32) passes, exact answers are
not punished, and every verdict carries both errors."""

from pathlib import Path

import pytest
import torch

from kernelwright.core.problem import parse_problem
from kernelwright.core.results import EvalSettings
from kernelwright.tools.correctness import PARITY_FACTOR, accuracy, parity_mismatch
from kernelwright.tools.evaluate import evaluate

ADVERSARIAL = Path(__file__).resolve().parents[1] / "adversarial"
DEEP = ADVERSARIAL / "problems" / "mm_deep.py"


def tf32(x: torch.Tensor) -> torch.Tensor:
    """x rounded to the nearest TF32 value (10 mantissa bits), as the kernels in the corpus do."""
    bits = x.view(torch.int32)
    return ((bits + 0x1000) & -8192).view(torch.float32)


def gemm_case(k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(k)
    a, b = torch.randn(64, k), torch.randn(k, 48)
    return a, b, a @ b, a.double() @ b.double()


@pytest.mark.parametrize("k", [256, 1024])
def test_a_tf32_gemm_fails_parity_and_its_3xtf32_split_passes(k):
    a, b, ref, exact = gemm_case(k)
    one = tf32(a) @ tf32(b)
    big_a, big_b = tf32(a), tf32(b)
    three = tf32(a - big_a) @ big_b + big_a @ tf32(b - big_b) + big_a @ big_b
    failing = accuracy([one], [ref], [exact])
    passing = accuracy([three], [ref], [exact])
    assert failing is not None and passing is not None
    assert failing.ratio > 10 * PARITY_FACTOR  # far over: the factor is not a knife edge
    assert parity_mismatch(failing, PARITY_FACTOR, "fp32") is not None
    assert passing.ratio < PARITY_FACTOR / 4
    assert parity_mismatch(passing, PARITY_FACTOR, "fp32") is None
    assert "less accurate than the fp32 reference" in str(parity_mismatch(failing, PARITY_FACTOR,
                                                                            "fp32"))


def test_exact_answers_and_all_zero_outputs_are_not_punished():
    x = torch.randn(1000)
    relu = accuracy([x.clamp_min(0)], [x.clamp_min(0)], [x.double().clamp_min(0)])
    assert relu is not None and relu.candidate == 0 and relu.ratio == 0
    zeros = torch.zeros(10)
    assert accuracy([zeros], [zeros], [zeros.double()]).ratio == 0  # type: ignore[union-attr]
    off = accuracy([zeros + 1e-30], [zeros], [zeros.double()])
    assert off is not None and parity_mismatch(off, PARITY_FACTOR, "fp32") is not None
    # a rounding-level difference on an exact reference is within the epsilon floor
    near = accuracy([(x.double() * (1 + 2**-24)).float()], [x], [x.double()])
    assert near is not None and near.ratio <= 2


def test_integer_outputs_are_left_to_the_exact_comparison():
    i = torch.arange(10)
    assert accuracy([i], [i], [i]) is None


def test_the_worst_output_is_reported_and_slices_give_the_same_sums():
    a, b, ref, exact = gemm_case(512)
    one = tf32(a) @ tf32(b)
    whole = accuracy([ref, one], [ref, ref], [exact, exact])
    sliced = accuracy([ref, one], [ref, ref], [exact, exact], chunk=7)
    assert whole is not None and sliced is not None and whole.output == sliced.output == 1
    assert sliced.candidate == pytest.approx(whole.candidate, rel=1e-9)
    assert sliced.reference == pytest.approx(whole.reference, rel=1e-9)


def test_bf16_policy_is_held_to_the_bf16_reference():
    """Under bf16 the reference runs in bf16: a candidate with bf16 operands and fp32 sums is at
    least as accurate; one that keeps 2 of bf16's 7 mantissa bits is not."""
    a, b, _, _ = gemm_case(512)
    a, b = a.bfloat16(), b.bfloat16()
    exact = a.double() @ b.double()
    ref = a @ b
    good = (a.float() @ b.float()).bfloat16()
    coarse = (good.float().view(torch.int32) & -(1 << 21)).view(torch.float32).bfloat16()
    assert parity_mismatch(accuracy([good], [ref], [exact]), PARITY_FACTOR, "bf16") is None  # type: ignore[arg-type]
    assert parity_mismatch(accuracy([coarse], [ref], [exact]), PARITY_FACTOR, "bf16") is not None  # type: ignore[arg-type]


SETTINGS = EvalSettings(device="cpu", timeout_s=180, compile_baseline=False)


def test_the_harness_rejects_the_tf32_gemm_by_parity_alone():
    """With a tolerance loose enough for TF32, parity is what refuses it; both errors are in the
    verdict. The 3xTF32 split of the same kernel is correct, with its errors beside it."""
    loose = SETTINGS.model_copy(update={"tolerance": 1e-2})
    bad = evaluate(DEEP, (ADVERSARIAL / "tf32_emulated.py").read_text(), loose)
    assert (bad.status, bad.reason) == ("incorrect", "precision_parity"), bad.message
    assert bad.exact_error is not None and bad.reference_exact_error is not None
    assert bad.exact_error > PARITY_FACTOR * max(bad.reference_exact_error, 2**-24)
    good = evaluate(DEEP, (ADVERSARIAL / "tf32x3_split.py").read_text(), loose)
    assert good.status == "correct", good.message
    assert good.exact_error is not None and good.reference_exact_error is not None
    assert good.exact_error <= PARITY_FACTOR * max(good.reference_exact_error, 2**-24)
    assert "error against float64" in good.message and good.parity_factor == PARITY_FACTOR


def test_a_reference_that_cannot_run_in_float64_is_said_so():
    """A forward that makes an fp32 tensor of its own (not from the default dtype) cannot run in
    float64: parity is not measured and the verdict says why; the tolerance still judges."""
    source = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        w = torch.ones(x.shape[1], 8, dtype=torch.float32, device=x.device)
        return torch.relu(x @ w)


def get_inputs():
    return [torch.randn(16, 32)]


def get_init_inputs():
    return []
'''
    candidate = (ADVERSARIAL / "legit.py").read_text().replace(
        "        return relu(x.contiguous())",
        "        w = torch.ones(x.shape[1], 8, dtype=torch.float32, device=x.device)\n"
        "        return relu(x @ w)")
    problem = parse_problem(source, "own_fp32.py")
    result = evaluate(problem, candidate, SETTINGS.model_copy(update={"guard": "library"}))
    assert result.exact_error is None
    assert result.parity_note and "does not run in float64" in result.parity_note, result.message
