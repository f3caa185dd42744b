"""Where an evaluation's time goes at KernelBench's real sizes (GPU): the judge-candidate data
path, the comparison, the reference, the candidate and torch.compile, each timed alone.

    python benchmarks/realsize_phases.py PROBLEM.py [--out FILE.json]

The judge passes inputs to the candidate's process, and outputs back, by value through a sealed
memfd (tools/exchange.py); an evaluation moves them several times (trials, sequence checks).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from kernelwright.core.problem import load_problem
from kernelwright.tools import exchange
from kernelwright.tools.correctness import compare
from kernelwright.writer.write import plan


def timed(fn, *args):  # type: ignore[no-untyped-def]
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn(*args)
    torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("problem", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    problem = load_problem(args.problem)
    module = problem.module()
    with torch.device("cuda"):
        inputs = list(module.get_inputs())
        reference = module.Model(*module.get_init_inputs())
    gib = sum(t.numel() * t.element_size() for t in inputs) / 2**30
    phases: dict[str, float] = {"input_gib": round(gib, 2)}
    with torch.no_grad():
        ref, phases["reference_s"] = timed(reference, *inputs)
        ref, phases["reference_again_s"] = timed(reference, *inputs)
    folder = Path(tempfile.mkdtemp())
    (folder / "candidate_phases.py").write_text(plan(problem, guard="library").source())
    sys.path.insert(0, str(folder))  # Triton reads a kernel's source from its file
    model = importlib.import_module("candidate_phases").ModelNew().cuda()
    out, phases["candidate_first_s"] = timed(model, *inputs)
    out, phases["candidate_s"] = timed(model, *inputs)
    _, phases["compare_s"] = timed(compare, [out], [ref], 1e-4)
    fd = exchange.create(exchange.nbytes(inputs))
    slots, phases["exchange_write_inputs_s"] = timed(exchange.write, fd, inputs)
    _, phases["exchange_read_inputs_s"] = timed(exchange.read, fd, slots, "cuda")
    compiled = torch.compile(reference)
    with torch.no_grad():
        _, phases["compile_first_call_s"] = timed(compiled, *inputs)
        _, phases["compile_call_s"] = timed(compiled, *inputs)
    print(json.dumps({"problem": problem.name, **phases}, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"problem": problem.name, **phases}, indent=1))


if __name__ == "__main__":
    main()
