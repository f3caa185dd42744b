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


POOL = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(3)

    def forward(self, x):
        return torch.relu(self.pool(x)) + x.amax(dim=(2, 3), keepdim=True)


def get_inputs():
    return [torch.randn(2, 3, 12, 15)]


def get_init_inputs():
    return []
'''


def test_kernels_past_2_to_the_31_elements_index_in_64_bits(monkeypatch, tmp_path):
    """A kernel whose tensors reach 2^31 elements computes its offsets in int64 (program ids and
    sizes widened); one written with 32-bit offsets refuses sizes where a buffer reaches 2^31
    (checked on meta tensors: nothing is allocated). The widened kernels are correct (the
    threshold lowered, so the interpreter runs them at a small size)."""
    import torch

    from kernelwright.writer import emit

    small = plan(parse_problem(POOL, "pool.py"))
    narrow = small.source()
    assert ".to(tl.int64)" not in narrow and "32-bit offsets" in narrow
    import importlib.util

    (tmp_path / "narrow.py").write_text(narrow)  # Triton reads a kernel's source from its file
    spec = importlib.util.spec_from_file_location("narrow", tmp_path / "narrow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(ValueError, match="32-bit offsets"):
        module.forward_impl(torch.empty(2**14, 2**10, 12, 15, device="meta"))

    big = plan(parse_problem(POOL.replace("randn(2, 3, 12, 15)", "randn(2**14, 2**10, 12, 15)"),
                             "pool.py"))
    source = big.source()
    assert "tl.program_id(0).to(tl.int64)" in source and "in0_size3 = in0_size3.to(tl.int64)" \
        in source and "32-bit offsets" not in source

    monkeypatch.setattr(emit, "WIDE", 64)
    widened = small.source()
    assert "tl.program_id(0).to(tl.int64)" in widened
    result = evaluate(small.problem, widened, REAL)
    assert result.status == Status.CORRECT, result.message


class CInt(int):
    """An integer whose `//` truncates toward zero, as C's and Triton's division does."""

    def __floordiv__(self, o): return CInt(int(int(self) / int(o)))
    def __rfloordiv__(self, o): return CInt(int(int(o) / int(self)))
    def __add__(self, o): return CInt(int(self) + int(o))
    __radd__ = __add__
    def __sub__(self, o): return CInt(int(self) - int(o))
    def __rsub__(self, o): return CInt(int(o) - int(self))
    def __mul__(self, o): return CInt(int(self) * int(o))
    __rmul__ = __mul__
    def __neg__(self): return CInt(-int(self))


def test_size_expressions_agree_under_truncating_division():
    """sympy rewrites ceil(k / 16) * 16 as -16 * (-k // 16); C and Triton truncate `//`, so the
    printed expression must not divide a negative number: evaluated with truncating division,
    every printed form equals its value."""
    import sympy
    from torch.utils._sympy.functions import FloorDiv

    from kernelwright.writer.sizes import _Printer

    k = sympy.Symbol("k", integer=True, nonnegative=True)
    for expr in (-16 * FloorDiv(-k, 16), FloorDiv(k + 15, 16) * 16, FloorDiv(k, 4),
                 FloorDiv(-2 * k, 3) + k):
        text = _Printer().doprint(expr)
        for value in (0, 1, 15, 16, 17, 37, 5921):
            assert eval(text, {"k": CInt(value)}) == int(expr.subs(k, value)), (text, value)
