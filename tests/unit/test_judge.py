"""The judge's own checks: what it refuses of the candidate's claims, and of a problem."""

from pathlib import Path

import pytest

from kernelwright.core.results import EvalSettings, SolAnalysis, Status
from kernelwright.tools import worker
from kernelwright.tools.evaluate import evaluate
from kernelwright.tools.timing import summarize

ROOT = Path(__file__).resolve().parents[1]
LEGIT = (ROOT / "adversarial" / "legit.py").read_text()


def job(device="cuda", reps=50):
    return worker.WorkerJob(problem_path="p.py", problem_source="", size_overrides={},
                            candidate_source="", settings=EvalSettings(reps=reps), device=device)


def result():
    return worker.EvalResult(status=Status.CORRECT, problem="p", guard="strict", precision="fp32")


def floor(us):
    return SolAnalysis(flops=1, tensor_flops=0, vector_flops=1, bytes=1, profile="test",
                       calibrated=False, precision="fp32", tensor_peak_tflops=1.0,
                       vector_peak_tflops=1.0, bandwidth_gbps=1.0, compute_floor_us=0.0,
                       memory_floor_us=us, floor_us=us, bound="memory")


@pytest.fixture
def sol(monkeypatch):
    """The SOL floor the judge holds times against (here 100 us)."""
    monkeypatch.setattr(worker, "_sol", lambda job, module, device: floor(100.0))


def timed_round(times_us, wall_s, eager_times_us, eager_wall_s):
    return worker._Round(summarize(times_us), wall_s, summarize(eager_times_us), eager_wall_s,
                         census=None, make=None, peak_memory_bytes=None)


def accept(times_us, wall_s, eager_times_us, eager_wall_s, device="cuda"):
    out = result()
    run = worker._held_round(lambda: timed_round(times_us, wall_s, eager_times_us, eager_wall_s),
                             timed=True)
    worker._accept_times(job(device, len(times_us)), out, run, None)
    return out


def test_honest_times_are_taken(sol):
    out = accept([150.0] * 50, 0.05, [200.0] * 50, 0.05)
    assert out.runtime_us == 150.0 and out.timing_wall_s == 0.05 and out.sol_fraction == 100 / 150


def test_times_that_do_not_fit_in_the_judges_clock_are_refused(sol):
    with pytest.raises(worker.Verdict) as refused:
        accept([150.0] * 50, 0.005, [200.0] * 50, 0.05)  # 7.5 ms claimed inside 5 ms of wall time
    assert refused.value.reason == "implausible_time"


def test_work_hidden_outside_the_timed_windows_is_refused(sol):
    # 7.5 ms inside the windows, 30 s outside them; the eager reference needed 40 ms outside
    with pytest.raises(worker.Verdict) as refused:
        accept([150.0] * 50, 30.0, [200.0] * 50, 0.05)
    assert refused.value.reason == "work_outside_timing"


def test_one_round_stretched_by_a_busy_machine_is_taken_again():
    """A round whose gaps were stretched once is measured again and the second round's times
    are taken; hidden work stretches every round, and the second is refused too."""
    stretched, honest = timed_round([150.0] * 50, 30.0, [200.0] * 50, 0.05), timed_round(
        [140.0] * 50, 0.05, [200.0] * 50, 0.05)
    rounds = iter([stretched, honest])
    assert worker._held_round(lambda: next(rounds), timed=True) is honest
    taken = []
    with pytest.raises(worker.Verdict) as refused:
        worker._held_round(lambda: taken.append(stretched) or stretched, timed=True)
    assert refused.value.reason == "work_outside_timing" and len(taken) == 2
    # a forged sum is refused at once: no second chance
    forged = timed_round([150.0] * 50, 0.005, [200.0] * 50, 0.05)
    with pytest.raises(worker.Verdict) as refused:
        worker._held_round(lambda: taken.append(forged) or forged, timed=True)
    assert refused.value.reason == "implausible_time" and len(taken) == 3


def test_a_time_under_the_sol_floor_is_refused_on_a_gpu(sol):
    with pytest.raises(worker.Verdict) as refused:
        accept([50.0] * 50, 0.05, [200.0] * 50, 0.05)
    assert refused.value.reason == "implausible_time" and "SOL floor" in refused.value.message
    # the cpu backend's floor comes from a nominal profile: flagged, not refused
    assert accept([50.0] * 50, 0.05, [200.0] * 50, 0.05, device="cpu").faster_than_sol


def test_an_empty_runtime_record_is_refused():
    with pytest.raises(worker.Verdict) as refused:
        worker.check_record(set())
    assert refused.value.reason == "implausible_record"
    worker.check_record({"aten.empty_like.default"})


def test_a_problem_whose_inputs_never_change_is_the_problems_error():
    result = evaluate(ROOT / "problems" / "fixed_inputs.py", LEGIT,
                      EvalSettings(device="cpu", timeout_s=180))
    assert result.status == Status.PROBLEM_ERROR and result.reason == "inputs_repeat", result.message
    assert "fixed_inputs.py" in result.message and "randn" in result.message


def test_a_problem_that_cannot_fit_is_too_large_not_the_candidates_fault():
    """Counted on the meta device before anything is allocated: 4 TiB of inputs against this
    machine's free memory (no shrinking: the sizes are the problem's own)."""
    result = evaluate(ROOT / "problems" / "huge_inputs.py", LEGIT,
                      EvalSettings(device="cpu", timeout_s=180, cpu_max_elements=1 << 45))
    assert result.status == Status.TOO_LARGE and result.reason == "too_large", result.message
    assert "huge_inputs.py" in result.message and "8192.00 GiB" in result.message
    assert "GiB free" in result.message and result.footprint_bytes == 2 * 4 << 40


def test_every_verdict_reports_its_footprint_and_peak_memory():
    result = evaluate(ROOT / "adversarial" / "problems" / "relu.py", LEGIT,
                      EvalSettings(device="cpu", timeout_s=180, cpu_max_elements=1 << 17))
    assert result.status == Status.CORRECT, result.message
    assert result.footprint_bytes == 2 * 37 * 781 * 4  # input and output, fp32 (not shrunk)
    assert result.peak_memory_bytes and result.judge_peak_memory_bytes


def test_the_compile_baseline_is_measured_once_per_problem_precision_and_device(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELWRIGHT_CACHE_DIR", str(tmp_path))
    calls = []

    def measure():
        calls.append(1)
        return summarize([10.0, 12.0, 11.0]), None

    first = worker._compiled_once(job(), "GPU A", measure)
    again = worker._compiled_once(job(), "GPU A", measure)
    assert calls == [1] and again[0].median_us == first[0].median_us == 11.0
    other = job()
    other.settings = other.settings.model_copy(update={"precision": "bf16"})
    worker._compiled_once(other, "GPU A", measure)
    worker._compiled_once(job(), "GPU B", measure)
    assert len(calls) == 3  # another precision, another device: measured afresh


def test_a_census_that_does_not_fit_the_measured_time_is_refused(sol):
    from kernelwright.core.results import KernelStat, ProfileReport

    def census(kernel_us, own=1.0):
        return ProfileReport(kernels=[KernelStat(name="k", calls=1, total_us=kernel_us, own=True)],
                             gpu_time_us=kernel_us, launches=1, own_kernel_fraction=own)

    def judged(report):
        out = result()
        run = timed_round([150.0] * 50, 0.05, [200.0] * 50, 0.05)
        run.census = report
        worker._accept_times(job(), out, run, None)
        return out

    assert judged(census(140.0)).own_kernel_fraction == 1.0
    for forged in (census(5000.0), census(140.0, own=7.0)):
        with pytest.raises(worker.Verdict) as refused:
            judged(forged)
        assert refused.value.reason == "implausible_census"


def test_a_speedup_within_the_noise_is_reported_as_such():
    """Times whose p20-p80 spreads overlap are not told apart: no speedup number, the verdict
    says "no measurable difference" and shows both spreads; disjoint spreads give the ratio,
    and a kernel slower than eager is said plainly."""
    noisy_eager = summarize([200.0, 260.0, 320.0, 240.0, 300.0] * 10)  # a CPU's wall clock
    close = summarize([230.0, 250.0, 280.0, 240.0, 270.0] * 10)
    out = result()
    worker._figures(out, close, noisy_eager, None, "cpu backend: wall-clock times")
    assert out.speedup_eager is None and out.within_noise and out.eager_us == noisy_eager.median_us
    assert "no measurable difference from eager" in out.timing_note
    assert out.versus_eager(close.median_us) == "no measurable difference from eager"
    fast = summarize([100.0, 101.0, 99.0, 100.5] * 10)
    out = result()
    worker._figures(out, fast, noisy_eager, None, None)
    assert out.speedup_eager == noisy_eager.median_us / fast.median_us and not out.within_noise
    slow = summarize([900.0, 910.0, 905.0] * 10)
    out = result()
    worker._figures(out, slow, noisy_eager, None, None)
    assert out.versus_eager(slow.median_us).startswith("slower than eager (0.")
