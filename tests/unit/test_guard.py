"""Static guard rules, one by one, including the ones that must not fire."""

import pytest

from kernelwright.tools.guard import check_source

HEAD = """import torch
import torch.nn as nn
import triton
import triton.language as tl

@triton.jit
def k(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=offs < n), mask=offs < n)

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4))  # torch compute in __init__ is allowed

    def forward(self, x):
        y = torch.empty_like(x).view(-1)
        k[(1,)](x, y, x.numel(), BLOCK=1024)
"""


def rules(body, guard="strict", precision="fp32"):
    return {f.rule for f in check_source(HEAD + body, guard, precision, "problem")}


def test_clean_candidate_has_no_findings():
    assert rules("        return y\n") == set()


@pytest.mark.parametrize("body, rule", [
    ("        return y.sum()\n", "torch_compute"),
    ("        return torch.exp(y)\n", "torch_compute"),
    ("        return torch.ops.aten.relu(y)\n", "torch_compute"),
    ("        return y @ y\n", "torch_compute"),
    ("        return torch.compile(lambda t: t)(y)\n", "torch_compute"),
    ("        return y.cpu()\n", "host_compute"),
    ("        return y.half()\n", "precision_downgrade"),
    ("        return y.to(torch.bfloat16)\n", "precision_downgrade"),
    ("        return eval('y')\n", "dynamic_code"),
    ("        setattr(torch, 'relu', None)\n        return y\n", "patching"),
    ("        torch.cuda.synchronize = None\n        return y\n", "patching"),
    ("        import os\n        os.system('true')\n        return y\n", "subprocess"),
    ("        open('problem.py')\n        return y\n", "file_access"),
    ("        return y.__class__.__dict__\n", "introspection"),
    ("        s = torch.cuda.Stream()\n        return y\n", "side_stream"),
    ("        return y.as_subclass(torch.Tensor)\n", "tensor_subclass"),
])
def test_rule_fires(body, rule):
    assert rule in rules(body)


def test_library_mode_allows_gemm_but_not_other_compute():
    assert rules("        return torch.matmul(y, y)\n", guard="library") == set()
    assert "torch_compute" in rules("        return torch.matmul(y, y)\n", guard="strict")
    assert "torch_compute" in rules("        return torch.relu(y)\n", guard="library")


def test_low_precision_is_allowed_under_bf16_policy():
    assert rules("        return y.to(torch.bfloat16)\n", precision="bf16") == set()


def test_tl_dot_must_be_full_precision_under_fp32():
    dot = HEAD.replace("tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=offs < n), mask=offs < n)",
                       "a = tl.load(x_ptr + offs[:, None] + offs[None, :])\n"
                       "    tl.store(y_ptr + offs[:, None] + offs[None, :], tl.dot(a, a{}))")
    assert "precision_downgrade" in {f.rule for f in check_source(dot.format("") + "        return y\n")}
    exact = dot.format(', input_precision="ieee"') + "        return y\n"
    assert check_source(exact) == []
    assert check_source(dot.format("") + "        return y\n", precision="tf32") == []
    # 3xTF32 is fp32-accurate (accuracy parity decides at run time); plain TF32 is refused
    assert check_source(dot.format(', input_precision="tf32x3"') + "        return y\n") == []
    tf32 = dot.format(', input_precision="tf32"') + "        return y\n"
    assert {f.rule for f in check_source(tf32)} == {"precision_downgrade"}
    assert check_source(tf32, precision="tf32") == []


def test_structure_rules():
    assert {f.rule for f in check_source("import torch\n")} == {"no_model_new", "no_kernel"}
    no_launch = HEAD.replace("        k[(1,)](x, y, x.numel(), BLOCK=1024)\n", "") + "        return y\n"
    assert {f.rule for f in check_source(no_launch)} == {"no_kernel"}
    assert check_source("def f(:\n")[0].rule == "syntax_error"


def test_a_python_sets_add_is_not_torch_compute():
    """`.add()` on a set, dict or list the candidate made is allowed; a tensor's is not."""
    kept = ("        seen = set()\n        seen.add(tuple(y.shape))\n        self.shapes = {}\n"
            "        order: list = []\n        order.append(1)\n        return y\n")
    assert rules(kept) == set()
    assert rules("        return y.add(1)\n") == {"torch_compute"}
    assert rules("        seen = set()\n        seen.add(1)\n        return y.add(1)\n") == {"torch_compute"}
