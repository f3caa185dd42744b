"""The offline writer: generated candidates pass the strict guard and correctness on the CPU
interpreter for every suite problem built from pointwise, reduction, scan and pooling ops, and
in `library` mode for the problems whose GEMMs and convolutions stay vendor calls. GEMMs in
strict mode: tests/unit/test_offline_matmul.py."""

from pathlib import Path

import pytest
import torch
from corpus import SORTED_ROWS

from kernelwright.agents.coder import offline_draft
from kernelwright.core.problem import Problem, load_problem
from kernelwright.core.results import EvalSettings
from kernelwright.tools.evaluate import evaluate
from kernelwright.writer.schedule import KernelConfig
from kernelwright.writer.write import plan

SUITE = Path(__file__).resolve().parents[2] / "examples" / "problems"
COVERED = ["level1/01_relu", "level1/02_gelu_tanh", "level1/03_softmax", "level1/04_layernorm",
           "level1/05_rmsnorm", "level1/06_row_sum", "level1/09_argmax", "level1/10_cumsum",
           "level1/11_max_pool2d", "level2/04_residual_add_layernorm",
           "level2/05_scaled_softmax_mask"]
NOT_COVERED = {SORTED_ROWS: "sort"}  # every suite problem is covered now
# library mode: the GEMM or convolution stays the vendor's, everything around it is fused
LIBRARY = ["level2/01_linear_bias_relu_scale", "level2/02_linear_gelu_layernorm",
           "level2/03_conv_relu_bias", "level2/06_matmul_sum_rows", "level3/01_mlp"]
# sizes written as literals cannot be shrunk by Problem.shrink; the test reduces them
LITERAL_SIZES = {"level1/11_max_pool2d": ("torch.randn(32, 64, 256, 256)", "torch.randn(2, 3, 18, 22)")}
SETTINGS = EvalSettings(device="cpu", cpu_max_elements=1 << 13, timeout_s=300,
                        compile_baseline=False, cpu_reps=2)  # the writer's correctness; the
# repeated-call checks are the harness's (tests/unit/test_adversarial.py)


def small(name: str) -> Problem:
    problem = load_problem(SUITE / f"{name}.py")
    if name in LITERAL_SIZES:
        old, new = LITERAL_SIZES[name]
        assert old in problem.source
        problem = Problem(problem.path, problem.source.replace(old, new))
    return problem.shrink(SETTINGS.cpu_max_elements)


def looped(cfg: KernelConfig) -> KernelConfig:
    """The same kernel with chunked columns: exercises the multi-pass code path (chunks of 32
    columns: few enough programs and steps for the interpreter, fewer than any row here)."""
    if cfg.block_c == 1:
        return KernelConfig(block_r=64, num_warps=2)
    return KernelConfig(block_r=8, block_c=32, num_warps=2, persistent=False)


@pytest.mark.parametrize("name", COVERED)
@pytest.mark.parametrize("variant", ["default", "looped"])
def test_generated_candidate_is_correct_in_strict_mode(name, variant):
    made = plan(small(name))
    configs = made.configs if variant == "default" else [looped(c) for c in made.configs]
    if variant == "looped":  # several chunks per row wherever the row is wider than one chunk
        assert all(c.block_c == 1 or c.block_c < g.cols or g.cols <= 32
                   for c, g in zip(configs, made.groups, strict=True))
    source = made.source(configs)
    result = evaluate(made.problem, source, SETTINGS)
    assert result.status == "correct", f"{result.reason}: {result.message}\n{result.log_tail}\n{source}"
    assert result.guard == "strict" and not result.findings
    assert "@triton.jit" in source and "torch.softmax" not in source


@pytest.mark.parametrize("path, op", NOT_COVERED.items())
def test_uncovered_problems_are_reported_with_the_missing_ops(path, op):
    draft = offline_draft(load_problem(path))
    assert not draft.covered and draft.source is None
    assert op in draft.missing_ops


def test_draft_describes_its_kernels():
    draft = offline_draft(small("level1/03_softmax"))
    assert draft.covered and len(draft.kernels) == 1
    assert draft.kernels[0].startswith("reduction over") and "persistent" in draft.kernels[0]


@pytest.mark.parametrize("name", LIBRARY)
def test_library_mode_fuses_around_vendor_calls(name):
    settings = SETTINGS.model_copy(update={"guard": "library"})
    made = plan(small(name), guard="library")
    assert [g.kind for g in made.groups].count("extern") >= 1
    assert all(g.kind != "pointwise" or prev.kind == "extern"  # epilogues are fused, one per call
               for prev, g in zip(made.groups, made.groups[1:], strict=False))
    source = made.source()
    result = evaluate(made.problem, source, settings)
    assert result.status == "correct", f"{result.reason}: {result.message}\n{result.log_tail}\n{source}"
    assert result.guard == "library" and "@triton.jit" in source


@pytest.mark.parametrize("name", ["level1/07_matmul", "level1/12_small_batched_matmul"])
def test_a_lone_gemm_in_library_mode_is_the_writers_own_not_a_vendor_call(name):
    """A plan of vendor calls only would pass torch's work off as a kernel: a lone GEMM in
    `library` mode is the writer's own Triton GEMM instead (correct, and allowed there)."""
    problem = small(name)
    draft = offline_draft(problem, guard="library")
    assert draft.covered and "tl.dot(" in draft.source
    assert "torch.mm(" not in draft.source and "torch.bmm(" not in draft.source
    result = evaluate(problem, draft.source, SETTINGS.model_copy(update={"guard": "library"}))
    assert result.status == "correct", result.message


def test_library_mode_adds_a_bias_in_the_vendor_gemm():
    """nn.Linear with nothing after it: one torch.addmm (the bias in cuBLAS's epilogue), not a
    GEMM followed by a bias kernel; with an activation after it, one kernel for the rest."""
    made = plan(small("level3/01_mlp"), guard="library")
    source = made.source()
    assert "torch.addmm(" in source and "torch.mm(" not in source
    assert [g.kind for g in made.groups][-1] == "extern"  # the last layer: bias and nothing else


def test_other_constructor_arguments_or_sizes_are_refused_with_the_reason(tmp_path):
    """The kernels are written for the problem's integer constructor arguments: a ModelNew
    built with others says so instead of computing with the old ones; an input whose shape the
    kernels cannot take (features other than the weight's) is refused with the shape they take
    (another batch size runs: tests/unit/test_generic_sizes.py)."""
    import importlib.util

    import torch

    problem = load_problem(SUITE / "level2" / "01_linear_bias_relu_scale.py").shrink(1 << 13)
    source = plan(problem).source()
    assert evaluate(problem, source, SETTINGS).status == "correct"  # the harness's arguments pass
    path = tmp_path / "written.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("written", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    init = problem.module().get_init_inputs()
    with pytest.raises(ValueError, match="written for the constructor arguments"):
        module.ModelNew(init[0] * 2, *init[1:])  # the width (a float, the scale, is taken:
        # tests/unit/test_generic_sizes.py)
    model = module.ModelNew(*init)
    [x] = problem.module().get_inputs()
    with pytest.raises(ValueError, match="these kernels take shape"):
        model(torch.randn(x.shape[0], x.shape[1] + 1))


@pytest.mark.parametrize("name", ["level1/04_layernorm", "level2/04_residual_add_layernorm"])
def test_a_norm_under_bf16_returns_the_references_dtype(name):
    """native_layer_norm returns (out, mean, rstd): out in the input's dtype (bf16), the
    statistics in fp32. The writer gave the output fp32 (output_shape under bf16); each part
    now takes its own dtype."""
    made = plan(small(name), precision="bf16")
    settings = SETTINGS.model_copy(update={"precision": "bf16"})
    result = evaluate(made.problem, made.source(), settings)
    assert result.status == "correct", f"{result.reason}: {result.message}"
    assert [v.dtype for v in made.graph.outputs] == [torch.bfloat16]
