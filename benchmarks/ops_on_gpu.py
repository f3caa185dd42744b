"""The offline writer's op coverage on a GPU: every case of tests/unit/test_offline_ops.py (small
problems of irregular sizes, checked on the CPU interpreter in CI) compiled by Triton for the GPU
and compared with the reference in this process: at its default configuration, at the first
configurations of each kernel's search space, and rows looped in chunks of 32.

    python benchmarks/ops_on_gpu.py [--out FILE] [--sweep N] [--only NAME ...] [--device cuda]
                                  [--backend triton|cuda|cpu]

The interpreter runs a kernel's programs one after another in Python: it cannot see what only
the compiler does (32-bit overflow, layouts, truncating integer division, masks that the
compiler vectorises). One JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from kernelwright.core.problem import load_problem
from kernelwright.tools.build import import_candidate
from kernelwright.tools.correctness import Mismatch, as_outputs, compare
from kernelwright.writer.kinds import config_space
from kernelwright.writer.schedule import KernelConfig
from kernelwright.writer.write import plan

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "unit"))
import offline_cases as cases  # noqa: E402  (the cases are the tests')


def check(name: str, forward: str | None, inputs: str, layer: str | None, sweep: int,
          device: str, backend: str) -> dict:
    problem = cases.write_problem(Path(tempfile.mkdtemp()), name, forward, inputs, layer)
    module = problem.module()
    torch.manual_seed(0)
    with torch.device(device):
        ref = module.Model().eval()
        xs = list(module.get_inputs())
    made = plan(load_problem(problem.path), backend=backend)  # type: ignore[arg-type]
    with torch.no_grad():
        expected = as_outputs(ref(*xs))
    row: dict[str, Any] = {"case": name, "kernels": [f"{g.kind} {made.describe(i, c)}" for i, (g, c)
                                                     in enumerate(zip(made.groups, made.configs, strict=True))]}
    variants = [("draft", list(made.configs))]
    for i, group in enumerate(made.groups):
        looped = [KernelConfig(block_r=1, block_c=32, num_warps=4)] if group.kind in {
            "reduction", "scan"} and backend == "triton" else []  # the loops small rows never take
        for cfg in config_space(group)[:sweep] + looped:
            configs = list(made.configs)
            configs[i] = cfg
            variants.append((f"{i} {made.describe(i, cfg)}", configs))
    row["results"] = {}
    for label, configs in variants:
        try:
            built, _ = import_candidate(made.source(configs), Path(tempfile.mkdtemp()))
            model = built.ModelNew().to(device).eval()
            model.load_state_dict(ref.state_dict())
            with torch.no_grad():
                stats = compare(as_outputs(model(*xs)), expected, 1e-4)
            row["results"][label] = f"correct (max rel {stats.max_rel:.2g})"
        except Mismatch as exc:
            row["results"][label] = f"INCORRECT: {str(exc)[:200]}"
        except Exception as exc:  # noqa: BLE001  (recorded; the check goes on)
            row["results"][label] = f"ERROR {type(exc).__name__}: {str(exc)[:200]}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("ops_on_gpu.jsonl"))
    parser.add_argument("--sweep", type=int, default=3, help="configurations per kernel")
    parser.add_argument("--only", nargs="*", default=None, help="cases whose names contain one")
    parser.add_argument("--device", default="cuda", help="cpu: under TRITON_INTERPRET=1")
    parser.add_argument("--backend", default="triton", choices=["triton", "cuda", "cpu"])
    args = parser.parse_args()
    todo = [(n, f, i, None) for n, (f, i) in cases.FORWARDS.items()] + \
        [(n, None, i, m) for n, (m, i) in cases.MODULES.items()]
    todo = [t for t in todo if args.only is None or any(o in t[0] for o in args.only)]
    bad = 0
    for name, forward, inputs, layer in todo:
        started = time.perf_counter()
        try:
            row = check(name, forward, inputs, layer, args.sweep, args.device, args.backend)
        except Exception as exc:  # noqa: BLE001  (recorded; the run goes on)
            row = {"case": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        row["wall_s"] = round(time.perf_counter() - started, 1)
        bad += "error" in row or any(not r.startswith("correct") for r in row["results"].values())
        print(json.dumps(row), flush=True)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
    print(f"done: {len(todo)} cases, {bad} with a wrong or failed variant", file=sys.stderr)


if __name__ == "__main__":
    main()
