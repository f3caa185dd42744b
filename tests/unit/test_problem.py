"""Problem loading: KernelBench files load; every user mistake gets a message with the fix."""

import pytest

from kernelwright.core.errors import ProblemError
from kernelwright.core.problem import load_problem, parse_python

GOOD = """import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.w = nn.Parameter(torch.randn(dim))
    def forward(self, x):
        return x * self.w

batch = 1823
dim = 781
scaled = dim * 2

def get_inputs():
    return [torch.randn(batch, dim)]

def get_init_inputs():
    return [dim]
"""


def write(tmp_path, text, name="problem.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_kernelbench_file_unchanged(tmp_path):
    problem = load_problem(write(tmp_path, GOOD))
    assert problem.name == "problem" and problem.size_constants() == {"batch": 1823, "dim": 781}


@pytest.mark.parametrize("text, expected", [
    ("def broken(:\n", "syntax error"),
    ("import torch\ndef get_inputs():\n    return [torch.ones(2)]\n", "no `class Model"),
    (GOOD.replace("def get_inputs", "def other_inputs"), "no `get_inputs()`"),
    (GOOD.replace("return [torch.randn(batch, dim)]", "return []"), "with no tensors"),
    (GOOD.replace("return [dim]", "return [dim, 5]"), "Model(*get_init_inputs()) raised TypeError"),
    (GOOD + "\nraise ValueError('boom')\n", "running the file raised ValueError"),
])
def test_user_mistakes_name_file_problem_and_fix(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ProblemError) as info:
        load_problem(path)
    message = str(info.value)
    assert str(path) in message and expected in message and "Fix:" in message


def test_missing_file(tmp_path):
    with pytest.raises(ProblemError, match="problem file not found. Fix"):
        load_problem(tmp_path / "absent.py")


def test_shrink_rescales_sizes_and_derived_values(tmp_path):
    problem = load_problem(write(tmp_path, GOOD)).shrink(max_elements=20_000)
    module = problem.module()
    (x,) = module.get_inputs()
    assert x.numel() <= 20_000 and problem.size_overrides
    assert module.scaled == 2 * module.dim  # computed from the shrunk value, not the original
    assert module.Model(*problem.init_inputs(module)).w.numel() == x.shape[1]


def test_shrink_stops_where_sizes_are_tied_by_an_assert(tmp_path):
    text = GOOD.replace("scaled = dim * 2", "assert dim % 781 == 0")
    problem = load_problem(write(tmp_path, text)).shrink(max_elements=20_000)
    assert "dim" not in problem.size_overrides


def test_parsing_is_one_thread_at_a_time(monkeypatch):
    """CPython 3.11.7 (CI's) fails "AST constructor recursion depth mismatch" when threads
    parse at once (gh-106905), and the graph codes candidates in threads: parse_python must
    never let two threads into ast.parse together."""
    import ast
    import threading
    import time

    inside, most = [0], [0]
    real = ast.parse

    def slow_parse(*args, **kwargs):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.02)  # a wide window for another thread to enter
        inside[0] -= 1
        return real(*args, **kwargs)

    monkeypatch.setattr(ast, "parse", slow_parse)
    threads = [threading.Thread(target=parse_python, args=("x = 1",)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1


GEMM_BY_EXPRESSIONS = """\
import torch
import torch.nn as nn

M = 1024 * 2
K, N = 4096 * 2, (2048 << 1) + 0

class Model(nn.Module):
    def forward(self, a, b):
        return torch.matmul(a, b)

def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]

def get_init_inputs():
    return []
"""


def test_sizes_written_as_expressions_are_shrunk(tmp_path):
    """KernelBench writes its level-1 GEMM sizes as `N = 2048 * 2`: they shrink like literals."""
    from kernelwright.core.results import CPU_MAX_ELEMENTS

    path = tmp_path / "gemm.py"
    path.write_text(GEMM_BY_EXPRESSIONS)
    problem = load_problem(path)
    assert problem.size_constants() == {"M": 2048, "K": 8192, "N": 4096}
    small = problem.shrink(CPU_MAX_ELEMENTS)
    a, b = small.module().get_inputs()
    assert a.numel() + b.numel() <= CPU_MAX_ELEMENTS
    assert a.shape[1] == b.shape[0] and set(small.size_overrides) == {"M", "K", "N"}


def test_eval_and_run_shrink_by_one_rule():
    """The graph (run, bench, the server) and `eval` shrink a problem alike, so `eval` accepts
    the kernel a run wrote."""
    from pathlib import Path

    from kernelwright.api import optimize
    from kernelwright.config import RunConfig
    from kernelwright.core.results import EvalSettings
    from kernelwright.tools.evaluate import evaluate

    path = Path(__file__).resolve().parents[2] / "examples/problems/level1/03_softmax.py"
    assert RunConfig().cpu_max_elements == EvalSettings().cpu_max_elements
    run = optimize(path, RunConfig(candidates=1, iterations=1))
    assert run.best is not None and run.best.source
    checked = evaluate(load_problem(path), run.best.source, EvalSettings(device="cpu"))
    assert checked.status == "correct", checked.message
