"""Every hack in tests/adversarial is refused with its own reason; the legit one passes (CPU)."""

import pytest
from corpus import cases

from kernelwright.core.results import EvalSettings
from kernelwright.tools.evaluate import evaluate

CPU_CASES = [c for c in cases() if not c.gpu_only and c.device in {"any", "cpu"}]


@pytest.mark.parametrize("case", CPU_CASES, ids=lambda c: c.id)
def test_candidate_gets_expected_verdict(case):
    timeout = 20 if case.file.stem == "hang" else 180
    settings = EvalSettings(guard=case.guard, device="cpu", timeout_s=timeout)
    result = evaluate(case.problem, case.file.read_text(), settings)
    detail = f"{result.status} {result.reason}: {result.message}\n{result.log_tail[-800:]}"
    assert result.status == case.status, detail
    if case.reason:
        assert result.reason == case.reason, detail
    assert result.guard == case.guard
    if case.status == "correct":
        assert result.trials_passed >= 5 and result.runtime_us is None
        assert result.timing_note and "not meaningful" in result.timing_note


def test_corpus_covers_every_hack_named_in_the_harness_issue():
    names = {c.file.stem for c in cases()}
    required = {"torch_fallback", "decoy_kernel", "try_except", "ptr_cache", "batch_skip",
                "input_mutation", "constant_output", "subclass_output", "timer_patch",
                "thread_injection", "subprocess_use", "socket_use", "read_problem",
                "precision_downgrade", "getattr_fallback", "eval_fallback", "library_gemm",
                "segfault", "hang", "syntax_error", "side_stream"}
    required |= {"forged_pipe", "forged_stdout", "positive_identity", "unread_parameters",
                 "missing_parameters", "tf32_flip", "default_dtype_flip", "replaced_generator",
                 "late_stale", "stack_detect", "value_cache"}  # the verdict-forging issue
    assert required <= names, required - names


def test_a_value_keyed_cache_never_hits_in_the_repeated_calls():
    """Every repeated (on a GPU: timed) call gets fresh contents, so a result cached by input
    values gains nothing. The candidate prints its running hit count; the only hits are the
    trials' second calls on the same contents: none of the repeated calls, nor the full
    comparison after them."""
    case = next(c for c in CPU_CASES if c.file.stem == "value_cache")
    settings = EvalSettings(device="cpu", timeout_s=180)
    result = evaluate(case.problem, case.file.read_text(), settings)
    assert result.status == "correct", result.message
    counts = [line for line in result.log_tail.splitlines() if line.startswith("value-cache:")]
    totals = [sum(int(w) for w in line.split() if w.isdigit()) for line in counts]
    first_build = next((i for i in range(1, len(totals)) if totals[i] < totals[i - 1]), len(counts))
    counts = counts[:first_build]  # the CPU's second-size check builds it again: counts restart
    calls = 2 * settings.trials + settings.sequence_checks + settings.cpu_reps + 1
    hits = settings.trials
    assert counts[-1] == f"value-cache: {hits} hits, {calls - hits} misses", counts[-3:]
