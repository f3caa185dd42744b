"""The CLI prints verdicts and JSON, and user mistakes without a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "kernelwright.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


def test_eval_json_for_a_correct_candidate():
    run = cli("eval", "tests/adversarial/problems/relu.py", "tests/adversarial/legit.py", "--json",
              "--device", "cpu")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["status"] == "correct" and result["runtime_us"] is None
    assert "not meaningful" in result["timing_note"]


def test_eval_readable_verdict_for_a_rejected_candidate():
    run = cli("eval", "tests/adversarial/problems/relu.py", "tests/adversarial/try_except.py")
    assert run.returncode == 1
    assert "rejected (try_except)" in run.stdout and "Traceback" not in run.stdout + run.stderr


def test_user_mistakes_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("class Model:\n    pass\n")
    for args, expected in [
        (("eval", "missing.py", "tests/adversarial/legit.py"), "missing.py: problem file not found"),
        (("eval", str(bad), "tests/adversarial/legit.py"), "no `class Model(nn.Module)`"),
        (("eval", "tests/adversarial/problems/relu.py", "nope.py"), "candidate file not found"),
        (("eval", "tests/adversarial/problems/relu.py", "tests/adversarial/legit.py", "--guard", "x"),
         "--guard"),
        (("analyze", "tests/adversarial/problems/relu.py", "--hardware", "h900"), "unknown profile"),
        (("analyze", "tests/adversarial/problems/relu.py", "--precision", "fp8"), "--precision"),
        (("analyze", "missing.py"), "missing.py: problem file not found"),
    ]:
        run = cli(*args)
        assert run.returncode == 2 and expected in run.stderr, run.stderr
        assert "Traceback" not in run.stderr


def test_analyze_json_counts_and_floor_without_timings(tmp_path):
    run = cli("analyze", "examples/problems/level1/03_softmax.py", "--device", "cpu",
              "--hardware", "h100-sxm", "--json")
    assert run.returncode == 0, run.stderr
    [analysis] = json.loads(run.stdout)
    rows, cols = 4096, 16384
    assert analysis["flops"] == 5 * rows * cols and analysis["bytes"] == 8 * rows * cols
    assert analysis["sol"]["profile"] == "h100-sxm" and analysis["sol"]["bound"] == "memory"
    assert analysis["eager_us"] is None and analysis["headroom"] is None
    assert "not timed on the CPU" in analysis["note"]


def test_analyze_table_labels_problems_by_folder():
    run = cli("analyze", "examples/problems/level3", "--device", "cpu", "--hardware", "a100")
    assert run.returncode == 0, run.stderr
    assert "01_mlp" in run.stdout and "02_attention_block" in run.stdout
    assert "compute" in run.stdout and "a100 (datasheet)" in run.stdout


def test_analyze_lists_what_the_writer_does_not_cover_over_a_folder(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    for file in ("examples/problems/level1/01_relu.py", "tests/problems/sorted_rows.py"):
        (suite / Path(file).name).write_text((ROOT / file).read_text())
    run = cli("analyze", str(suite), "--device", "cpu", "--hardware", "a100")
    assert run.returncode == 0, run.stderr
    assert "offline writer: 1 of 2 problems covered" in run.stdout
    assert "uncovered sort: 1 problem(s): sorted_rows" in run.stdout
    data = json.loads(cli("analyze", str(suite), "--device", "cpu", "--hardware", "a100",
                          "--json").stdout)
    assert {d["problem"]: d["uncovered_ops"] for d in data} == {"01_relu": [],
                                                               "sorted_rows": ["sort"]}


def test_hw_show_lists_the_datasheets(tmp_path):
    run = subprocess.run([sys.executable, "-m", "kernelwright.cli", "hw", "show", "--device", "cpu"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600,
                         env={**os.environ, "KERNELWRIGHT_CACHE_DIR": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    assert "nominal per-core estimate" in run.stdout
    assert "GFLOP/s" in run.stdout and "0.0 TFLOP/s" not in run.stdout  # a CPU's peak, readable
    assert "h100-sxm" in run.stdout and "mi300x" in run.stdout and "ascend910b" in run.stdout


def test_memory_commands_round_trip_and_refuse_a_bad_file(tmp_path):
    """In-process (typer's runner): the embedding model loads once for all five commands."""
    from typer.testing import CliRunner

    from kernelwright.cli.app import app
    from kernelwright.memory.experience import Experience, Outcome, Signature

    def memory(*args):
        return CliRunner().invoke(app, ["memory", *args])

    exp = Experience(problem="03_softmax", signature=Signature(ops=["reduction"]), hardware="cpu",
                     backend="triton", stage="draft", lesson="hold the row in registers",
                     outcome=Outcome(status="correct"), q_draft=0.5)
    given = tmp_path / "in.jsonl"
    given.write_text(exp.model_dump_json() + "\n")
    assert "imported 1" in memory("import", str(given)).stdout
    stats = memory("stats").stdout
    assert "1 experience(s)" in stats and "correct" in stats
    out = tmp_path / "out.jsonl"
    assert memory("export", str(out)).exit_code == 0
    assert Experience.model_validate_json(out.read_text()) == exp
    bad = memory("import", "missing.jsonl")
    assert bad.exit_code == 2 and "missing.jsonl: not a memory export" in bad.stderr
    assert bad.exception is None or isinstance(bad.exception, SystemExit)  # no traceback
    assert memory("reset", "--yes").exit_code == 0
    assert "0 experience(s)" in memory("stats").stdout


def test_run_writes_the_best_kernel_and_shows_the_summary_line(tmp_path):
    out = tmp_path / "runs"
    run = cli("run", "examples/problems/level1/01_relu.py", "--device", "cpu", "--candidates", "1",
              "--out", str(out), "--checkpoint", str(out / "cp.sqlite"))
    assert run.returncode == 0, run.stderr
    [folder] = [p for p in out.iterdir() if p.is_dir()]
    assert "class ModelNew" in (folder / "best.py").read_text()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["best"]["status"] == "correct"
    assert "round 1/6" in run.stdout and "1 evaluated" in run.stdout  # the live status line
    assert summary["size_overrides"] and "shrunk for the CPU" in run.stdout  # said, not hidden


def test_run_refuses_a_backend_this_machine_cannot_run(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the cuda backend runs here")
    run = cli("run", "examples/problems/level1/01_relu.py", "--backend", "cuda", "--out",
              str(tmp_path), "--checkpoint", str(tmp_path / "cp.sqlite"))
    assert run.returncode == 2 and "Traceback" not in run.stderr + run.stdout
    assert "needs a CUDA GPU" in run.stderr and "--backend cpu" in run.stderr


BROKEN = "tests/problems/broken_reference.py"


def test_a_failing_reference_is_the_problems_error_not_the_candidates(tmp_path):
    """eval: exit 2, the file named, no verdict against the candidate; run: the thread id
    first, then the same kind of message, never a traceback."""
    run = cli("eval", BROKEN, "tests/adversarial/legit.py", "--device", "cpu")
    assert run.returncode == 2 and BROKEN in run.stderr and "reference" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr + run.stdout and "runtime_error" not in run.stdout
    run = cli("run", BROKEN, "--device", "cpu", "--out", str(tmp_path), "--checkpoint",
              str(tmp_path / "cp.sqlite"))
    assert run.returncode == 2 and BROKEN in run.stderr, run.stderr
    assert "the reference itself fails" in run.stderr and "Traceback" not in run.stderr + run.stdout
    assert "started thread " in run.stdout  # printed before the first step, not at the end


def test_a_misspelt_nested_config_key_is_named(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("iterations: 1\nmemory:\n  embeder: hash\n")
    run = cli("run", "examples/problems/level1/01_relu.py", "--config", str(config), "--out",
              str(tmp_path), "--checkpoint", str(tmp_path / "cp.sqlite"))
    assert run.returncode == 2 and "memory.embeder" in run.stderr and str(config) in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_resuming_an_unknown_thread_is_an_error(tmp_path):
    for checkpoint in (tmp_path / "missing.sqlite", tmp_path / "empty.sqlite"):
        if checkpoint.name == "empty.sqlite":
            import sqlite3

            sqlite3.connect(checkpoint).execute("CREATE TABLE checkpoints (thread_id TEXT)").connection.commit()
        run = cli("run", "examples/problems/level1/01_relu.py", "--device", "cpu", "--resume",
                  "no-such-run", "--out", str(tmp_path), "--checkpoint", str(checkpoint))
        assert run.returncode == 2 and "no-such-run" in run.stderr and str(checkpoint) in run.stderr
        assert "Traceback" not in run.stderr + run.stdout and not list(tmp_path.glob("01_relu-*"))


def test_python_dash_m_kernelwright_is_the_cli():
    run = subprocess.run([sys.executable, "-m", "kernelwright", "eval", "--help"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0 and "Check a candidate against its reference" in run.stdout


def test_saved_candidates_load_without_the_unregistered_type_warning(caplog):
    import logging
    import warnings

    from kernelwright.core.records import Candidate
    from kernelwright.graph.run import serializer

    serde = serializer()
    saved = serde.dumps_typed({"tree": [Candidate(id=3, stage="draft", change="first draft", source="x = 1")]})
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        loaded = serde.loads_typed(saved)
    assert loaded["tree"][0] == Candidate(id=3, stage="draft", change="first draft", source="x = 1")
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [s for s in said if "unregistered" in s.lower() or "blocked" in s.lower()], said


def test_the_options_are_the_same_across_commands():
    """--precision, --guard, --device and --backend wherever they apply."""
    from typer.testing import CliRunner

    from kernelwright.cli.app import app

    def options(*command):
        return CliRunner().invoke(app, [*command, "--help"]).stdout

    for command in (["run"], ["bench"], ["compare"]):
        text = options(*command)
        assert all(f"--{o}" in text for o in ("precision", "guard", "device", "backend")), command
    assert all(f"--{o}" in options("eval") for o in ("precision", "guard", "device", "backend"))
    assert all(f"--{o}" in options("analyze") for o in ("precision", "device", "backend"))
