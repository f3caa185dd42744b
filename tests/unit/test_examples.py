"""The bundled known-good candidates pass the harness on the CPU interpreter."""

import pytest
from corpus import example_pairs

from kernelwright.core.results import EvalSettings
from kernelwright.tools.evaluate import evaluate


@pytest.mark.parametrize("pair", example_pairs(), ids=lambda p: p[1].stem)
def test_example_candidate_is_correct(pair):
    problem, candidate = pair
    settings = EvalSettings(device="cpu", cpu_max_elements=1 << 15, timeout_s=300)
    result = evaluate(problem, candidate.read_text(), settings)
    assert result.status == "correct", f"{result.reason}: {result.message}\n{result.log_tail}"
    assert result.size_overrides, "CPU mode must shrink full KernelBench sizes and say so"
    assert result.max_rel_err is not None and result.max_rel_err <= result.tolerance
    if result.parity_note is None:  # accuracy parity measured (integer outputs: exact instead)
        assert result.exact_error is not None and result.reference_exact_error is not None
        assert result.exact_error <= result.parity_factor * max(result.reference_exact_error,
                                                                2**-24)
    assert result.device.startswith("cpu")


def test_at_least_five_level1_examples():
    assert len(example_pairs()) >= 5
