"""Accuracy parity measured: each kernel's error against a float64 evaluation of the reference,
over the eager reference's own (tools/correctness.py, `accuracy`), for the kernels that must pass
and the ones that must fail. PARITY_FACTOR is picked from these figures.

    python benchmarks/parity.py [--device cpu|cuda] [--precision fp32 tf32 bf16] [--out FILE]
                                [--problems DIR ...]

Kernels that must pass: the offline writer's default kernel for every problem found (bundled
examples and the test problems), in each precision policy, and the hand-written example
candidates. Kernels that must fail: the GEMM on TF32 operands (tests/adversarial/tf32_emulated.py),
judged here with a loose tolerance so that parity alone decides. One JSON line per kernel, then
the largest ratio of each group.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kernelwright.core.problem import load_problem
from kernelwright.core.results import EvalSettings
from kernelwright.tools.correctness import Parity
from kernelwright.tools.evaluate import evaluate
from kernelwright.writer.ir import Unsupported
from kernelwright.writer.write import plan

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = [ROOT / "examples/problems", ROOT / "tests/adversarial/problems"]


def row(kind: str, problem: Path, precision: str, result) -> dict:  # noqa: ANN001
    ratio = None
    if result.exact_error is not None:  # the judge's own ratio, floored at the rounding unit
        unit = {"bf16": 2.0**-8, "fp16": 2.0**-11}.get(precision, 2.0**-24)
        ratio = Parity(result.exact_error, result.reference_exact_error or 0.0, unit).ratio
    return {"kind": kind, "problem": problem.stem, "precision": precision,
            "status": str(result.status), "reason": result.reason,
            "exact_error": result.exact_error, "reference_error": result.reference_exact_error,
            "ratio": ratio, "max_rel_err": result.max_rel_err, "note": result.parity_note,
            "device": result.device, "wall_s": round(result.wall_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32", "tf32", "bf16"])
    parser.add_argument("--problems", nargs="+", type=Path, default=PROBLEMS)
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []

    def record(r: dict) -> None:
        rows.append(r)
        line = json.dumps(r)
        print(line, flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(line + "\n")

    files = sorted(f for d in args.problems for f in d.rglob("*.py")
                   if not args.only or any(o in f.stem for o in args.only))
    for precision in args.precision:
        settings = EvalSettings(device=args.device, precision=precision, timeout_s=600,
                                compile_baseline=False, reps=50)
        for file in files:
            problem = load_problem(file)
            if args.device == "cpu" and not problem.size_constants():
                continue  # literal sizes (torch.randn(32, 64, 256, 256)): too large to interpret
            started = time.perf_counter()
            try:
                source = plan(problem.shrink(settings.cpu_max_elements) if args.device == "cpu"
                              else problem, precision).source()
            except Unsupported as exc:
                record({"kind": "writer", "problem": file.stem, "precision": precision,
                        "status": "uncovered", "reason": str(exc)[:100]})
                continue
            result = evaluate(problem, source, settings)
            record(row("writer", file, precision, result)
                   | {"write_s": round(time.perf_counter() - started, 1)})
    fp32 = EvalSettings(device=args.device, timeout_s=600, compile_baseline=False, reps=50)
    for cand in sorted((ROOT / "examples/candidates").rglob("*.py")):
        problem = ROOT / "examples/problems" / cand.relative_to(ROOT / "examples/candidates")
        if not args.only or any(o in cand.stem for o in args.only):
            record(row("example", problem, "fp32", evaluate(problem, cand.read_text(), fp32)))
    deep = ROOT / "tests/adversarial/problems/mm_deep.py"
    for name, kind in (("tf32x3_split", "must pass"), ("tf32_emulated", "must fail")):
        loose = fp32.model_copy(update={"tolerance": 1e-2})
        record(row(kind, deep, "fp32", evaluate(deep, (ROOT / f"tests/adversarial/{name}.py")
                                                .read_text(), loose)) | {"candidate": name})
    passing = [r["ratio"] for r in rows if r.get("ratio") is not None and r["kind"] != "must fail"]
    failing = [r["ratio"] for r in rows if r.get("ratio") is not None and r["kind"] == "must fail"]
    print(f"kernels that must pass: {len(passing)}, largest ratio {max(passing, default=0):.3g}; "
          f"must fail: smallest ratio {min(failing, default=0):.3g}", file=sys.stderr)


if __name__ == "__main__":
    main()
