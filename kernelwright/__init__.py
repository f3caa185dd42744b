"""kernelwright: agents that write fast, verified GPU kernels for PyTorch modules.

Public API (imported lazily; nothing runs at import time):
    load_problem(path)                          a KernelBench-format problem
    evaluate(problem, candidate_source, settings) the trustworthy harness -> EvalResult
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernelwright.problem import Problem, load_problem
    from kernelwright.tools.evaluate import evaluate
    from kernelwright.tools.results import EvalResult, EvalSettings

__all__ = ["EvalResult", "EvalSettings", "Problem", "evaluate", "load_problem"]
__version__ = "0.1.0"

_LAZY = {
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
