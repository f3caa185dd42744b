"""The offline writer's own GEMMs (strict mode): every suite problem built from mm, addmm, bmm
and 2-d convolutions (implicit GEMMs) is correct on the CPU interpreter with the default tiles
and with small ones (several K steps, edge masks); epilogues fuse into the GEMM, a row
reduction after it is one more kernel; transposed operands, sizes that divide no tile, a
matrix-vector product, strided and dilated convolutions, and the precision policy's dots."""

from dataclasses import replace
from pathlib import Path

import pytest

from kernelwright.core.problem import Problem, load_problem, parse_problem
from kernelwright.core.results import EvalSettings
from kernelwright.tools.evaluate import evaluate
from kernelwright.writer.schedule import matmul_config
from kernelwright.writer.write import plan

SUITE = Path(__file__).resolve().parents[2] / "examples" / "problems"
GEMM_PROBLEMS = ["level1/07_matmul", "level1/08_matmul_transposed_b",
                 "level1/12_small_batched_matmul", "level2/01_linear_bias_relu_scale",
                 "level2/02_linear_gelu_layernorm", "level2/03_conv_relu_bias",
                 "level2/06_matmul_sum_rows", "level3/01_mlp"]
SETTINGS = EvalSettings(device="cpu", cpu_max_elements=1 << 13, timeout_s=300,
                        compile_baseline=False, cpu_reps=2)  # the writer's correctness; the
# repeated-call checks are the harness's (tests/unit/test_adversarial.py)


def correct(made, configs=None, settings=SETTINGS) -> str:
    source = made.source(configs)
    result = evaluate(made.problem, source, settings)
    assert result.status == "correct", f"{result.reason}: {result.message}\n{result.log_tail}\n{source}"
    assert not result.findings and "@triton.jit" in source and "tl.dot(" in source
    assert result.exact_error is not None  # held to the reference's accuracy (parity)
    return source


def inline(name: str, forward: str, inputs: str, init: str = "[]", members: str = "") -> Problem:
    source = f'''import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self):
        super().__init__()
{members or "        pass"}

    def forward(self, a, b=None):
        return {forward}


def get_inputs():
    return {inputs}


def get_init_inputs():
    return {init}
'''
    return parse_problem(source, f"{name}.py")


FEWER = {"level3/01_mlp": ("[4096, 4096]", "[256, 128]")}


@pytest.mark.parametrize("name, tiles", [(n, "default") for n in GEMM_PROBLEMS] + [
    (n, "small") for n in ("level1/08_matmul_transposed_b", "level1/12_small_batched_matmul",
                           "level2/02_linear_gelu_layernorm")])  # (more below, on odd sizes)
def test_suite_gemms_are_correct_in_strict_mode(name, tiles):
    problem = load_problem(SUITE / f"{name}.py")
    if name in FEWER:  # a list of sizes, which shrink() leaves alone
        problem = Problem(problem.path, problem.source.replace(*FEWER[name]))
    made = plan(problem.shrink(SETTINGS.cpu_max_elements))
    assert "matmul" in [g.kind for g in made.groups]
    configs = made.configs if tiles == "default" else [
        matmul_config(g, 16, 16, 16, 1, group_m=2) if g.kind == "matmul" else c
        for g, c in zip(made.groups, made.configs, strict=True)]
    source = correct(made, configs)
    assert "torch.mm" not in source and "@ " not in source.split("class ModelNew")[1]


@pytest.mark.parametrize("pattern, forward, kinds", [
    ("linear_gelu_layernorm", "F.layer_norm(F.gelu(self.fc(a)), (48,))", ["matmul", "reduction"]),
    ("gemm_sigmoid_sum", "torch.sigmoid(self.fc(a)).sum(dim=1)", ["matmul", "reduction"]),
    ("matmul_divide_gelu", "F.gelu(a @ self.fc.weight.t() / 2.5)", ["matmul"]),
    ("residual_clamp", "(self.fc(a) * 0.5 + b).clamp(-1.0, 1.0)", ["matmul"]),
])
def test_epilogues_fuse_into_the_gemm(pattern, forward, kinds):
    problem = inline(pattern, forward, "[torch.randn(40, 56), torch.randn(40, 48)]",
                     members="        self.fc = nn.Linear(56, 48)")
    made = plan(problem)
    assert [g.kind for g in made.groups] == kinds
    correct(made)


@pytest.mark.parametrize("pattern, forward, inputs, dot", [
    ("transposed_a", "a.t() @ b", "[torch.randn(45, 37), torch.randn(45, 29)]",
     "tl.dot(tl.trans(x), y"),  # each operand read along its contiguous dim
    ("odd_sizes_bias_relu", "torch.relu(a @ b + 1.5)", "[torch.randn(37, 45), torch.randn(45, 29)]",
     "tl.dot(x, y"),
    ("matrix_vector", "a @ b", "[torch.randn(300, 70), torch.randn(70, 1)]", "tl.dot(x, y"),
    ("bmm_transposed_b", "torch.bmm(a, b.transpose(1, 2))",
     "[torch.randn(3, 20, 24), torch.randn(3, 18, 24)]", "tl.dot(x, tl.trans(y)"),
])
def test_operand_layouts_and_edges(pattern, forward, inputs, dot):
    made = plan(inline(pattern, forward, inputs))
    assert made.groups[0].kind == "matmul"
    assert dot in correct(made, [matmul_config(made.groups[0], 16, 16, 16, 1)] + made.configs[1:])


@pytest.mark.parametrize("precision, dot", [("fp32", 'input_precision="tf32x3"'),  # K >= 128
                                            ("tf32", 'input_precision="tf32"'),
                                            ("bf16", "x.to(tl.bfloat16), tl.trans(y).to(tl.bfloat16)")])
def test_the_precision_policy_holds_inside_the_gemm(precision, dot):
    problem = load_problem(SUITE / "level2/01_linear_bias_relu_scale.py").shrink(1 << 13)
    made = plan(problem, precision=precision)
    settings = SETTINGS.model_copy(update={"precision": precision})
    assert dot in correct(made, settings=settings)


@pytest.mark.parametrize("forward, k, dot, packs", [("a @ b.t()", 32, "ieee", 0),
                                                  ("a @ b.t()", 256, "tf32x3", 0),
                                                  ("a @ b", 256, "tf32x3", 1),
                                                  ("a @ b", 32, "ieee", 0)])
def test_fp32_gemm_drafts_take_3xtf32_dots_where_they_pay(forward, k, dot, packs):
    """Under fp32 a GEMM with K of TF32X3_MIN_K or more is drafted with 3xTF32 dots (fp32
    accuracy on the tensor cores); a short K keeps FMA dots. A row-major B is copied K-major
    first (Hopper's TF32 tensor cores read K-major operands). The search space holds both dots,
    alternating from the draft's, so the refiner measures one against the other."""
    b = f"torch.randn(20, {k})" if "b.t()" in forward else f"torch.randn({k}, 20)"
    problem = inline(f"k{k}", forward, f"[torch.randn(24, {k}), {b}]")
    made = plan(problem)
    assert made.configs[0].dot == dot
    source = correct(made)
    assert f'input_precision="{dot}"' in source and source.count("_pack_b[") == packs
    from kernelwright.writer.kinds import config_space

    space = config_space(made.groups[0])
    assert space[0].dot == dot and {c.dot for c in space[:2]} == {"ieee", "tf32x3"}
    # under any other policy the configuration's dot is not used
    assert 'input_precision="tf32"' in plan(problem, precision="tf32").source()


@pytest.mark.parametrize("forward, inputs, packs, split", [
    ("a.t() @ b", "[torch.randn(150, 37), torch.randn(150, 29)]", ["a", "b"], 1),
    ("torch.bmm(a, b)", "[torch.randn(3, 20, 144), torch.randn(3, 144, 18)]", ["b"], 1),
    ("a.t() @ b", "[torch.randn(300, 24), torch.randn(300, 20)]", ["a", "b"], 4),
    ("a.t() @ b.t()", "[torch.randn(128, 21), torch.randn(19, 128)]", ["a"], 1),
    ("a @ b.t()", "[torch.randn(20, 37), torch.randn(18, 37)]", ["a", "b"], 1),  # rows unaligned
])
def test_3xtf32_gemms_copy_operands_k_major(forward, inputs, packs, split):
    """A 3xTF32 GEMM reads both operands K-major: an M-major A (a.t()) or an N-major B (a @ b,
    batched too) is copied into a [.., M or N, K] buffer first, one kernel per copy, then the
    GEMM (split-K too) reads the copy; so is a K-major operand whose rows are not 64-byte
    aligned (K = 37), into rows padded to 48. FMA dots read every operand in place."""
    made = plan(inline("packs", forward, inputs))
    group = made.groups[0]
    cfg = matmul_config(group, 16, 16, 16, 1, split=split, dot="tf32x3")
    source = correct(made, [cfg] + made.configs[1:])
    launched = [line.split("[")[0].strip() for line in source.splitlines() if "_pack_" in line
                and "def " not in line and "#" not in line]
    assert launched == [f"kernel0_matmul_pack_{x}" for x in packs]
    import re

    import torch

    shapes = [t.shape for t in eval(inputs, {"torch": torch})]
    sizes = {f"in{i}_size{d}": n for i, shape in enumerate(shapes) for d, n in enumerate(shape)}
    k = shapes[0][0] if "a.t()" in forward else shapes[0][-1]
    rows = re.findall(r"p \* (.+?) \+ q, tile", source)  # each copy's row stride
    assert len(rows) == len(packs) and all(eval(r, sizes) == -(-k // 16) * 16 for r in rows)
    if split > 1:
        assert "_partial[" in source and "_combine[" in source
    assert "_pack_" not in made.source([replace(cfg, dot="ieee")] + made.configs[1:])


@pytest.mark.parametrize("pattern, conv, inputs", [
    ("strided_dilated_odd", "nn.Conv2d(3, 5, 3, stride=2, padding=2, dilation=2, bias=False)",
     "[torch.randn(2, 3, 13, 11)]"),
    ("pointwise_1x1_bias", "nn.Conv2d(6, 20, 1)", "[torch.randn(2, 6, 9, 7)]"),
    ("rectangular_kernel", "nn.Conv2d(4, 6, (3, 5), padding=(1, 0), stride=(1, 2))",
     "[torch.randn(1, 4, 10, 12)]"),
])
def test_convolutions_are_implicit_gemms(pattern, conv, inputs):
    problem = inline(pattern, "torch.tanh(self.conv(a)) * 2.0", inputs,
                     members=f"        self.conv = {conv}")
    made = plan(problem)
    assert [g.kind for g in made.groups] == ["matmul"]  # the tanh and scale are its epilogue
    source = correct(made, [matmul_config(made.groups[0], 16, 16, 16, 1)])
    assert "ih = oh[:, None]" in source and "conv2d" not in source


def test_grouped_and_transposed_convolutions_are_reported_not_covered():
    from kernelwright.writer.ir import Unsupported

    for conv in ("nn.Conv2d(4, 8, 3, groups=2)", "nn.ConvTranspose2d(4, 8, 3)"):
        problem = inline("conv", "self.conv(a)", "[torch.randn(1, 4, 8, 8)]",
                         members=f"        self.conv = {conv}")
        with pytest.raises(Unsupported, match="convolution"):
            plan(problem)


def test_a_remembered_tile_is_fitted_to_another_gemm():
    """Memory hands the coder a tile that won on another GEMM: clamped to this one's sizes."""
    from dataclasses import asdict

    from kernelwright.agents.coder import transfer
    from kernelwright.writer.schedule import KernelConfig

    won = KernelConfig(block_r=128, block_c=64, block_k=32, num_warps=4, num_stages=4)
    small_bmm = plan(load_problem(SUITE / "level1/12_small_batched_matmul.py"))  # 32 x 32, K 64
    (fitted,) = transfer(small_bmm, [{"kind": "matmul", "cols": 0, "config": asdict(won)}])
    assert (fitted.block_r, fitted.block_c, fitted.block_k, fitted.num_stages) == (32, 32, 32, 4)


@pytest.mark.parametrize("faster", ["vendor GEMMs", "own GEMMs"])
def test_library_mode_keeps_whichever_gemm_measures_faster(faster):
    """In `library` mode the writer's own GEMM competes with cuBLAS; the measurement decides
    (times faked here: the CPU has none)."""
    from kernelwright.agents.coder import offline_refine
    from kernelwright.core.results import EvalResult, Status

    def timed(problem, source, settings):
        vendor = "torch.addmm(" in source
        return EvalResult(status=Status.CORRECT, problem=problem.name, guard=settings.guard,
                          precision=settings.precision,
                          runtime_us=100.0 if vendor == (faster == "vendor GEMMs") else 150.0)

    problem = load_problem(SUITE / "level2/01_linear_bias_relu_scale.py")
    found = offline_refine(problem, SETTINGS.model_copy(update={"guard": "library"}), budget=4,
                           evaluate=timed)
    assert {n.change.split(":")[0] for n in found.tree} == {"vendor GEMMs", "own GEMMs"}
    assert len(found.tree) == 4 and found.stopped.startswith(f"{faster} chosen")
    assert ("torch.addmm(" in found.best_source) == (faster == "vendor GEMMs")
    assert found.best_result.runtime_us == 100.0 and found.tree[found.best_id].runtime_us == 100.0


def test_the_graphs_offline_coder_offers_vendor_and_own_gemms_in_library_mode():
    """The graph's coder drafts both plans in `library` mode (the evaluator then measures
    them); a refinement or a repair stays in its parent's plan."""
    from kernelwright.agents.coder import offline_code, offline_plans, plan_of

    problem = load_problem(SUITE / "level2/01_linear_bias_relu_scale.py").shrink(SETTINGS.cpu_max_elements)
    vendor = offline_code(problem, "draft", 0, None, [], guard="library")
    own = offline_code(problem, "draft", 1, None, [], guard="library")
    assert vendor.change == "vendor GEMMs: the writer's default"
    assert "torch.addmm(" in vendor.source  # linear: the bias added inside the vendor GEMM
    assert own.change == "own GEMMs: the writer's default" and "torch.addmm(" not in own.source
    settings = SETTINGS.model_copy(update={"guard": "library"})
    assert evaluate(problem, own.source, settings).status == "correct"  # allowed in library mode
    tried = [vendor.configs, own.configs]
    for parent, label in ((own, "own GEMMs"), (vendor, "vendor GEMMs")):
        child = offline_code(problem, "refine", 0, parent.configs, tried, guard="library")
        assert child.change.startswith(f"{label}: kernel")
        assert ("torch.addmm(" in child.source) == (label == "vendor GEMMs")
        assert plan_of(offline_plans(problem, guard="library"), child.configs)[0] == label


@pytest.mark.parametrize("pattern, forward, inputs", [
    ("skinny_large_k_epilogue", "torch.relu(a @ b) * 0.5",
     "[torch.randn(20, 1000), torch.randn(1000, 24)]"),
    ("bmm", "torch.bmm(a, b)", "[torch.randn(2, 16, 300), torch.randn(2, 300, 16)]"),
])
def test_split_k_sums_slices_then_runs_the_epilogue(pattern, forward, inputs):
    made = plan(inline(pattern, forward, inputs))
    tile = matmul_config(made.groups[0], 16, 16, 32, 1, split=4)
    assert tile.split == 4
    source = correct(made, [tile])
    assert "kernel0_matmul_partial" in source and "kernel0_matmul_combine" in source


def test_a_long_k_with_few_tiles_is_split_by_default():
    made = plan(inline("long_k", "a @ b", "[torch.randn(64, 8192), torch.randn(8192, 64)]"))
    assert made.configs[0].split > 1
    correct(made)
