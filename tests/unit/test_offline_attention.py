"""Fused attention in the offline writer: softmax(q @ k^T ...) @ v, op by op or as
scaled_dot_product_attention, becomes one flash-style kernel that is correct on the CPU
interpreter: causal masks in their three spellings, additive and boolean masks read from
inputs, rows masked throughout, several blocks of keys with ragged edges, both guard modes and
the precision policy; a softmax that is not attention stays two GEMMs around a row kernel."""

import re
from pathlib import Path

import pytest

from kernelwright.core.problem import Problem, load_problem, parse_problem
from kernelwright.core.results import EvalSettings
from kernelwright.tools.evaluate import evaluate
from kernelwright.writer.write import plan

SUITE = Path(__file__).resolve().parents[2] / "examples" / "problems"

SETTINGS = EvalSettings(device="cpu", cpu_max_elements=1 << 13, timeout_s=300,
                        compile_baseline=False, cpu_reps=2)  # the writer's correctness; the
# repeated-call checks are the harness's (tests/unit/test_adversarial.py)


def attention_problem(forward: str, inputs: str) -> Problem:
    return parse_problem(f'''import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def forward(self, q, k, v, mask=None):
        return {forward}


def get_inputs():
    return {inputs}


def get_init_inputs():
    return []
''', "attention.py")


def small_block(problem: Problem) -> Problem:
    """The suite's attention block at a size the interpreter runs in seconds (2 heads of 32)."""
    return Problem(problem.path, problem.source.replace("seq_len = 1024", "seq_len = 40")
                   .replace("dim = 1024", "dim = 64").replace("heads = 16", "heads = 2")
                   .replace("batch_size = 16", "batch_size = 2"))


def check(problem: Problem, guard: str = "strict", precision: str = "fp32",
          blocks: tuple[int, int] | None = None) -> str:
    made = plan(problem, precision, guard)  # type: ignore[arg-type]
    kinds = [g.kind for g in made.groups]
    assert kinds.count("attention") == 1, kinds
    configs = made.configs
    if blocks is not None:
        configs = [c.__class__(block_r=blocks[0], block_c=blocks[1], num_warps=1)
                   if g.kind == "attention" else c for g, c in zip(made.groups, configs, strict=True)]
    source = made.source(configs)
    settings = SETTINGS.model_copy(update={"guard": guard, "precision": precision})
    result = evaluate(made.problem, source, settings)
    assert result.status == "correct", f"{result.reason}: {result.message}\n{result.log_tail}\n{source}"
    kernel = source.split("_attention(")[1].split("\n\n")[0]
    assert kernel.count("tl.dot(") >= 2 and "tl.exp(" in kernel
    return source


@pytest.mark.parametrize("guard", ["strict", "library"])
def test_the_suite_attention_block_is_one_fused_kernel(guard):
    problem = small_block(load_problem(SUITE / "level3/02_attention_block.py"))
    source = check(problem, guard)
    assert "torch.bmm" not in source  # no vendor call for the scores, in either mode
    kernel = source.split("_attention(")[1].split("\n\n")[0]
    # causal: blocks past the diagonal skipped (the key count is a size argument)
    assert re.search(r"tl\.minimum\(in\d+_size1, \(pid \+ 1\) \* BLOCK_M", kernel)
    # the output stored heads-last, so merging the heads back needs no copy kernel
    gemm = "matmul" if guard == "strict" else "extern"
    assert [g.kind for g in plan(problem, "fp32", guard).groups] == [gemm, "attention", gemm]


QKV = "[torch.randn(2, 3, {m}, 16), torch.randn(2, 3, {n}, 16), torch.randn(2, 3, {n}, 8)]"


@pytest.mark.parametrize("pattern, forward, inputs", [
    ("sdpa_causal", "F.scaled_dot_product_attention(q, k, v, is_causal=True)",
     QKV.format(m=40, n=40)),
    ("sdpa_plain_cross", "F.scaled_dot_product_attention(q, k, v)", QKV.format(m=24, n=40)),
    ("sdpa_scaled", "F.scaled_dot_product_attention(q, k, v, scale=0.3)", QKV.format(m=24, n=40)),
    ("sdpa_additive_mask", "F.scaled_dot_product_attention(q, k, v, attn_mask=mask)",
     QKV.format(m=24, n=40)[:-1] + ", torch.randn(24, 40)]"),
    ("sdpa_bool_mask_rows_masked_throughout",
     "F.scaled_dot_product_attention(q, k, v, attn_mask=mask)",
     QKV.format(m=24, n=40)[:-1] + ", torch.arange(24)[:, None] % 5 != 0]"),
    ("by_hand_tril_where", "torch.where(torch.tril(torch.ones(40, 40, dtype=torch.bool)), "
     "q @ k.transpose(-2, -1) / 4.0, float('-inf')).softmax(-1) @ v", QKV.format(m=40, n=40)),
    ("by_hand_masked_fill_mask_input", "(q @ k.transpose(-2, -1) * 0.25).masked_fill(mask, "
     "-1e9).softmax(-1) @ v", QKV.format(m=24, n=40)[:-1] + ", torch.rand(2, 1, 24, 40) > 0.7]"),
])
def test_attention_patterns_are_fused_and_correct(pattern, forward, inputs):
    check(attention_problem(forward, inputs))


def test_several_blocks_of_keys_with_ragged_edges():
    """16 x 16 blocks over 40 queries and keys: three blocks each way, the last one partial,
    and the causal diagonal crossing blocks."""
    check(attention_problem("F.scaled_dot_product_attention(q, k, v, is_causal=True)",
                            QKV.format(m=40, n=40)), blocks=(16, 16))


@pytest.mark.parametrize("precision, dot", [("fp32", 'input_precision="ieee"'),  # head dim 32
                                            ("tf32", 'input_precision="tf32"'),
                                            ("bf16", ".to(tl.bfloat16)")])
def test_the_precision_policy_holds_inside_attention(precision, dot):
    problem = small_block(load_problem(SUITE / "level3/02_attention_block.py"))
    source = check(problem, precision=precision)
    assert dot in source.split("_attention(")[1].split("\n\n")[0]


def test_a_softmax_that_is_not_attention_stays_two_gemms():
    """The softmax runs over the queries (dim -2), not the keys: no attention kernel, and the
    result is still correct through the GEMMs and a row kernel."""
    problem = attention_problem("(q @ k.transpose(-2, -1)).softmax(-2) @ v", QKV.format(m=24, n=24))
    made = plan(problem)
    assert "attention" not in [g.kind for g in made.groups]
    assert [g.kind for g in made.groups].count("matmul") == 2
    result = evaluate(made.problem, made.source(), SETTINGS)
    assert result.status == "correct", result.message
