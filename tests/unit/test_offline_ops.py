"""The offline writer beyond the suite: activations, reductions over any dim, composites and
pooling, each a small KernelBench-format problem with irregular sizes, checked on the CPU."""

import pytest
from offline_cases import FORWARDS, MODULES, write_problem

from kernelwright.core.problem import load_problem
from kernelwright.core.results import EvalSettings
from kernelwright.tools.evaluate import evaluate
from kernelwright.writer.write import plan

SETTINGS = EvalSettings(device="cpu", cpu_max_elements=1 << 14, timeout_s=300,
                        compile_baseline=False, cpu_reps=2)  # the writer's correctness; the
# repeated-call checks are the harness's (tests/unit/test_adversarial.py)

CASES = [pytest.param(n, f, i, None, id=n)
         for n, (f, i) in FORWARDS.items()] + \
        [pytest.param(n, None, i, m, id=n)
         for n, (m, i) in MODULES.items()]


@pytest.mark.parametrize("name, forward, inputs, layer", CASES)
def test_offline_writer_covers_the_op(tmp_path, name, forward, inputs, layer):
    problem = write_problem(tmp_path, name, forward, inputs, layer)
    made = plan(problem)
    source = made.source()
    result = evaluate(problem, source, SETTINGS)
    assert result.status == "correct", f"{result.reason}: {result.message}\n{result.log_tail}\n{source}"


@pytest.mark.parametrize("name, check", [
    ("long_rows_sum", lambda cfg: cfg.split > 1),  # 2 rows of 40000: split each row
    ("rms_of_everything", lambda cfg: cfg.split > 1),  # one row (a scalar): split it
    ("sum_dim0", lambda cfg: cfg.block_r > 1 and cfg.split == 1),  # rows adjacent in memory
    ("log_softmax", lambda cfg: cfg.persistent and cfg.split == 1),  # many short rows
    ("softmax_one_long_row", lambda cfg: cfg.split > 1),  # max, then exp-sum: each split
    ("frobenius_normalize", lambda cfg: cfg.split > 1),  # the norm split, then a pointwise pass
])
def test_the_shape_decides_the_reduction_strategy(tmp_path, name, check):
    forward, inputs = FORWARDS[name]
    made = plan(write_problem(tmp_path, name, forward, inputs))
    reductions = [c for g, c in zip(made.groups, made.configs, strict=True) if g.kind == "reduction"]
    assert reductions and all(check(c) for c in reductions), [c.describe() for c in reductions]


EPILOGUE = """\
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(hidden))
        self.weight = nn.Parameter(torch.rand(hidden) + 0.5)
        self.drop = nn.Dropout(0.1)

    def forward(self, x, residual):
        h = self.drop(x + self.bias) + residual
        return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight

def get_inputs():
    return [torch.randn(6, 9, 80), torch.randn(6, 9, 80)]

def get_init_inputs():
    return [80]
"""


def test_bias_dropout_residual_rmsnorm_is_one_kernel(tmp_path):
    path = tmp_path / "epilogue.py"
    path.write_text(EPILOGUE)
    problem = load_problem(path)
    made = plan(problem)
    assert [g.kind for g in made.groups] == ["reduction"]  # everything fused into the norm
    result = evaluate(problem, made.source(), SETTINGS)
    assert result.status == "correct", f"{result.reason}: {result.message}\n{result.log_tail}"


@pytest.mark.parametrize("name, taps", [("avg_pool2d_pad", 4), ("max_pool1d_dilated", 4),
                                         ("max_pool1d_stride1", None)])
def test_a_strided_pool_loads_its_last_window_dim_as_a_tile(tmp_path, name, taps):
    """A strided pool's taps along its last dim are a tile axis (3 taps padded to 4), whose
    loads run contiguously from one window to the next; a pool of stride 1 unrolls them (one
    tap's lanes are adjacent already). Either way a program takes outputs of one plane."""
    forward, inputs = FORWARDS[name]
    source = plan(write_problem(tmp_path, name, forward, inputs)).source()
    assert "lead = tl.program_id(0) // blocks" in source
    tiled = [line.strip() for line in source.splitlines() if "= tl.arange(0, " in line
             and "BLOCK" not in line]
    if taps is None:
        assert tiled == [] and "tl.static_range(4)" in source
    else:
        assert len(tiled) == 1 and tiled[0].endswith(f"tl.arange(0, {taps})"), tiled
        assert "axis=1)" in source


@pytest.mark.parametrize("name", ["transpose", "batched_transpose"])
def test_a_transposed_read_is_written_as_a_tiled_kernel(tmp_path, name):
    """The transpose kind claims a pointwise group that reads a transposed leaf (2-D tiles
    instead of a strided 1-D read); the C++ backends keep such groups pointwise."""
    forward, inputs = FORWARDS[name]
    problem = write_problem(tmp_path, name, forward, inputs)
    assert [g.kind for g in plan(problem).groups] == ["transpose"]
    assert "tl.program_id(1)" in plan(problem).source()
    assert [g.kind for g in plan(problem, backend="cpu").groups] == ["pointwise"]
    assert [g.kind for g in plan(write_problem(tmp_path, "plain", "x * 2 + 1", inputs)).groups] \
        == ["pointwise"]


@pytest.mark.parametrize("forward, reverse", [
    ("torch.cumsum(x.flip(1), dim=1).flip(1)", True),  # KernelBench's reverse cumsum: one pass
    ("torch.cumsum(x.flip(0), dim=1).flip(0)", False),  # flipped rows: a forward scan
    ("torch.cumsum(x, dim=1).flip(1)", True)])  # the flipped input is read backwards
def test_a_flipped_scan_runs_backwards_in_one_kernel(tmp_path, forward, reverse):
    """flip(scan(y), dims) is a scan over flip(y, dims), run last column first where its own dim
    is flipped: one kernel, correct with the default (whole rows) and a looped configuration (a
    carry across chunks, right to left)."""
    from dataclasses import replace

    problem = write_problem(tmp_path, "flips", forward, "[torch.randn(6, 75)]")
    made = plan(problem)
    scans = [g for g in made.groups if g.kind == "scan"]
    assert len(scans) == 1 and len(made.groups) == 1
    looped = [replace(c, block_r=2, block_c=16, persistent=False) if g.kind == "scan" else c
              for g, c in zip(made.groups, made.configs, strict=True)]
    for configs in (made.configs, looped):
        source = made.source(configs)
        assert ("reverse=True" in source) == reverse
        result = evaluate(problem, source, SETTINGS)
        assert result.status == "correct", f"{result.reason}: {result.message}\n{source}"


def test_an_in_place_update_read_again_is_refused_not_miscomputed(tmp_path):
    """v = y[:, 0], then y.add_(1), then v read: v aliases y and sees the update, which the
    functional form would miss, so the writer refuses it by name. (A read of y itself after the
    update is traced as a read of the update, and is covered.)"""
    from kernelwright.writer.ir import Unsupported

    problem = write_problem(
        tmp_path, "in_place", "(lambda y, v: (y.add_(1.0), v * 1)[1])(*(lambda y: (y, y[:, 0]))(x * 2))",
        "[torch.randn(6, 20)]")
    with pytest.raises(Unsupported, match="add_"):
        plan(problem)


@pytest.mark.parametrize("layer, inputs", [
    ("nn.InstanceNorm2d(4)", "[torch.rand(2, 4, 37, 41) * 3 + 100]"),  # far from zero
    ("nn.GroupNorm(2, 6)", "[torch.randn(2, 6, 29, 17) * 0.01 - 1]"),  # a narrow spread
])
def test_a_looped_norm_reads_its_rows_twice_and_stays_exact(tmp_path, layer, inputs):
    """Rows looped in chunks: the mean and the squared deviations (Welford per lane, the lanes
    combined at the end) come from one read of the row, the normalised output from a second;
    the variance stays accurate where mean^2 dwarfs it (a sum of squares would lose it)."""
    from kernelwright.writer.schedule import KernelConfig

    problem = write_problem(tmp_path, "norm", None, inputs, layer)
    made = plan(problem)
    looped = [KernelConfig(block_r=1, block_c=64, num_warps=4) if g.kind == "reduction" else c
              for g, c in zip(made.groups, made.configs, strict=True)]
    source = made.source(looped)
    assert source.count("for c0 in range(") == 2, source
    result = evaluate(problem, source, SETTINGS)
    assert result.status == "correct", f"{result.reason}: {result.message}\n{result.log_tail}"
