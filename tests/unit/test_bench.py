"""`kernelwright bench` over a small suite on the CPU interpreter: every output, every total,
a crashing problem recorded while the suite goes on, resuming without redoing a problem, and
the summary's metrics (fast_p, geomean with the eager fallback) on known records."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from corpus import SORTED_ROWS
from typer.testing import CliRunner

from kernelwright.cli.app import app
from kernelwright.suite.records import ProblemRecord, summarize
from kernelwright.suite.runner import find_problems

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "problems" / "level1"


@pytest.fixture
def suite(tmp_path):
    """relu (the offline writer covers it), a row sort (it does not), and a file that
    crashes."""
    root = tmp_path / "suite"
    (root / "level1").mkdir(parents=True)
    shutil.copy(EXAMPLES / "01_relu.py", root / "level1" / "1_relu.py")
    shutil.copy(SORTED_ROWS, root / "level1" / "10_sort.py")
    (root / "level1" / "2_broken.py").write_text(
        "class Model(:\n    pass\n\ndef get_inputs():\n    return []\n")
    (root / "level1" / "notes.py").write_text("print('not a problem')\n")
    return root


def test_bench_writes_every_output_and_resumes(suite, tmp_path, monkeypatch):
    out = tmp_path / "out"
    runner = CliRunner()
    got = runner.invoke(app, ["bench", str(suite), "--out", str(out), "--iterations", "1"])
    assert got.exit_code == 0, got.output

    data = json.loads((out / "results.json").read_text())
    records = {r["problem"]: r for r in data["problems"]}
    assert list(records) == ["level1/1_relu", "level1/2_broken", "level1/10_sort"]  # natural order
    relu, broken, uncovered = records.values()
    assert relu["status"] == "correct" and relu["evaluations"] >= 1 and relu["coverage"] == "covered"
    assert relu["best_us"] is None and relu["speedup_eager"] is None  # no timings on the CPU
    assert broken["status"] == "crashed" and "ProblemError" in broken["reason"]
    assert uncovered["status"] == "uncovered" and uncovered["reason"] == "sort"
    assert uncovered["coverage"] == "not covered: sort" and uncovered["eager_us"] is None  # no GPU

    summary = data["summary"]
    assert summary["problems"] == 3 and summary["correct"] == 1
    assert summary["correct_pct"] == pytest.approx(100 / 3)
    assert summary["fast_eager"] == {"fast_0": pytest.approx(1 / 3), "fast_1": None, "fast_1.5": None}
    assert summary["geomean_speedup_eager"] is None and summary["median_sol_fraction"] is None
    assert summary["evaluations"] == relu["evaluations"]
    assert summary["failures"]["uncovered: sort"] == 1 and len(summary["failures"]) == 2

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["problem"] for r in rows] == list(records) and rows[0]["status"] == "correct"
    report = (out / "results.md").read_text()
    assert all(name in report for name in records) and "correct: 1/3 (33%)" in report
    assert (out / "speedup.png").read_bytes()[:4] == b"\x89PNG"
    assert "correct: 1/3 (33%)" in got.output

    # a second run resumes: no problem is optimised again
    import kernelwright.api as run

    monkeypatch.setattr(run, "optimize", lambda *a, **k: pytest.fail("optimised again"))
    again = runner.invoke(app, ["bench", str(suite), "--out", str(out), "--iterations", "1"])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "results.json").read_text())["summary"] == summary
    assert len((out / "records.jsonl").read_text().splitlines()) == 3

    # other settings into the same folder would mix two benches: refused, with the fix
    other = runner.invoke(app, ["bench", str(suite), "--out", str(out), "--iterations", "2"])
    assert other.exit_code == 2 and "iterations" in other.output and "--out" in other.output


def test_bench_eval_only(suite, tmp_path):
    candidates = tmp_path / "candidates" / "level1"
    candidates.mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "candidates" / "level1" / "01_relu.py", candidates / "1_relu.py")
    out = tmp_path / "out"
    got = CliRunner().invoke(app, ["bench", str(suite), "--out", str(out), "--eval-only",
                                   str(candidates.parent), "--device", "cpu"])
    assert got.exit_code == 0, got.output
    records = {r["problem"]: r for r in json.loads((out / "results.json").read_text())["problems"]}
    assert records["level1/1_relu"]["status"] == "correct"
    assert records["level1/1_relu"]["coverage"] == "given candidate"
    assert records["level1/10_sort"]["status"] == "no_candidate"


def test_bad_suite_is_a_clear_error(tmp_path):
    got = CliRunner().invoke(app, ["bench", str(tmp_path)])
    assert got.exit_code == 2 and "no KernelBench-format problem" in got.output


def record(name, correct=True, eager=None, compile_=None, sol=None, eager_us=100.0,
           compile_us=80.0):
    return ProblemRecord(problem=name, status="correct" if correct else "incorrect",
                         reason="" if correct else "mismatch", speedup_eager=eager,
                         speedup_compile=compile_, sol_fraction=sol, eager_us=eager_us,
                         compile_us=compile_us, evaluations=2, tokens=10)


def test_summary_follows_kernelbench():
    s = summarize([record("a", eager=2.0, compile_=1.6, sol=0.5),
                   record("b", eager=0.5, compile_=0.4, sol=0.9),
                   record("c", correct=False)])
    assert s.correct == 2 and s.timed == 2
    assert s.fast_eager == {"fast_0": pytest.approx(2 / 3), "fast_1": pytest.approx(1 / 3),
                            "fast_1.5": pytest.approx(1 / 3)}
    assert s.fast_compile["fast_1.5"] == pytest.approx(1 / 3)
    # c has no correct kernel: eager (1.0x vs eager, 80/100 = 0.8x vs compile)
    assert s.geomean_speedup_eager == pytest.approx((2.0 * 0.5 * 1.0) ** (1 / 3))
    assert s.geomean_speedup_compile == pytest.approx((1.6 * 0.4 * 0.8) ** (1 / 3))
    assert s.median_sol_fraction == pytest.approx(0.7) and s.failures == {"incorrect: mismatch": 1}
    assert s.evaluations == 6 and s.tokens == 30


def test_a_problem_without_a_timed_candidate_gets_its_baselines_on_a_gpu(monkeypatch):
    """The eager fallback of an uncovered problem needs eager and compile times of its own."""
    import kernelwright.tools.analyze as analyze_tool
    import kernelwright.tools.evaluate as harness
    from kernelwright.config import RunConfig
    from kernelwright.suite.runner import with_baselines
    from kernelwright.tools.analyze import Analysis

    asked = []

    def analyze(problem, precision, device, timeout_s):
        asked.append((problem.name, precision, device))
        return Analysis.model_construct(eager_us=120.0, compile_us=90.0)

    uncovered = ProblemRecord(problem="level1/07_matmul", status="uncovered", reason="mm")
    monkeypatch.setattr(analyze_tool, "analyze", analyze)
    assert with_baselines(uncovered, EXAMPLES / "07_matmul.py", RunConfig()) == uncovered  # CPU
    monkeypatch.setattr(harness, "resolve_device", lambda *_: "cuda")
    got = with_baselines(uncovered, EXAMPLES / "07_matmul.py", RunConfig(precision="bf16"))
    assert (got.eager_us, got.compile_us) == (120.0, 90.0)
    assert asked == [("07_matmul", "bf16", "cuda")]
    s = summarize([got])
    assert s.geomean_speedup_compile == pytest.approx(0.75) and s.geomean_speedup_eager == 1.0


def test_find_problems_reads_a_kernelbench_layout(tmp_path):
    for rel in ("level2/10_b.py", "level1/2_a.py", "level1/10_c.py", "level1/__init__.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("class Model:\n    pass\n\ndef get_inputs():\n    return []\n")
    found = [p.relative_to(tmp_path).as_posix() for p in find_problems(tmp_path)]
    assert found == ["level1/2_a.py", "level1/10_c.py", "level2/10_b.py"]


def test_each_problem_runs_within_the_per_problem_limit(suite, tmp_path, monkeypatch):
    """The limit reaches the run as its time budget (and halves the evaluation timeout), and a
    run that the limit stopped before any correct kernel is recorded as `time_limit`."""
    import kernelwright.api as run
    from kernelwright.core.records import Result

    seen = []

    def optimize(path, config, **kwargs):
        seen.append(config)
        return Result(problem=Path(path).stem, thread_id="t", tree=[], log=[],
                      stop=f"time budget spent (31 of {config.max_seconds:g} s)")

    monkeypatch.setattr(run, "optimize", optimize)
    shutil.rmtree(suite / "level1")
    (suite / "level1").mkdir()
    shutil.copy(EXAMPLES / "01_relu.py", suite / "level1" / "1_relu.py")
    got = CliRunner().invoke(app, ["bench", str(suite), "--out", str(tmp_path / "out"),
                                   "--problem-limit", "30"])
    assert got.exit_code == 0, got.output
    [config] = seen
    assert config.max_seconds == 30 and config.timeout_s == 15
    [record] = json.loads((tmp_path / "out" / "results.json").read_text())["problems"]
    assert record["status"] == "time_limit" and record["time_limit_hit"]
    assert "30 s per-problem limit" in record["reason"]


SLOW = """\
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1) * 2

def get_inputs():
    return [torch.randn(512, 256)]

def get_init_inputs():
    return []
"""


def test_ctrl_c_on_a_bench_ends_every_process_and_says_how_to_resume(tmp_path):
    """SIGINT to the command's process group (a terminal's Ctrl-C) while an evaluation runs: the
    command ends its evaluation processes (which run in sessions of their own, out of the
    Ctrl-C's reach), exits 130, and says how to resume; nothing it started is left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    suite = tmp_path / "suite"
    suite.mkdir()
    for i in range(3):
        (suite / f"{i}_softmax.py").write_text(SLOW)
    command = subprocess.Popen([sys.executable, "-m", "kernelwright.cli", "bench", str(suite),
                                "--out", str(tmp_path / "out"), "--device", "cpu"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, cwd=ROOT)
    started: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + 300
    while len(started) < 2 and command.poll() is None and time.monotonic() < deadline:
        for p in psutil.Process(command.pid).children(recursive=True):  # the judge, its child
            started.setdefault(p.pid, p)
        time.sleep(0.05)
    assert len(started) >= 2, "no evaluation process started"
    os.killpg(command.pid, signal.SIGINT)
    _, err = command.communicate(timeout=120)
    assert command.returncode == 130, err[-2000:]
    assert "interrupted:" in err and "resume by running the same command again" in err
    alive = [p.pid for p in started.values() if p.is_running() and p.status() != "zombie"]
    assert not alive, f"left running: {alive}"


def test_a_problem_within_the_noise_of_eager_counts_as_parity():
    """The suite's metrics count a kernel that cannot be told from eager as 1.0x (fast_1 is
    not reached), not as a gap that hides every figure."""
    parity = ProblemRecord(problem="a", status="correct", eager_us=250.0, best_us=240.0,
                           within_noise=True, speedup_eager=None, speedup_compile=1.2)
    twice = ProblemRecord(problem="b", status="correct", eager_us=200.0, best_us=100.0,
                          speedup_eager=2.0, speedup_compile=1.5)
    s = summarize([parity, twice])
    assert s.timed == 2 and s.geomean_speedup_eager == pytest.approx(2.0 ** 0.5)
    assert s.fast_eager["fast_1"] == 0.5
