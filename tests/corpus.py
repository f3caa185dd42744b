"""Reads the adversarial corpus: each candidate states its problem and expected verdicts."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

ADVERSARIAL = Path(__file__).parent / "adversarial"
EXAMPLES = Path(__file__).parent.parent / "examples"
SORTED_ROWS = Path(__file__).parent / "problems" / "sorted_rows.py"  # the writer lacks `sort`


@dataclass(frozen=True)
class Case:
    file: Path
    problem: Path
    guard: str
    device: str  # "any", "cpu" or "gpu"
    status: str
    reason: str | None
    gpu_only: bool

    @property
    def id(self) -> str:
        return f"{self.file.stem}[{self.guard},{self.device}]"


def cases() -> list[Case]:
    found = []
    for file in sorted(ADVERSARIAL.glob("*.py")):
        header = file.read_text().split("import", 1)[0]
        problem = re.search(r"# problem: (\w+)", header)
        gpu_only = "# gpu: only" in header
        for m in re.finditer(r"# expect(?:\[(\w+)\])?: (\w+)(?: (\w+))?", header):
            scope = m.group(1) or "any"
            guard = scope if scope in {"strict", "library"} else "strict"
            device = scope if scope in {"cpu", "gpu"} else "any"
            found.append(Case(file, ADVERSARIAL / "problems" / f"{problem.group(1) if problem else 'relu'}.py",
                              guard, device, m.group(2), m.group(3), gpu_only))
    return found


def example_pairs() -> list[tuple[Path, Path]]:
    """(problem, candidate) for every hand-written candidate, e.g. level1/03_softmax.py."""
    candidates = EXAMPLES / "candidates"
    return [(EXAMPLES / "problems" / c.relative_to(candidates), c)
            for c in sorted(candidates.rglob("*.py"))]


def do_bench_median_us(problem_path, candidate_path):
    """Independent timing of a candidate with triton.testing.do_bench (median, microseconds)."""
    import torch
    import triton.testing

    from kernelwright.core.problem import load_problem

    problem = load_problem(problem_path)
    module = problem.module()
    spec = importlib.util.spec_from_file_location("kw_bench_candidate", candidate_path)
    cand = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cand)
    model = cand.ModelNew(*problem.init_inputs(module)).cuda()
    torch.manual_seed(0)
    inputs = [x.cuda() for x in module.get_inputs()]
    with torch.no_grad():
        return 1e3 * triton.testing.do_bench(lambda: model(*inputs), warmup=25, rep=200,
                                             return_mode="median")
