"""The harness on a real GPU: the adversarial corpus, the examples, and timing vs do_bench."""

import pytest
from corpus import cases, example_pairs

from kernelwright.core.results import EvalSettings
from kernelwright.tools.evaluate import evaluate

pytestmark = pytest.mark.gpu
GPU_CASES = [c for c in cases() if c.device in {"any", "gpu"}]


@pytest.mark.parametrize("case", GPU_CASES, ids=lambda c: c.id)
def test_candidate_gets_expected_verdict_on_gpu(case):
    timeout = 60 if case.file.stem == "hang" else 300
    settings = EvalSettings(guard=case.guard, device="cuda", timeout_s=timeout,
                            compile_baseline=False, reps=50)
    result = evaluate(case.problem, case.file.read_text(), settings)
    detail = f"{result.status} {result.reason}: {result.message}\n{result.log_tail[-800:]}"
    assert result.status == case.status, detail
    if case.reason and case.device != "cpu":
        assert result.reason == case.reason, detail
    if case.status == "correct":
        assert result.runtime_us and result.eager_us and result.timed_reps_checked == 50
        assert result.timing.reps == 45 and result.timing_wall_s  # 5 reps recorded, not timed


@pytest.mark.parametrize("pair", example_pairs(), ids=lambda p: p[1].stem)
def test_example_is_correct_and_timed(pair):
    problem, candidate = pair
    result = evaluate(problem, candidate.read_text(),
                      EvalSettings(device="cuda", compile_baseline=False))
    assert result.status == "correct", f"{result.reason}: {result.message}\n{result.log_tail}"
    assert not result.size_overrides  # full KernelBench sizes on a GPU
    assert result.runtime_us > 0 and result.eager_us > 0
    assert result.timing.p20_us <= result.timing.median_us <= result.timing.p80_us
    assert result.own_kernel_fraction is not None and result.own_kernel_fraction > 0.5
    # a legitimate kernel is never faster than the floor; the report names what ran
    assert result.sol is not None  # (any GPU with a profile: the H100 and H200 ones here)
    assert not result.faster_than_sol and 0 < result.sol_fraction < 1 / 0.95
    assert result.profile.launches >= 1 and result.profile.kernels[0].own
    assert "bound at" in result.profile.diagnosis


# Agreement with triton.testing.do_bench is a benchmark, not a test (a timing threshold):
# benchmarks/gpu_harness.py.
