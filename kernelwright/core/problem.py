"""A KernelBench-format problem: `class Model`, `get_inputs()`, `get_init_inputs()`.

Problems are kept as source text and executed afresh in each process that needs them, so a
worker never shares module state with the caller. For the Triton interpreter, which costs about
a microsecond per element, `shrink` rescales the module-level integer sizes (`batch_size = 4096`)
until the inputs fit a budget; everything computed from them follows because the module is
executed again with the new values.
"""

from __future__ import annotations

import ast
import importlib.util
import operator
import tempfile
import threading
import types
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kernelwright.core.errors import ProblemError

_FIX_FORMAT = (
    "a KernelBench problem defines `class Model(nn.Module)`, `get_inputs()` returning a list of "
    "tensors, and `get_init_inputs()` returning the constructor arguments"
)


_PARSING = threading.Lock()


def parse_python(source: str, filename: str = "<unknown>", mode: str = "exec") -> Any:
    """`ast.parse`, one thread at a time: CPython before 3.11.8 and 3.12.1 fails with "AST
    constructor recursion depth mismatch" when threads parse at once (gh-106905), and the
    graph's fan-out codes candidates in threads."""
    with _PARSING:
        return ast.parse(source, filename=filename, mode=mode)


@dataclass(frozen=True)
class Problem:
    """A problem's source and the size overrides applied when it is executed."""

    path: str
    source: str
    size_overrides: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.path).stem

    def module(self, workdir: str | None = None) -> types.ModuleType:
        """Execute the problem (with its size overrides) as a fresh, unregistered module."""
        if workdir is None:
            with tempfile.TemporaryDirectory(prefix="kw-problem-") as tmp:
                return self.module(tmp)
        source = _apply_overrides(self.source, self.size_overrides)
        file = Path(workdir) / f"{self.name}.py"
        file.write_text(source)
        spec = importlib.util.spec_from_file_location(f"kw_reference_{abs(hash(source))}", file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ProblemError(
                f"{self.path}: running the file raised {type(exc).__name__}: {exc}. "
                "Fix: the file must run on its own with only torch installed."
            ) from None
        return module

    def init_inputs(self, module: types.ModuleType) -> list[Any]:
        return list(module.get_init_inputs()) if hasattr(module, "get_init_inputs") else []

    def check_runs(self) -> None:
        """ProblemError (naming the file) unless the reference runs on its own inputs: on the
        meta device first (shapes only, free at any size), then, if meta cannot run it, for
        real on the CPU at a small size."""
        import torch

        module = self.module()
        try:
            with torch.device("meta"), torch.no_grad():
                module.Model(*self.init_inputs(module))(*module.get_inputs())
            return
        except Exception:  # noqa: BLE001  (some ops have no meta kernel: try for real below)
            pass
        small = self.shrink(1 << 16) if self.size_constants() else self
        module = small.module()
        try:
            with torch.no_grad():
                torch.manual_seed(0)
                module.Model(*small.init_inputs(module))(*module.get_inputs())
        except Exception as exc:
            raise ProblemError(
                f"{self.path}: the reference itself fails: Model(*get_init_inputs()) on "
                f"get_inputs() raised {type(exc).__name__}: {str(exc)[:400]}. Fix: make the "
                "problem's Model run on its own inputs (no candidate was written or judged)."
            ) from None

    def size_constants(self) -> dict[str, int]:
        """Module-level `NAME = <int>` assignments: the sizes `shrink` may scale."""
        return _int_constants(self.source)

    def shrink(self, max_elements: int) -> Problem:
        """Halve the largest module-level size until the inputs hold at most `max_elements`."""
        original = self.size_constants()
        sizes = dict(original)
        current = self
        while _input_elements(current) > max_elements:
            movable = {k: v for k, v in sizes.items() if v >= 4}
            if not movable:
                break
            name = max(movable, key=lambda k: movable[k])
            sizes[name] = movable[name] // 2
            trial = replace(self, size_overrides={k: v for k, v in sizes.items() if v != original[k]})
            try:
                _validate(trial)
            except ProblemError:  # the sizes are tied by an assert or divisibility: stop here
                break
            current = trial
        return current


    def second_size(self) -> Problem | None:
        """The same problem at other sizes, for a second correctness check on the CPU: every
        size that the constructor's arguments do not depend on is halved (where the problem
        still validates), so a kernel with one shape baked in cannot pass both. None when no
        size can move."""
        sizes = {**self.size_constants(), **self.size_overrides}
        init = repr(self.init_inputs(self.module()))
        moved = dict(self.size_overrides)
        for name in sorted(sizes):
            if sizes[name] < 4:
                continue
            trial = replace(self, size_overrides={**moved, name: sizes[name] // 2})
            try:
                _validate(trial)
                if repr(trial.init_inputs(trial.module())) != init:
                    continue  # a constructor argument: the kernels may be written for it
            except ProblemError:
                continue
            moved = trial.size_overrides
        return replace(self, size_overrides=moved) if moved != self.size_overrides else None


def load_problem(path: str | Path) -> Problem:
    """Read and check a KernelBench-format problem file; raise ProblemError with the fix."""
    file = Path(path)
    if not file.is_file():
        hint = "it is a folder; name a .py file inside it" if file.is_dir() else "check the path"
        raise ProblemError(f"{file}: problem file not found. Fix: {hint}.")
    try:
        source = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProblemError(f"{file}: cannot read the file ({exc}). Fix: {_FIX_FORMAT}.") from None
    return parse_problem(source, str(file))


def parse_problem(source: str, path: str) -> Problem:
    """Check a problem given as source text (`path` names it in messages and results)."""
    try:
        parse_python(source, filename=path)
    except SyntaxError as exc:
        raise ProblemError(
            f"{path}:{exc.lineno}: syntax error: {exc.msg}. Fix: the problem must be valid Python."
        ) from None
    problem = Problem(path=path, source=source)
    _validate(problem)
    return problem


def _validate(problem: Problem) -> None:
    """Execute the problem once: Model, get_inputs and the constructor must work. Inputs are
    made on the meta device (no memory at any size: KernelBench's reach 16 GiB), for real only
    where meta cannot make them."""
    import torch

    module = problem.module()
    where = problem.path
    model_cls = getattr(module, "Model", None)
    if not isinstance(model_cls, type) or not issubclass(model_cls, torch.nn.Module):
        raise ProblemError(f"{where}: no `class Model(nn.Module)` found. Fix: {_FIX_FORMAT}.")
    if not callable(getattr(module, "get_inputs", None)):
        raise ProblemError(f"{where}: no `get_inputs()` function. Fix: {_FIX_FORMAT}.")
    try:
        with torch.device("meta"):
            inputs = module.get_inputs()
    except Exception:  # noqa: BLE001  (a get_inputs that needs real values: made below)
        inputs = None
    try:
        inputs = module.get_inputs() if inputs is None else inputs
    except Exception as exc:
        raise ProblemError(
            f"{where}: get_inputs() raised {type(exc).__name__}: {exc}. Fix: {_FIX_FORMAT}."
        ) from None
    if not isinstance(inputs, list | tuple) or not any(isinstance(t, torch.Tensor) for t in inputs):
        raise ProblemError(
            f"{where}: get_inputs() returned {type(inputs).__name__} with no tensors. "
            f"Fix: return a list holding at least one tensor, e.g. [torch.randn(16, 16)]."
        )
    if hasattr(module, "get_init_inputs") and not callable(module.get_init_inputs):
        raise ProblemError(f"{where}: get_init_inputs is not a function. Fix: {_FIX_FORMAT}.")
    try:
        init = problem.init_inputs(module)
        model_cls(*init)
    except Exception as exc:
        raise ProblemError(
            f"{where}: Model(*get_init_inputs()) raised {type(exc).__name__}: {exc}. "
            "Fix: make get_init_inputs() return the arguments Model's constructor takes."
        ) from None


def _input_elements(problem: Problem) -> int:
    import torch

    module = problem.module()
    try:
        with torch.device("meta"):  # sizes only: no data is made
            inputs = module.get_inputs()
    except (RuntimeError, NotImplementedError, TypeError):
        inputs = module.get_inputs()
    return sum(t.numel() for t in inputs if isinstance(t, torch.Tensor))


def _int_constants(source: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for node in parse_python(source).body:
        for name, value in _int_assignments(node):
            sizes[name] = value
    return sizes


def _int_assignments(node: ast.stmt) -> list[tuple[str, int]]:
    """`N = 4096`, `N = 2048 * 2` and `a, b = 16, 512` at module level: (name, value) pairs.
    A value is an integer literal or arithmetic on them (KernelBench writes many sizes so)."""
    if not isinstance(node, ast.Assign) or len(node.targets) != 1:
        return []
    target, value = node.targets[0], node.value
    if isinstance(target, ast.Name):
        number = _int_value(value)
        return [] if number is None else [(target.id, number)]
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and \
            len(target.elts) == len(value.elts):
        pairs = [(t.id, n) for t, n in zip(target.elts, map(_int_value, value.elts), strict=True)
                 if isinstance(t, ast.Name) and n is not None]
        return pairs if len(pairs) == len(target.elts) else []
    return []


INT_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.LShift: operator.lshift, ast.Pow: operator.pow}


def _int_value(node: ast.expr) -> int | None:
    """The value of an integer literal or of arithmetic on literals (no names), else None."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in INT_OPS:
        left, right = _int_value(node.left), _int_value(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Pow | ast.LShift) and not 0 <= right < 64 or \
                isinstance(node.op, ast.FloorDiv) and right == 0:
            return None
        return int(INT_OPS[type(node.op)](left, right))
    return None


def _apply_overrides(source: str, overrides: dict[str, int]) -> str:
    """Rewrite `NAME = <int>` (and tuple forms) at module level; line numbers are kept."""
    lines = source.splitlines(keepends=True)
    for node in parse_python(source).body:
        pairs = _int_assignments(node)
        if not pairs or not any(name in overrides for name, _ in pairs) or \
                node.lineno != node.end_lineno:
            continue
        line = lines[node.lineno - 1]
        indent = line[: len(line) - len(line.lstrip())]
        names = ", ".join(name for name, _ in pairs)
        values = ", ".join(str(overrides.get(name, value)) for name, value in pairs)
        lines[node.lineno - 1] = f"{indent}{names} = {values}\n"
    return "".join(lines)
