"""The CLI prints verdicts and JSON, and user mistakes without a traceback."""

import json
import subprocess
import sys
from pathlib import Path

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
    ]:
        run = cli(*args)
        assert run.returncode == 2 and expected in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
