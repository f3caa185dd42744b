"""The transpose kind against the plain pointwise kernel it replaces, on the GPU.

    python benchmarks/transpose_kind.py [--size 8192]

`y = x.t() * 2 + 1` over an N x N fp32 matrix: the writer's transpose kind (2-D tiles), the same
group written as a 1-D pointwise kernel (what the writer did before the kind existed), eager and
torch.compile; Triton's do_bench median, and the bandwidth each reaches (8 N^2 bytes moved).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import tempfile
from pathlib import Path

import torch
import triton.testing

from kernelwright.core.problem import parse_problem
from kernelwright.writer.schedule import flat_default
from kernelwright.writer.write import plan

PROBLEM = """\
import torch
import torch.nn as nn

N = {n}

class Model(nn.Module):
    def forward(self, x):
        return x.t() * 2 + 1

def get_inputs():
    return [torch.randn(N, N)]

def get_init_inputs():
    return []
"""


def load(source: str, name: str):  # type: ignore[no-untyped-def]
    folder = Path(tempfile.mkdtemp())
    (folder / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder))  # Triton reads a kernel's source from its file
    return importlib.import_module(name).ModelNew().cuda()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=8192)
    n = parser.parse_args().size
    problem = parse_problem(PROBLEM.format(n=n), "transpose.py")
    tiled = plan(problem)
    assert [g.kind for g in tiled.groups] == ["transpose"]
    flat = dataclasses.replace(tiled, groups=[dataclasses.replace(g, kind="pointwise")
                                              for g in tiled.groups])
    flat.configs = [flat_default(g) for g in flat.groups]
    x = torch.randn(n, n, device="cuda")
    reference = problem.module().Model()
    fns = {"transpose kind": load(tiled.source(), "tiled_kernel"),
           "pointwise (1-D)": load(flat.source(), "flat_kernel"),
           "eager": reference, "torch.compile": torch.compile(reference)}
    expected = reference(x)
    out = {}
    for name, fn in fns.items():
        torch.testing.assert_close(fn(x), expected)
        ms = triton.testing.do_bench(lambda fn=fn: fn(x), warmup=50, rep=200)
        out[name] = {"us": round(ms * 1e3, 1), "gbps": round(8 * n * n / (ms * 1e-3) / 1e9)}
    print(json.dumps({"n": n, "device": torch.cuda.get_device_name(), **out}, indent=1))


if __name__ == "__main__":
    main()
