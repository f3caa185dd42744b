"""`kernelwright analyze` over a suite, checked against an independent triton do_bench.

Run on a GPU machine from the repo root (after `kernelwright hw calibrate`):
    python benchmarks/analyze_suite.py --out OUT examples/problems/level1 ...
writes OUT/<level>__<problem>.json per problem as it goes (nothing lost if a later one fails);
    python benchmarks/analyze_suite.py --report OUT > benchmarks/analyze-h100.md
turns those files into the Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path


def independent_us(problem_path: Path, precision: str) -> dict[str, float | None]:
    """Eager and torch.compile medians from triton.testing.do_bench (L2 flushed by it)."""
    import torch
    import triton.testing

    from kernelwright.core.precision import apply_policy, prepare_inputs, prepare_module
    from kernelwright.core.problem import load_problem

    apply_policy(precision)  # type: ignore[arg-type]
    problem = load_problem(problem_path)
    module = problem.module()
    torch.manual_seed(0)
    device = torch.device("cuda")
    model = prepare_module(module.Model(*problem.init_inputs(module)), precision, device)  # type: ignore[arg-type]
    inputs = prepare_inputs(list(module.get_inputs()), precision, device)  # type: ignore[arg-type]
    out: dict[str, float | None] = {}
    with torch.no_grad():
        for name, fn in (("eager", model), ("compile", torch.compile(model))):
            try:
                out[name] = 1e3 * triton.testing.do_bench(lambda f=fn: f(*inputs), warmup=25,
                                                          rep=200, return_mode="median")
            except Exception as exc:  # noqa: BLE001 - report, keep going
                print(f"do_bench {name} failed for {problem_path}: {exc}")
                out[name] = None
    return out


def measure(args: argparse.Namespace) -> None:
    from kernelwright.core.problem import load_problem
    from kernelwright.tools.analyze import analyze

    args.out.mkdir(parents=True, exist_ok=True)
    files = [f for p in args.problems for f in (sorted(p.rglob("*.py")) if p.is_dir() else [p])]
    for file in files:
        label = f"{file.parent.name}/{file.stem}"
        analysis = analyze(load_problem(file), args.precision)
        check = independent_us(file, args.precision)
        record = {"label": label, "analysis": analysis.model_dump(mode="json"),
                  "do_bench_us": check, "date": datetime.date.today().isoformat(),
                  "python": platform.python_version()}
        (args.out / f"{label.replace('/', '__')}.json").write_text(json.dumps(record, indent=2))
        print(f"{label}: eager {analysis.eager_us} / {check['eager']}, compile "
              f"{analysis.compile_us} / {check['compile']}, floor "
              f"{analysis.sol.floor_us if analysis.sol else None}", flush=True)


def report(folder: Path) -> None:
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    first = records[0]["analysis"]
    sol = first["sol"]
    print(f"# `kernelwright analyze` on {first['device']}\n")
    print(f"{records[0]['date']}, torch {first['torch_version']}, triton {first['triton_version']}, "
          f"Python {records[0]['python']}; precision `{first['precision']}` (TF32 off on both "
          f"sides); profile `{sol['profile']}` ({'calibrated' if sol['calibrated'] else 'datasheet'}"
          f": {sol['bandwidth_gbps']:.0f} GB/s, FP32 {sol['vector_peak_tflops']:.1f} TFLOP/s).\n")
    print("Times in microseconds, medians. `db` columns: an independent "
          "`triton.testing.do_bench(..., return_mode=\"median\")` of the same module in another "
          "process; `diff` = harness / do_bench - 1. Headroom = compile / floor.\n")
    print("| problem | eager | eager db | diff | compile | compile db | diff | GFLOP | MB | "
          "floor | bound | headroom |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    worst = 0.0
    for rec in records:
        a, db = rec["analysis"], rec["do_bench_us"]
        diffs = []
        cells = [rec["label"]]
        for ours, theirs in ((a["eager_us"], db["eager"]), (a["compile_us"], db["compile"])):
            diff = ours / theirs - 1 if ours and theirs else None
            diffs.append(diff)
            cells += [_f(ours), _f(theirs), "-" if diff is None else f"{diff:+.1%}"]
        worst = max([worst] + [abs(d) for d in diffs if d is not None])
        s = a["sol"]
        cells += [f"{a['flops'] / 1e9:.3g}", f"{a['bytes'] / 1e6:.4g}", _f(s["floor_us"]),
                  s["bound"], "-" if a["headroom"] is None else f"{a['headroom']:.2f}x"]
        print("| " + " | ".join(cells) + " |")
    print(f"\nLargest harness vs do_bench disagreement: {worst:.1%}.")


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("problems", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/analyze"))
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--report", type=Path, help="print the Markdown table of a results folder")
    args = parser.parse_args()
    if args.report:
        report(args.report)
    else:
        measure(args)


if __name__ == "__main__":
    main()
