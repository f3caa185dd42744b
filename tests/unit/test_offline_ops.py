"""The offline writer beyond the suite: activations, reductions over any dim, composites and
pooling, each a small KernelBench-format problem with irregular sizes, checked on the CPU."""

import textwrap

import pytest

from kernelwright.core.problem import load_problem
from kernelwright.core.results import EvalSettings
from kernelwright.tools.evaluate import evaluate
from kernelwright.writer.write import plan

SETTINGS = EvalSettings(device="cpu", cpu_max_elements=1 << 14, timeout_s=300,
                        compile_baseline=False)

FORWARDS = {
    "activations": ("F.mish(x) + F.hardswish(x) * F.softplus(x) - F.elu(x) + F.selu(x) "
                    "+ F.leaky_relu(x, 0.2) + F.hardtanh(x) + torch.sigmoid(x) * torch.tanh(x) "
                    "+ F.gelu(x) + torch.clamp(x, -0.5, 0.5)", "[torch.randn(37, 61)]"),
    "hardshrink": ("F.hardshrink(x, 0.3) * 2", "[torch.randn(29, 41)]"),
    "transpose": ("x.t() * 2 + 1", "[torch.randn(45, 70)]"),
    "batched_transpose": ("torch.relu(x.transpose(1, 2)) + x.transpose(1, 2).sin()",
                          "[torch.randn(3, 37, 53)]"),
    "sum_dim0": ("x.sum(dim=0)", "[torch.randn(45, 29)]"),
    "mean_middle": ("x.mean(dim=1)", "[torch.randn(7, 33, 19)]"),
    "max_min_prod": ("x.amax(dim=-1) + x.amin(dim=-1) + (x * 0.1 + 1).prod(dim=-1)",
                     "[torch.randn(23, 17)]"),
    "argmin_dim0": ("torch.argmin(x, dim=0)", "[torch.randn(41, 13)]"),
    "var": ("torch.var(x, dim=-1)", "[torch.randn(19, 57)]"),
    "log_softmax": ("torch.log_softmax(x, dim=-1)", "[torch.randn(21, 75)]"),
    "logsumexp": ("torch.logsumexp(x, dim=-1)", "[torch.randn(21, 75)]"),
    "l2_normalize": ("F.normalize(x, dim=-1)", "[torch.randn(18, 43)]"),
    "cross_entropy": ("F.cross_entropy(x, torch.softmax(x * 3, dim=-1))",
                      "[torch.randn(27, 31)]"),
    "kl_div": ("F.kl_div(torch.log_softmax(x, -1), torch.softmax(x * 2, -1), "
               "reduction='batchmean')", "[torch.randn(27, 31)]"),
    "cumprod": ("torch.cumprod(1 + 0.01 * x, dim=-1)", "[torch.randn(9, 70)]"),
    "avg_pool2d_pad": ("F.avg_pool2d(x, 3, stride=2, padding=1)", "[torch.randn(2, 3, 13, 11)]"),
    "long_rows_sum": ("(x * 2).sum(dim=-1) + 1", "[torch.randn(2, 40000)]"),
    "rms_of_everything": ("torch.sqrt((x * x).mean())", "[torch.randn(250, 160)]"),
    "losses": ("F.mse_loss(x, 0.3 * x + 1) + F.smooth_l1_loss(x, 0.5 * x, beta=0.7) "
               "+ F.huber_loss(x, -x, delta=1.5) + F.l1_loss(x, 0.1 * x)", "[torch.randn(19, 23)]"),
    "softmax_one_long_row": ("torch.softmax(x, dim=-1)", "[torch.randn(2, 40000)]"),
    "frobenius_normalize": ("x / torch.norm(x, p='fro')", "[torch.randn(190, 180)]"),
    "cumsum_reverse": ("torch.cumsum(x.flip(1), dim=1).flip(1)", "[torch.randn(9, 70)]"),
    "cumprod_reverse_twice_flipped": ("torch.cumprod(1 + 0.01 * x.flip(0, 1), 1).flip(1)",
                                      "[torch.randn(9, 70)]"),
    "flips_read_and_returned": ("(x.flip(0) * x + 1).flip(1)", "[torch.randn(13, 21)]"),
    "triu_tril": ("torch.triu(x, diagonal=1) * 2 + torch.tril(x, -2)", "[torch.randn(3, 11, 13)]"),
    "diag_matmul": ("torch.diag(x[0]) @ x", "[torch.randn(17, 17)]"),
    "cross_entropy_classes": ("F.cross_entropy(x, (x[:, 0] * 7).long() % 31)", "[torch.randn(27, 31)]"),
    "nll_ignore_sum_none": ("F.nll_loss(torch.log_softmax(x, 1), (x[:, 0].abs() * 9).long() % 12, "
                            "ignore_index=3, reduction='sum') + F.nll_loss(torch.log_softmax(x, 1), "
                            "(x[:, 1].abs() * 9).long() % 12, reduction='none').sum()",
                            "[torch.randn(40, 12)]"),
    "cosine_similarity_loss": ("torch.mean(1 - F.cosine_similarity(x, x.flip(0) * 0.5 + 0.1, dim=1))",
                               "[torch.randn(24, 33)]"),
    "triplet_margin_loss": ("F.triplet_margin_loss(x, x * 0.9 + 0.2, x.flip(1), margin=1.0)",
                            "[torch.randn(24, 33)]"),
    "cumsum_exclusive": ("torch.cumsum(torch.cat((torch.zeros_like(x.select(1, 0).unsqueeze(1)), x), "
                         "dim=1)[:, :-1], dim=1)", "[torch.randn(9, 70)]"),  # KernelBench's spelling
    "cat_three_parts": ("torch.softmax(torch.cat([x, torch.relu(x) * 2, x[:, :3]], dim=1), dim=1) "
                        "+ torch.cat((x, x.flip(0)), dim=0).sum(dim=0)[:1]", "[torch.randn(12, 20)]"),
    "unfold_patches": ("(x.unfold(2, 4, 4).unfold(3, 4, 4).reshape(x.shape[0], -1, 48) * 2).sum(-1)",
                       "[torch.randn(2, 3, 16, 12)]"),  # a ViT's patches
    "unfold_returned": ("(x * 2).unfold(1, 5, 3)", "[torch.randn(6, 20)]"),
    "in_place_after_a_size_query": ("(lambda y: y.add_(y.shape[0]))(x * 2)", "[torch.randn(6, 20)]"),
    "zeros_like_plus": ("torch.zeros_like(x) + x.sum(dim=0)", "[torch.randn(9, 14)]"),
    "max_avg_pool3d": ("F.max_pool3d(x, 3, stride=2, padding=1, dilation=2)[..., :3, :3, :3] + "
                       "F.avg_pool3d(x, 3, stride=2, padding=1)[..., :3, :3, :3]",
                       "[torch.randn(2, 3, 8, 9, 10)]"),
    "max_pool1d_dilated": ("F.max_pool1d(x, 3, stride=2, padding=1, dilation=2)",
                           "[torch.randn(2, 5, 29)]"),
}

MODULES = {
    "group_norm": ("nn.GroupNorm(4, 12)", "[torch.randn(3, 12, 5, 7)]"),
    "batch_norm_eval": ("nn.BatchNorm2d(6)", "[torch.randn(3, 6, 5, 7)]"),
    "batch_norm_batch_stats": ("nn.BatchNorm1d(5, track_running_stats=False)",
                               "[torch.randn(6, 5, 9)]"),
}


def write_problem(tmp_path, name, forward, inputs, layer=None):
    init = f"        self.layer = {layer}\n" if layer else ""
    body = "self.layer(x)" if layer else forward
    source = textwrap.dedent(f"""\
        import torch
        import torch.nn as nn
        import torch.nn.functional as F


        class Model(nn.Module):
            def __init__(self):
                super().__init__()
        {init}
            def forward(self, x):
                return {body}


        def get_inputs():
            return {inputs}


        def get_init_inputs():
            return []
        """)
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return load_problem(path)


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
