"""Backends: the cpu backend runs the whole loop here (C++ built with load_inline and timed on
the CPU); the cuda backend's sources are checked here and run on a GPU (marked gpu)."""

import math
from pathlib import Path

import pytest

from kernelwright.api import optimize
from kernelwright.config import RunConfig
from kernelwright.core.errors import KernelwrightError
from kernelwright.core.problem import load_problem
from kernelwright.core.results import EvalSettings
from kernelwright.hardware.backends import get_backend
from kernelwright.tools.evaluate import evaluate
from kernelwright.tools.guard import check_source
from kernelwright.writer.lower import Builder
from kernelwright.writer.ops import OPS, cpp_literal, triton_literal
from kernelwright.writer.write import plan

SUITE = Path(__file__).resolve().parents[2] / "examples" / "problems"


def build(source):
    """The C++ a candidate compiles (the launch configuration is not part of it)."""
    return source.split("SOURCE = r")[1].split("EXT = load_inline")[0]


def test_cpu_backend_drafts_times_and_refines_without_a_gpu():
    result = optimize(SUITE / "level1/05_rmsnorm.py",
                      RunConfig(backend="cpu", iterations=2, candidates=1))
    draft, refined = result.tree
    assert draft.correct and "load_inline" in draft.source and "triton" not in draft.source
    assert draft.runtime_us and draft.sol_fraction  # real CPU timings, unlike the interpreter
    assert draft.diagnosis and "SOL" in draft.diagnosis
    assert refined.stage == "refine" and refined.parent == draft.id and "grain" in refined.change
    assert result.stop and "iteration budget" in result.stop
    assert build(refined.source) == build(draft.source)  # one C++ source, the grain apart


def test_cpu_writer_covers_index_reductions_scans_and_windows(tmp_path):
    """One problem, one C++ build: an argmax, a cumsum, a variance (Welford, in the same pass
    as nothing else), a reverse scan (the loop runs last column first) and a concatenation
    (whose parts the C++ reads only inside their spans), judged and timed on the CPU."""
    path = tmp_path / "rows.py"
    path.write_text((SUITE / "level1/10_cumsum.py").read_text().replace(
        "return torch.cumsum(x, dim=-1)",
        "return (torch.argmax(x, dim=-1), torch.cumsum(x, dim=-1), torch.var(x, dim=-1),\n"
        "                torch.cumsum(x.flip(-1), dim=-1).flip(-1)\n"
        "                + torch.cat((x[:, :1] * 0, x[:, :-1]), dim=-1))"))
    settings = EvalSettings(backend="cpu", device="cpu", reps=50)
    problem = load_problem(path).shrink(settings.cpu_backend_max_elements)
    source = plan(problem, backend="cpu").source()
    assert "--c" in source and "kw_warp_m2" in source and "flip" in problem.source
    result = evaluate(problem, source, settings)
    assert result.status == "correct", f"{result.reason}: {result.message}\n{result.log_tail}"
    assert result.runtime_us and result.eager_us


@pytest.mark.parametrize("name", ["level1/03_softmax", "level1/09_argmax", "level1/10_cumsum",
                                  "level2/04_residual_add_layernorm"])
def test_cuda_writer_emits_cuda_cpp_that_the_guard_accepts(name):
    source = plan(load_problem(SUITE / f"{name}.py"), backend="cuda").source()
    assert "__global__" in source and "cuda_sources=SOURCE" in source
    assert check_source(source, backend="cuda") == []
    findings = check_source(source, backend="cpu")  # CUDA is not what the cpu backend builds
    assert [f.rule for f in findings] == ["wrong_backend"]


def test_every_op_of_the_ir_renders_for_triton_and_cpp():
    """The IR names ops; each backend renders them from writer/ops.py (no source parsed back)."""
    for name, op in OPS.items():
        args = [f"v{i}" for i in range(op.arity)]
        assert all(a in op.triton.format(*args) and a in op.cpp.format(*args) for a in args), name
        assert "tl." not in op.cpp.format(*args), name
    assert OPS["where"].cpp.format("(v1 > 0.0f)", "v1", cpp_literal(0.0)) == "((v1 > 0.0f) ? v1 : 0.0f)"
    assert OPS["or"].cpp.format("a", "b") == "((a != 0) || (b != 0))"
    assert cpp_literal(-math.inf) == "(-INFINITY)" and cpp_literal(2**40) == "1099511627776LL"
    assert triton_literal(-math.inf) == '-float("inf")'
    with pytest.raises(ValueError, match="cumsum"):
        Builder().pw("cumsum", Builder().const(1.0))


def test_a_triton_source_is_the_wrong_backend_for_cpu():
    triton_source = plan(load_problem(SUITE / "level1/01_relu.py")).source()
    assert check_source(triton_source) == []
    assert [f.rule for f in check_source(triton_source, backend="cpu")] == ["wrong_backend"]


def test_the_cuda_backend_needs_a_gpu_and_says_what_to_do():
    with pytest.raises(KernelwrightError, match="Fix: .*--backend cpu"):
        get_backend("cuda").device("auto", gpu_present=False)
    with pytest.raises(KernelwrightError, match="unknown backend 'npu'"):
        get_backend("npu")
    assert get_backend("cpu").device("auto", gpu_present=True) == "cpu"


@pytest.mark.gpu
def test_cuda_backend_through_the_graph_on_a_gpu():
    result = optimize(SUITE / "level1/03_softmax.py",
                      RunConfig(backend="cuda", iterations=2, candidates=1))
    assert result.best is not None and result.best.correct and result.best.runtime_us
    assert "cuda_sources=SOURCE" in (result.best.source or "")
    assert {c.stage for c in result.tree} >= {"draft", "refine"}
