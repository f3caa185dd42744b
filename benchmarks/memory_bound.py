"""Memory-bound problems at KernelBench's sizes on the GPU: the offline writer's draft and its
search space, beside eager and torch.compile, against the bytes floor.

    python benchmarks/memory_bound.py FOLDER... [--out FILE] [--only NAME ...] [--sweep N]
                                      [--gbps 4208]

A problem is memory-bound when matmul-class FLOPs are under half its FLOPs and it has no
convolution (tools/sol.py's counts, on the meta device): a rule, not a list. Per problem, in this
process: the draft's output against the reference's by the harness's tolerance rule
(correctness.compare, fp32 policy), then Triton's do_bench medians of the draft, eager and
torch.compile, and of the first N configurations of each kernel's search space (the others at
their defaults): the measurements the launch heuristics are tuned with. The floor is the bytes
the problem must move (inputs and parameters read once, outputs written once) over --gbps, the
calibrated HBM bandwidth. One JSON line per problem, appended to --out; a run resumes.

In-process checks are not the harness's verdicts (no second process, no timing guards): the
harness judges these problems too slowly at 4-16 GiB (its exchange runs at about 1.5 GB/s).
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
import triton.testing

from kernelwright.core.problem import load_problem
from kernelwright.tools.build import import_candidate
from kernelwright.tools.correctness import Mismatch, as_outputs, compare
from kernelwright.tools.sol import count_problem
from kernelwright.writer.ir import Unsupported
from kernelwright.writer.kinds import config_space
from kernelwright.writer.write import plan


def memory_bound(path: Path) -> tuple[bool, int]:
    """(whether the problem is memory-bound, the bytes it must move)."""
    module = load_problem(path).module()
    counts = count_problem(module, "fp32")
    with torch.device("meta"):
        model = module.Model(*module.get_init_inputs())
    conv = any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())
    return counts.tensor_flops <= counts.flops / 2 and not conv, counts.bytes  # 0 FLOPs too


def bench(fn: Any) -> float:
    with torch.no_grad():
        return 1e3 * triton.testing.do_bench(fn, return_mode="median")


def measure(path: Path, sweep: int, gbps: float) -> dict[str, Any]:
    bound, nbytes = memory_bound(path)
    row: dict[str, Any] = {"problem": f"{path.parent.name}/{path.stem}", "bytes": nbytes,
                           "floor_us": nbytes / gbps / 1e3}
    if not bound:
        return row | {"skipped": "not memory-bound"}
    module = load_problem(path).module()
    init = list(module.get_init_inputs())
    torch.manual_seed(0)
    with torch.device("cuda"):
        ref = module.Model(*init).eval()
        xs = list(module.get_inputs())
    try:
        made = plan(load_problem(path))
    except Unsupported as exc:
        return row | {"status": "uncovered", "reason": str(exc)[:300]}
    row["kernels"] = [f"{g.kind} {made.describe(i, c)}" for i, (g, c) in
                      enumerate(zip(made.groups, made.configs, strict=True))]

    def build(configs: list) -> Any:
        module, _ = import_candidate(made.source(configs), Path(tempfile.mkdtemp()))
        model = module.ModelNew(*init).cuda()
        model.load_state_dict(ref.state_dict())
        return model

    with torch.no_grad():
        expected = as_outputs(ref(*xs))
        draft = build(made.configs)
        try:
            stats = compare(as_outputs(draft(*xs)), expected, 1e-4)
            row |= {"status": "correct", "max_rel": stats.max_rel}
        except Mismatch as exc:
            row |= {"status": "incorrect", "reason": str(exc)[:300]}
        del expected
    row["draft_us"] = bench(lambda: draft(*xs))
    row["eager_us"] = bench(lambda: ref(*xs))
    compiled = torch.compile(ref)
    with torch.no_grad():
        compiled(*xs)
    row["compile_us"] = bench(lambda: compiled(*xs))
    row["space"] = {}
    for i, group in enumerate(made.groups):
        for cfg in config_space(group)[:sweep]:
            configs = list(made.configs)
            configs[i] = cfg
            key = f"{i} {group.kind} {made.describe(i, cfg)}"
            try:
                model = build(configs)
                row["space"][key] = bench(lambda m=model: m(*xs))
            except Exception as exc:  # noqa: BLE001  (recorded; the sweep goes on)
                row["space"][key] = f"{type(exc).__name__}: {str(exc)[:120]}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("memory_bound.jsonl"))
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--sweep", type=int, default=8, help="configurations per kernel")
    parser.add_argument("--gbps", type=float, default=4208.0, help="calibrated HBM bandwidth")
    args = parser.parse_args()
    done = set()
    if args.out.exists():
        done = {json.loads(r)["problem"] for r in args.out.read_text().splitlines()}
    files = sorted(f for d in args.folders for f in d.glob("*.py")
                   if args.only is None or any(o in f.stem for o in args.only))
    for path in files:
        if f"{path.parent.name}/{path.stem}" in done:
            continue
        started = time.perf_counter()
        try:
            row = measure(path, args.sweep, args.gbps)
        except Exception as exc:  # noqa: BLE001  (recorded; the bench goes on)
            row = {"problem": f"{path.parent.name}/{path.stem}",
                   "status": "error", "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}
        row["wall_s"] = round(time.perf_counter() - started, 1)
        if "skipped" not in row:
            print(json.dumps(row), flush=True)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
        torch.cuda.empty_cache()
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
