"""Evaluate every bundled example on the GPU at full size, with the torch.compile baseline.

Run on a GPU machine from the repo root:
    python benchmarks/gpu_harness.py --out benchmarks/results
Writes harness-<date>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from corpus import do_bench_median_us, example_pairs  # noqa: E402

from kernelwright.core.results import EvalSettings  # noqa: E402
from kernelwright.tools.evaluate import evaluate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results, do_bench = [], []
    for problem, candidate in example_pairs():
        result = evaluate(problem, candidate.read_text(), EvalSettings(precision=args.precision))
        results.append(result)
        do_bench.append(do_bench_median_us(problem, candidate) if result.ok else None)
        print(f"{candidate.stem}: {result.status} {result.runtime_us}", flush=True)
    today = datetime.date.today().isoformat()
    first = results[0]
    meta = {"date": today, "device": first.device, "torch": first.torch_version,
            "triton": first.triton_version, "python": platform.python_version(),
            "precision": args.precision, "command": "python benchmarks/gpu_harness.py"}
    (args.out / f"harness-{today}.json").write_text(json.dumps(
        {"meta": meta, "results": [r.model_dump(mode="json") for r in results],
         "do_bench_median_us": do_bench}, indent=2))
    print(f"\n{meta}\n")
    print("| problem | status | candidate us | do_bench us | eager us | compile us | vs eager "
          "| vs compile | own kernels |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r, db in zip(results, do_bench, strict=True):
        f = lambda v, u="": "-" if v is None else f"{v:.1f}{u}" if u != "x" else f"{v:.2f}x"
        own = "-" if r.own_kernel_fraction is None else f"{r.own_kernel_fraction:.0%}"
        print(f"| {r.problem} | {r.status.value} | {f(r.runtime_us)} | {f(db)} | {f(r.eager_us)} | "
              f"{f(r.compile_us)} | {f(r.speedup_eager, 'x')} | {f(r.speedup_compile, 'x')} | {own} |")


if __name__ == "__main__":
    main()
