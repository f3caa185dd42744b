"""Kernels take their sizes as arguments: the kernel written (and verified) at a shrunk size is
the one that runs at the real size and at a third size, judged by the harness each time; a
kernel with a shape baked in fails the CPU's second check."""

import pytest

from kernelwright.core.problem import Problem, parse_problem
from kernelwright.core.results import EvalSettings, Status
from kernelwright.tools.evaluate import evaluate
from kernelwright.writer.write import plan

ROWS = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1) * x.cumsum(dim=-1)


batch_size = 96
dim = 200


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
'''

GEMM = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, a, b):
        return torch.relu(a @ b.t())


M = 72
K = 136
N = 100


def get_inputs():
    return [torch.randn(M, K), torch.randn(N, K)]


def get_init_inputs():
    return []
'''

REAL = EvalSettings(device="cpu", cpu_max_elements=1 << 16)  # the real size: no shrink


@pytest.mark.parametrize("source", [ROWS, GEMM], ids=["rows", "gemm"])
def test_a_kernel_written_small_runs_at_the_real_size_and_a_third(source):
    problem = parse_problem(source, "generic.py")
    small = problem.shrink(1 << 12)
    assert small.size_overrides  # written at a shrunk size
    kernel = plan(small).source()
    at_real = evaluate(problem, kernel, REAL)
    assert at_real.status == Status.CORRECT, at_real.message
    assert "at other sizes" in at_real.message  # and the second size on the CPU
    third = {name: value // 3 + 5 for name, value in problem.size_constants().items()}
    at_third = evaluate(Problem(problem.path, problem.source, third), kernel, REAL)
    assert at_third.status == Status.CORRECT, at_third.message


def test_a_baked_shape_fails_the_second_size():
    problem = parse_problem(ROWS, "generic.py")
    small = problem.shrink(1 << 14)
    source = plan(small).source()
    sizes = {**problem.size_constants(), **small.size_overrides}
    baked = source.replace("    in0_size0 = in0.shape[0]\n    in0_size1 = in0.shape[1]\n",
                           f"    in0_size0, in0_size1 = {sizes['batch_size']}, {sizes['dim']}\n")
    assert baked != source
    assert evaluate(small, source).status == Status.CORRECT
    result = evaluate(small, baked)
    assert result.status != Status.CORRECT and "second sizes" in result.message, result.message


SCALED = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, features, scale):
        super().__init__()
        self.norm = nn.LayerNorm(features)
        self.scale = scale

    def forward(self, x):
        return torch.relu(self.norm(x)) * self.scale


batch_size = 40
features = 48


def get_inputs():
    return [torch.randn(batch_size, features)]


def get_init_inputs():
    return [features, 2.5]
'''


def test_a_float_constructor_value_is_an_argument_of_the_kernels():
    problem = parse_problem(SCALED, "scaled.py")
    made = plan(problem)
    assert made.init_taken == {1}  # the scale; the width shapes the parameters: written for it
    source = made.source()
    assert "* init1" in source  # the kernel multiplies by its argument, not by 2.5
    other = parse_problem(SCALED.replace("[features, 2.5]", "[features, -0.75]"), "scaled.py")
    result = evaluate(other, source, REAL)  # the harness builds ModelNew(48, -0.75)
    assert result.status == Status.CORRECT, result.message
    wider = parse_problem(SCALED.replace("features = 48", "features = 56"), "scaled.py")
    refused = evaluate(wider, source, REAL)
    assert refused.status != Status.CORRECT and "constructor arguments" in refused.message
