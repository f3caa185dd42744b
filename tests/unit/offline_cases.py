"""The cases of test_offline_ops.py as data (no pytest): KernelBench-format problems of
irregular sizes, each an op or a few; benchmarks/ops_on_gpu.py runs the same cases on a GPU."""

import textwrap

from kernelwright.core.problem import load_problem

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
    "max_pool1d_stride1": ("F.max_pool1d(x, 4, stride=1, padding=2, dilation=3) * 2",
                           "[torch.randn(3, 5, 37)]"),
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
