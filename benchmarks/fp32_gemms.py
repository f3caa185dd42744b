"""The fp32 policy's GEMM-dominated problems on the GPU: the writer's kernels through the harness,
with accuracy parity, beside cuBLAS fp32 (eager) and torch.compile, under the new SOL peak.

    python benchmarks/fp32_gemms.py FOLDER... [--out FILE] [--only NAME ...] [--guards strict library]
                                    [--convolutions] [--no-dots]

A problem is GEMM-dominated when matmul-class FLOPs (matmuls, convolutions, attention) are at
least half of its FLOPs (tools/sol.py's counts, on the meta device): a rule, not a list; those
with a convolution only with --convolutions. Per
problem and guard, the offline writer's draft (its default configuration: 3xTF32 dots where K is
long enough) is judged by the harness (evaluate: trials, parity, timed reps, eager, compile, SOL);
in library mode the draft with cuBLAS for its GEMMs is judged too and the faster correct one
counts, as the offline coder does. Then, in this process, the strict kernel's time with each dot
(ieee against tf32x3: what the refiner's search compares) by triton.testing.do_bench.
One JSON line per (problem, guard), appended to --out as it finishes; problems already there are
skipped, so a run resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from kernelwright.agents.coder import offline_plans
from kernelwright.core.problem import load_problem
from kernelwright.core.results import EvalSettings
from kernelwright.tools.build import import_candidate
from kernelwright.tools.evaluate import evaluate
from kernelwright.tools.sol import count_problem
from kernelwright.writer.ir import Unsupported

FIELDS = ("status", "reason", "runtime_us", "eager_us", "compile_us", "speedup_eager",
          "speedup_compile", "sol_fraction", "exact_error", "reference_exact_error", "parity_note",
          "wall_s")


def gemm_dominated(path: Path, convolutions: bool) -> bool:
    """Matmul-class FLOPs at least half the problem's; with a convolution only if asked."""
    module = load_problem(path).module()
    counts = count_problem(module, "fp32")
    if not counts.flops or counts.tensor_flops < counts.flops / 2:
        return False
    with torch.device("meta"):
        model = module.Model(*module.get_init_inputs())
    return convolutions or not any(isinstance(m, torch.nn.modules.conv._ConvNd)
                                   for m in model.modules())


def judged(path: Path, source: str, guard: str) -> dict[str, Any]:
    settings = EvalSettings(device="cuda", guard=guard, precision="fp32", timeout_s=300)
    result = evaluate(path, source, settings)
    row = {k: getattr(result, k) for k in FIELDS}
    row["status"] = str(result.status)
    row["message"] = result.message[:300]
    if result.sol is not None:
        row |= {"floor_us": result.sol.floor_us, "bound": result.sol.bound,
                "matmul_peak_tflops": result.sol.tensor_peak_tflops,
                "matmul_peak": result.sol.tensor_peak_kind}
    return row


def dots(path: Path, made: Any, sweep: list[tuple[int, ...]]) -> dict[str, Any]:
    """The strict kernel with each dot, timed in this process (do_bench medians, us)."""
    import triton.testing

    module = load_problem(path).module()
    init = list(module.get_init_inputs())
    torch.manual_seed(0)
    with torch.device("cuda"):
        ref = module.Model(*init).eval()
        xs = list(module.get_inputs())
    out: dict[str, Any] = {}
    variants = [("ieee", made.configs), ("tf32x3", [replace(c, dot="tf32x3") for c in made.configs])]
    for bm, bn, bk, warps, stages in sweep:  # other 3xTF32 tiles
        variants.append((f"tf32x3_{bm}x{bn}x{bk}w{warps}s{stages}", [
            replace(c, block_r=bm, block_c=bn, block_k=bk, num_warps=warps, num_stages=stages,
                    dot="tf32x3") if c.block_k else c for c in made.configs]))
    for dot, configs in variants:
        cand, _ = import_candidate(made.source(configs), Path(tempfile.mkdtemp()))
        try:
            model = cand.ModelNew(*init).cuda()
            model.load_state_dict(ref.state_dict())
            with torch.no_grad():
                model(*xs)
                out[f"{dot}_us"] = 1e3 * triton.testing.do_bench(lambda m=model: m(*xs),
                                                                 return_mode="median")
        except Exception as exc:  # noqa: BLE001  (recorded; the row goes on)
            out[f"{dot}_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return out


SWEEP = [(64, 128, 32, 4, 4), (128, 64, 32, 4, 4), (64, 64, 32, 4, 3)]  # fewer registers a thread
# --tile-grid: the 3xTF32 tiles, warps and stages searched for a better rate on Hopper
TILE_GRID = [(128, 128, 32, 8, 3), (128, 128, 32, 4, 3), (128, 256, 32, 8, 3), (128, 256, 16, 8, 4),
             (256, 128, 32, 8, 3), (256, 128, 16, 8, 4), (128, 128, 16, 4, 4), (128, 128, 16, 8, 5),
             (64, 256, 32, 4, 3), (128, 128, 64, 8, 2), (128, 256, 32, 8, 2), (64, 128, 32, 4, 5),
             (128, 128, 32, 8, 4), (256, 64, 32, 8, 3), (128, 64, 64, 4, 3), (256, 256, 16, 8, 3)]


def footprint_gib(path: Path) -> float:
    """Inputs, parameters and outputs of one forward (meta device), in GiB."""
    module = load_problem(path).module()
    with torch.device("meta"):
        model = module.Model(*module.get_init_inputs())
        xs = list(module.get_inputs())
        out = model(*xs)
    tensors = [*xs, *model.parameters(), *(out if isinstance(out, tuple) else [out])]
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor)) / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("fp32_gemms.jsonl"))
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--guards", nargs="+", default=["strict", "library"])
    parser.add_argument("--no-dots", action="store_true", help="skip the ieee/tf32x3 timings")
    parser.add_argument("--tile-grid", action="store_true", help="time TILE_GRID's 3xTF32 tiles")
    parser.add_argument("--convolutions", action="store_true", help="problems with convolutions too")
    parser.add_argument("--max-gib", type=float, default=6.0, help="skip problems whose inputs, "
                        "parameters and outputs pass this (the judge's exchange is slow)")
    args = parser.parse_args()
    done = set()
    if args.out.exists():
        done = {(r["problem"], r["guard"]) for r in map(json.loads, args.out.read_text().splitlines())
                if "guard" in r}
    files = sorted(f for d in args.folders for f in d.rglob("*.py")
                   if args.only is None or any(o in f.stem for o in args.only))
    for path in files:
        name = f"{path.parent.name}/{path.stem}"
        if all((name, g) in done for g in args.guards):
            continue
        try:
            if not gemm_dominated(path, args.convolutions):
                continue
            if footprint_gib(path) > args.max_gib:
                print(json.dumps({"problem": name, "skipped": f"footprint {footprint_gib(path):.1f} "
                                  f"GiB > --max-gib {args.max_gib:g}"}), flush=True)
                continue
        except Exception as exc:  # noqa: BLE001
            print(json.dumps({"problem": name, "skipped": f"not counted: {exc}"[:200]}), flush=True)
            continue
        for guard in args.guards:
            if (name, guard) in done:
                continue
            started = time.perf_counter()
            row: dict[str, Any] = {"problem": name, "guard": guard}
            try:
                plans = offline_plans(load_problem(path), "fp32", guard)
            except Unsupported as exc:
                row |= {"status": "uncovered", "reason": str(exc)[:200]}
                plans = []
            for label, made in plans:
                key = "vendor" if label == "vendor GEMMs" else "own"
                row[key] = judged(path, made.source(), guard)
                row[f"{key}_kernels"] = made.groups and [
                    f"{g.kind} {made.describe(i, c)}" for i, (g, c) in
                    enumerate(zip(made.groups, made.configs, strict=True))]
                if key == "own" and guard == "strict" and not args.no_dots:
                    row |= dots(path, made, TILE_GRID if args.tile_grid else SWEEP)
            row["wall_s"] = round(time.perf_counter() - started, 1)
            line = json.dumps(row)
            print(line, flush=True)
            with args.out.open("a") as f:
                f.write(line + "\n")
            torch.cuda.empty_cache()
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
