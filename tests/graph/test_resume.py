"""A run killed mid-way resumes from its SQLite checkpoint: no evaluation lost or repeated."""

import subprocess
import sys
import textwrap
from pathlib import Path

from kernelwright.api import optimize
from kernelwright.config import RunConfig

PROBLEM = Path(__file__).resolve().parents[2] / "examples" / "problems" / "level1" / "06_row_sum.py"

CHILD = textwrap.dedent("""
    import sys
    from kernelwright.config import RunConfig
    from kernelwright.api import optimize
    if __name__ == "__main__":
        optimize(sys.argv[1], RunConfig(candidates=3, iterations=1), checkpoint=sys.argv[2], thread_id="t1",
                 progress=lambda line: print(line, flush=True))
""")


def evaluations(log):
    return [line for line in log if line.lstrip().startswith("#")]


def test_a_killed_run_resumes_and_evaluates_each_candidate_once(tmp_path):
    checkpoint = tmp_path / "runs.sqlite"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(PROBLEM), str(checkpoint)],
                             stdout=subprocess.PIPE, text=True)
    seen = []
    for line in child.stdout:  # kill it right after its first evaluation is checkpointed
        seen.append(line)
        if line.lstrip().startswith("#0"):
            child.kill()
            break
    child.wait(timeout=60)
    assert child.returncode != 0 and not any(line.lstrip().startswith("#1") for line in seen)

    # one round of three candidates: three evaluations in all, the child's first among them
    config = RunConfig(candidates=3, iterations=1)  # here: the test's environment applies
    resumed = optimize(PROBLEM, config, checkpoint=checkpoint, thread_id="t1")
    assert len(evaluations(resumed.log)) == 3
    assert sorted(c.id for c in resumed.tree) == [0, 1, 2]
    assert all(c.status != "pending" for c in resumed.tree)
    assert resumed.best is not None and resumed.best.correct
