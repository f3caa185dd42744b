"""Evaluation on Ray: a local Ray instance declaring two logical GPUs (no real ones: the
harness inside each actor runs the Triton interpreter). The graph fans a round's candidates
out to both actors at once and gets the local evaluator's verdicts; an actor killed in the
middle of an evaluation is restarted and evaluates its candidate again; actors never import
the memory (Qdrant) or tracking (MLflow)."""

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
import ray

from kernelwright.api import optimize
from kernelwright.config import RunConfig
from kernelwright.core.problem import load_problem
from kernelwright.core.results import EvalSettings
from kernelwright.tools.evaluators import EvaluatorConfig, close_all, get_evaluator

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = ROOT / "examples" / "problems" / "level1" / "06_row_sum.py"
RELU = ROOT / "examples" / "problems" / "level1" / "01_relu.py"
RELU_CANDIDATE = ROOT / "examples" / "candidates" / "level1" / "01_relu.py"


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield
    close_all()
    ray.shutdown()


def verdicts(result):
    return [(c.id, c.change, c.source, c.status, c.reason, c.message) for c in result.tree]


def test_a_round_is_evaluated_on_both_actors_at_once_with_the_local_verdicts(cluster):
    on_ray = RunConfig(candidates=2, iterations=1, evaluator=EvaluatorConfig(kind="ray"),
                       memory={"enabled": False})  # the same drafts in both runs
    remote = optimize(PROBLEM, on_ray)
    local = optimize(PROBLEM, on_ray.model_copy(update={"evaluator": EvaluatorConfig()}))
    evaluator = get_evaluator(on_ray.evaluator)
    assert evaluator.slots.count == 2 and evaluator.slots.peak == 2  # both in flight at once
    assert len(remote.tree) == 2 and verdicts(remote) == verdicts(local)
    assert remote.best is not None and remote.best.correct
    for actor in evaluator.actors:  # the workers never open the memory or the tracking store
        assert ray.get(actor.imported.remote()) == []


def test_a_killed_actor_is_restarted_and_its_candidate_evaluated_again(cluster):
    close_all()  # the other test's actors hold both GPUs
    evaluator = get_evaluator(EvaluatorConfig(kind="ray", gpus=1, max_restarts=2))
    before = evaluator.pids()[0]
    problem = load_problem(RELU)
    settings = EvalSettings(device="cpu", cpu_max_elements=1 << 12, compile_baseline=False)
    out = []
    thread = threading.Thread(target=lambda: out.append(
        evaluator.evaluate(problem, RELU_CANDIDATE.read_text(), settings)))
    thread.start()
    deadline = time.monotonic() + 120
    while not psutil.Process(before).children():  # its harness worker started: kill mid-way
        assert time.monotonic() < deadline, "the actor never started the evaluation"
        time.sleep(0.05)
    os.kill(before, signal.SIGKILL)
    thread.join(timeout=300)
    assert out and out[0].status == "correct", out and out[0].message
    assert evaluator.pids()[0] != before  # a new actor process did it
