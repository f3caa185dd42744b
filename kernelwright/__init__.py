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
    from kernelwright.api import optimize
    from kernelwright.config import RunConfig
    from kernelwright.core.problem import Problem, load_problem
    from kernelwright.core.records import Result
    from kernelwright.core.results import EvalResult, EvalSettings
    from kernelwright.graph.graph import build_graph
    from kernelwright.tools.evaluate import evaluate

__all__ = ["EvalResult", "EvalSettings", "Problem", "Result", "RunConfig", "build_graph",
           "evaluate", "load_problem", "optimize"]
from kernelwright.core import VERSION as __version__  # noqa: E402, F401  (a constant: nothing runs)

_LAZY = {
    "optimize": "kernelwright.api",
    "Result": "kernelwright.core.records",
    "build_graph": "kernelwright.graph.graph",
    "RunConfig": "kernelwright.config",
    "load_problem": "kernelwright.core.problem",
    "Problem": "kernelwright.core.problem",
    "evaluate": "kernelwright.tools.evaluate",
    "EvalResult": "kernelwright.core.results",
    "EvalSettings": "kernelwright.core.results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kernelwright' has no attribute {name!r}")
