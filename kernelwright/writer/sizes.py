"""Sizes of a captured problem: torch's symbolic integers, rendered as code.

capture.py traces the forward with symbolic shapes, so every size in the IR is an expression
over the sizes of the graph's inputs, and torch's shape environment records every decision
taken on one (a comparison, an `int()`) as a guard. `Size` carries one such expression through
the writer: arithmetic and comparisons go to torch (so a comparison is a recorded guard, never
a silent assumption), and formatting it into a kernel gives code over the launcher's size
arguments (`in2_size0`): the kernel written at one size is the kernel that runs at any other.
The launcher (emit.py) binds those arguments from the input shapes and checks every guard.

Heuristics (tile sizes, splits) read `hint(size)`, the size it was captured at: that records
no guard, because it may change the speed of a kernel, never its answer.
"""

from __future__ import annotations

import re
from typing import Any

import sympy
import torch
from torch.utils._sympy.printers import PythonPrinter

from kernelwright.writer.ir import Unsupported

SIZE_ARG = re.compile(r"\b(?:in\d+_size\d+|init\d+)\b")  # the launcher's size and scalar arguments


class _Printer(PythonPrinter):
    """Python syntax that Triton's JIT and, with `//` as `/`, C++ also read (sizes are never
    negative, so floor division is C's division)."""

    def _print_ToFloat(self, expr: Any) -> str:
        return f"({self._print(expr.args[0])} * 1.0)"

    def _print_FloorDiv(self, expr: Any) -> str:
        """sympy writes a ceiling as a floor of a negation (-16 * (-k // 16)), where C's and
        Triton's truncating `//` differ from Python's floor: written as -ceil(-x / d) instead,
        over a non-negative numerator."""
        x, d = expr.args
        if x.could_extract_minus_sign():
            return f"(-(({self._print(-x)} + {self._print(d - 1)}) // ({self._print(d)})))"
        return f"(({self._print(x)}) // ({self._print(d)}))"


class Size:
    """One size (or a float computed from sizes, as 1/N) of the captured problem."""

    __slots__ = ("sym", "names")

    def __init__(self, sym: torch.SymInt | torch.SymFloat, names: dict[sympy.Symbol, str]):
        self.sym, self.names = sym, names

    # rendering -----------------------------------------------------------------------------
    def code(self) -> str:
        """The expression over the launcher's size arguments."""
        expr = simplified(self.sym)
        unknown = expr.free_symbols - set(self.names)
        if unknown:
            raise Unsupported(["size"], f"a size that no input's shape gives: {expr}")
        return _Printer().doprint(expr.subs({s: sympy.Symbol(n) for s, n in self.names.items()
                                             if s in expr.free_symbols}))

    def __format__(self, spec: str) -> str:
        text = self.code()
        return text if re.fullmatch(r"[\w.]+", text) else f"({text})"

    __str__ = __repr__ = lambda self: format(self)  # noqa: E731

    # arithmetic: torch's, so the results stay expressions ---------------------------------
    def _op(self, other: Any, op: Any) -> Any:
        return wrap(op(self.sym, other.sym if isinstance(other, Size) else other), self.names)

    def __add__(self, o: Any) -> Any: return self._op(o, lambda a, b: a + b)
    def __radd__(self, o: Any) -> Any: return self._op(o, lambda a, b: b + a)
    def __sub__(self, o: Any) -> Any: return self._op(o, lambda a, b: a - b)
    def __rsub__(self, o: Any) -> Any: return self._op(o, lambda a, b: b - a)
    def __mul__(self, o: Any) -> Any: return self._op(o, lambda a, b: a * b)
    def __rmul__(self, o: Any) -> Any: return self._op(o, lambda a, b: b * a)
    def __floordiv__(self, o: Any) -> Any: return self._op(o, lambda a, b: a // b)
    def __rfloordiv__(self, o: Any) -> Any: return self._op(o, lambda a, b: b // a)
    def __mod__(self, o: Any) -> Any: return self._op(o, lambda a, b: a % b)
    def __truediv__(self, o: Any) -> Any: return self._op(o, lambda a, b: a / b)
    def __rtruediv__(self, o: Any) -> Any: return self._op(o, lambda a, b: b / a)
    def __neg__(self) -> Any: return self._op(-1, lambda a, b: a * b)

    # decisions: each one is a guard the launcher checks ------------------------------------
    def _cmp(self, other: Any, op: Any) -> bool:
        return bool(op(self.sym, other.sym if isinstance(other, Size) else other))

    def __eq__(self, o: object) -> bool:
        return isinstance(o, int | float | Size) and self._cmp(o, lambda a, b: a == b)

    def __ne__(self, o: object) -> bool:
        return not self == o

    def __lt__(self, o: Any) -> bool: return self._cmp(o, lambda a, b: a < b)
    def __le__(self, o: Any) -> bool: return self._cmp(o, lambda a, b: a <= b)
    def __gt__(self, o: Any) -> bool: return self._cmp(o, lambda a, b: a > b)
    def __ge__(self, o: Any) -> bool: return self._cmp(o, lambda a, b: a >= b)
    def __bool__(self) -> bool: return self._cmp(0, lambda a, b: a != b)
    def __int__(self) -> int: return int(self.sym)  # specialises: a guard of equality
    __index__ = __int__
    def __float__(self) -> float: return float(self.sym)

    def __hash__(self) -> int:
        return hash(str(simplified(self.sym)))


class InitValue:
    """A float constructor argument the kernels take at run time (`init2`: the third), found
    by writer/write.py where a graph constant is that argument itself."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __format__(self, spec: str) -> str:
        return f"init{self.index}"

    __str__ = __repr__ = lambda self: format(self)  # noqa: E731


def simplified(sym: torch.SymInt | torch.SymFloat) -> sympy.Expr:
    """The expression with the shape environment's substitutions applied (after a guard
    `a == b`, `b` reads as `a`)."""
    node = sym.node
    return node.shape_env.simplify(node.expr)


def wrap(x: Any, names: dict[sympy.Symbol, str]) -> Any:
    """A Size for a symbolic value, a plain number for a constant one (sympy's too)."""
    if isinstance(x, torch.SymInt | torch.SymFloat):
        expr = simplified(x)
        if expr.is_number:
            return int(expr) if isinstance(x, torch.SymInt) else float(expr)
        return Size(x, names)
    if isinstance(x, sympy.Basic) and x.is_number:
        return int(x) if x.is_integer else float(x)
    return x


def hint(x: Any) -> Any:
    """The value a size had when it was captured, without a guard (for heuristics)."""
    if isinstance(x, Size):
        value = x.sym.node.hint
        return int(value) if isinstance(x.sym, torch.SymInt) else float(value)
    if isinstance(x, tuple | list):
        return type(x)(hint(v) for v in x)
    return x


def ceil_div(a: Any, b: Any) -> Any:
    """a / b rounded up, written without a negative floor division: rendered into a kernel,
    `//` truncates in Triton and C++ (sizes are never negative, so this form agrees)."""
    return (a + b - 1) // b


def divides(size: Any, block: int) -> bool:
    """True only when `size` is a constant that `block` divides: a symbolic size is masked,
    whatever it was captured at, so no kernel depends on a divisibility it was not given."""
    return not isinstance(size, Size) and size % block == 0


def size_args(code: str) -> list[str]:
    """The size and scalar arguments a kernel body uses, in order of first use."""
    return list(dict.fromkeys(SIZE_ARG.findall(code)))


def guards(graph: Any) -> list[str]:
    """The conditions torch recorded on the graph's sizes while the kernels were written, as
    code over the launcher's size arguments (those substitution made trivially true dropped)."""
    env = graph.shape_env
    if env is None:
        return []
    out: list[str] = []
    for guard in list(env.guards):
        expr = env.simplify(guard.expr)
        if expr == sympy.true or expr.is_number:
            continue
        if expr.free_symbols - set(graph.size_names):
            raise Unsupported(["size"], f"a condition on a size that no input's shape gives: {expr}")
        text = _Printer().doprint(expr.subs({s: sympy.Symbol(n) for s, n in graph.size_names.items()
                                             if s in expr.free_symbols}))
        if text not in out:
            out.append(text)
    return out
