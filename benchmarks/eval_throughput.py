"""Candidate evaluations per minute through an evaluator (tools/evaluators.py).

The offline writer drafts `--candidates` distinct candidates for one problem (its default and
the launch configurations next to it), and all of them are handed to the evaluator at once,
one thread each, as the graph's evaluate tasks do. The wall time from the first hand-over to
the last verdict gives evaluations per minute. No torch.compile baseline is timed: a run times
it once, not per candidate.

    python benchmarks/eval_throughput.py --candidates 16 --gpus 1 --out results/throughput-1gpu.json
    python benchmarks/eval_throughput.py --candidates 16 --gpus 2 --out results/throughput-2gpu.json
    python benchmarks/eval_throughput.py --candidates 16 --gpus 2 --per-gpu 2
    python benchmarks/eval_throughput.py --candidates 16 --kind ray --gpus 2
"""

from __future__ import annotations

import argparse
import json
import platform
import threading
import time
from pathlib import Path

import torch
import triton

from kernelwright.agents.coder import offline_code
from kernelwright.core.problem import load_problem
from kernelwright.core.results import EvalSettings
from kernelwright.tools.evaluate import resolve_device
from kernelwright.tools.evaluators import EvaluatorConfig, close_all, get_evaluator

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", type=Path,
                        default=ROOT / "examples" / "problems" / "level1" / "03_softmax.py")
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--kind", choices=["local", "ray"], default="local")
    parser.add_argument("--gpus", type=int, default=None)
    parser.add_argument("--per-gpu", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="no GPU: CPU workers")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    problem = load_problem(args.problem)
    device = resolve_device("auto")
    if device == "cpu":
        problem = problem.shrink(1 << 14)
    sources: list[tuple[str, str]] = []
    tried: list[list[dict]] = []
    for _ in range(args.candidates):  # distinct drafts: the default, then its neighbours
        idea = offline_code(problem, "draft", 0, None, tried)
        if idea.source is None:
            break
        tried.append(idea.configs)
        sources.append((idea.change, idea.source))
    config = EvaluatorConfig(kind=args.kind, gpus=args.gpus, per_gpu=args.per_gpu,
                             workers=args.workers)
    evaluator = get_evaluator(config)
    settings = EvalSettings(device=device, compile_baseline=False)
    verdicts: dict[int, dict] = {}

    def run(i: int, source: str) -> None:
        started = time.perf_counter()
        result = evaluator.evaluate(problem, source, settings)
        verdicts[i] = dict(status=result.status.value, runtime_us=result.runtime_us,
                           seconds=time.perf_counter() - started)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i, s)) for i, (_, s) in enumerate(sources)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    close_all()
    per_minute = 60 * len(sources) / wall
    report = dict(
        problem=problem.name, device=torch.cuda.get_device_name() if device == "cuda" else "cpu",
        gpus_visible=torch.cuda.device_count(), evaluator=config.model_dump(),
        slots=evaluator.slots.count, peak_in_flight=evaluator.slots.peak,
        candidates=len(sources), wall_s=wall, evaluations_per_minute=per_minute,
        correct=sum(v["status"] == "correct" for v in verdicts.values()),
        date=time.strftime("%Y-%m-%d"), torch=torch.__version__, triton=triton.__version__,
        python=platform.python_version(),
        evaluations=[dict(change=c, **verdicts[i]) for i, (c, _) in enumerate(sources)])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    print(f"| {report['device']} | {args.kind} | slots {report['slots']} | "
          f"{len(sources)} candidates | {wall:.1f} s | {per_minute:.1f} evaluations/min | "
          f"{report['correct']} correct |")


if __name__ == "__main__":
    main()
