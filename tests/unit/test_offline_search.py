"""The configuration search: a tree of evaluated candidates, best-so-far and the stop rules."""

from pathlib import Path

from kernelwright.core.problem import load_problem
from kernelwright.core.results import EvalResult, EvalSettings, Status
from kernelwright.writer.kinds import config_space
from kernelwright.writer.schedule import KernelConfig
from kernelwright.writer.search import refine
from kernelwright.writer.write import plan

SUITE = Path(__file__).resolve().parents[2] / "examples" / "problems"


def scripted(times):
    """An evaluator that times a candidate by its configuration (the source names it)."""
    def evaluate(problem, source, settings):
        us = next((t for key, t in times.items() if key in source), 100.0)
        return EvalResult(status=Status.CORRECT, problem=problem.name, guard="strict",
                          precision="fp32", runtime_us=us, sol_fraction=50.0 / us)
    return evaluate


def test_search_keeps_the_fastest_and_records_the_tree():
    made = plan(load_problem(SUITE / "level1/01_relu.py"))
    result = refine(made, EvalSettings(), budget=5, stop_at_sol=0.99,
                    evaluate=scripted({"BLOCK=2048, num_warps=8": 80.0,
                                       "BLOCK=4096, num_warps=8": 90.0}))
    assert len(result.tree) == 5 and result.tree[0].parent is None
    assert all(n.parent is not None for n in result.tree[1:])
    assert result.best_result.runtime_us == 80.0
    assert "BLOCK=2048, num_warps=8" in result.tree[result.best_id].change
    assert made.configs == [KernelConfig(block_r=2048, num_warps=8)]
    assert "BLOCK=2048" in result.best_source and result.stopped == "budget spent"


def test_search_stops_near_the_floor():
    made = plan(load_problem(SUITE / "level1/01_relu.py"))
    result = refine(made, EvalSettings(), budget=10, stop_at_sol=0.9,
                    evaluate=scripted({"BLOCK=1024": 52.0}))  # default is at 0.96 of the floor
    assert len(result.tree) == 1 and "SOL floor" in result.stopped


def test_search_rejects_faster_but_incorrect_children():
    made = plan(load_problem(SUITE / "level1/01_relu.py"))
    good = scripted({})

    def evaluate(problem, source, settings):
        result = good(problem, source, settings)
        if "BLOCK=2048, num_warps=8" in source:
            return result.model_copy(update={"status": Status.INCORRECT, "runtime_us": 10.0})
        return result

    result = refine(made, EvalSettings(), budget=3, stop_at_sol=0.99, evaluate=evaluate)
    assert result.best_id == 0 and result.tree[1].status == "incorrect"


def test_config_space_of_a_long_row_reduction_offers_persistent_and_looped():
    made = plan(load_problem(SUITE / "level1/03_softmax.py"))
    space = config_space(made.groups[0])
    assert any(c.persistent and c.block_c == 16384 for c in space)
    assert any(not c.persistent and c.block_c < 16384 for c in space)
