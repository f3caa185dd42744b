"""Kernels take their sizes as arguments: the kernel written (and verified) at a shrunk size is
the one that runs at the real size; a kernel with a shape baked in fails the CPU's second check."""

import importlib.util

import pytest
import torch

from kernelwright.core.problem import load_problem
from kernelwright.core.results import Status
from kernelwright.tools.evaluate import evaluate
from kernelwright.writer.write import plan


def _module(source, tmp_path, name):
    file = tmp_path / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["level1/03_softmax.py", "level1/08_matmul_transposed_b.py",
                                  "level1/10_cumsum.py"])
def test_a_kernel_written_small_runs_at_other_sizes(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    problem = load_problem(f"examples/problems/{name}")
    source = plan(problem.shrink(1 << 12)).source()
    candidate = _module(source, tmp_path, "candidate")
    for limit in (1 << 10, 1 << 14):  # one size below the written one, one above
        sized = problem.shrink(limit)
        module = sized.module(str(tmp_path))
        torch.manual_seed(0)
        reference = module.Model(*module.get_init_inputs())
        model = candidate.ModelNew(*module.get_init_inputs())
        model.load_state_dict(reference.state_dict())
        inputs = module.get_inputs()
        torch.testing.assert_close(model(*inputs), reference(*inputs), rtol=1e-4, atol=1e-4)


def test_a_baked_shape_fails_the_second_size(tmp_path):
    problem = load_problem("examples/problems/level1/03_softmax.py")
    source = plan(problem.shrink(1 << 14)).source()
    sizes = problem.shrink(1 << 14).size_overrides
    baked = source.replace("    in0_size0 = in0.shape[0]\n    in0_size1 = in0.shape[1]\n",
                           f"    in0_size0, in0_size1 = {sizes['batch_size']}, {sizes['dim']}\n")
    assert baked != source
    assert evaluate(problem, source).status == Status.CORRECT
    result = evaluate(problem, baked)
    assert result.status != Status.CORRECT and "second sizes" in result.message
