"""The local evaluator: slots run evaluations at once and each verdict is the harness's; a
worker sees only the GPU it was given; workers sharing a GPU take turns to time."""

import fcntl
import json
import threading
from pathlib import Path

from kernelwright.core.problem import load_problem
from kernelwright.core.results import EvalSettings
from kernelwright.tools.evaluators import EvaluatorConfig, LocalEvaluator
from kernelwright.tools.process import spawn
from kernelwright.tools.worker import _exclusive

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = EvalSettings(device="cpu", cpu_max_elements=1 << 12, compile_baseline=False)


def test_two_local_workers_evaluate_two_candidates_at_once():
    evaluator = LocalEvaluator(EvaluatorConfig(workers=2))
    jobs = [("01_relu", "01_relu"), ("01_relu", "02_gelu_tanh")]  # the second: wrong kernel
    out: dict[int, str] = {}

    def run(i: int, problem: str, candidate: str) -> None:
        source = (ROOT / "examples" / "candidates" / "level1" / f"{candidate}.py").read_text()
        result = evaluator.evaluate(load_problem(ROOT / "examples" / "problems" / "level1" /
                                                 f"{problem}.py"), source, SETTINGS)
        out[i] = result.status.value

    threads = [threading.Thread(target=run, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert out == {0: "correct", 1: "incorrect"}
    assert evaluator.slots.count == 2 and evaluator.slots.peak == 2 and evaluator.slots.busy == 0


def test_a_worker_sees_only_the_gpu_it_was_given():
    given = spawn("spawn_targets:visible_gpu", "{}", 60, "kw-test", gpu="3")
    default = spawn("spawn_targets:visible_gpu", "{}", 60, "kw-test")
    assert json.loads(given.payload) == "3"
    assert json.loads(default.payload) != "3"


def test_the_timing_lock_is_held_by_one_worker_at_a_time(tmp_path):
    path = str(tmp_path / "gpu-0.lock")
    with _exclusive(path), open(path) as other:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            taken = True
        except BlockingIOError:
            taken = False
    assert not taken
    with open(path) as other:  # released afterwards
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
