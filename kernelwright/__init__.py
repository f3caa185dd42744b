"""kernelwright: agents that write fast, verified GPU kernels for PyTorch modules.

Public API (imported lazily; nothing runs at import time):
    optimize(problem_path, RunConfig())         run the agent graph -> Result (best, tree, stop)
    build_graph(checkpointer=None)              the compiled LangGraph state machine
    load_problem(path)                          a KernelBench-format problem
    evaluate(problem, candidate_source, settings) the trustworthy harness -> EvalResult
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernelwright.config import RunConfig
    from kernelwright.graph.graph import build_graph
    from kernelwright.graph.run import Result, optimize
    from kernelwright.problem import Problem, load_problem
    from kernelwright.tools.evaluate import evaluate
    from kernelwright.tools.results import EvalResult, EvalSettings

__all__ = ["EvalResult", "EvalSettings", "Problem", "Result", "RunConfig", "build_graph",
           "evaluate", "load_problem", "optimize"]
__version__ = "0.1.0"

_LAZY = {
    "optimize": "kernelwright.graph.run",
    "Result": "kernelwright.graph.run",
    "build_graph": "kernelwright.graph.graph",
    "RunConfig": "kernelwright.config",
    "load_problem": "kernelwright.problem",
    "Problem": "kernelwright.problem",
    "evaluate": "kernelwright.tools.evaluate",
    "EvalResult": "kernelwright.tools.results",
    "EvalSettings": "kernelwright.tools.results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kernelwright' has no attribute {name!r}")
