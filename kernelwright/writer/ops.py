"""The pointwise op vocabulary of the IR: each op's arity and how each backend renders it.

The IR names operations (`exp`, `maximum`, `where`); a backend renders an op by filling its
template with its arguments' names, already rendered. Adding a pointwise primitive is one row
here; an aten op that is a composition of these is one rule in lower.py's RULES.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Op:
    arity: int
    triton: str  # Triton expression over {0}, {1}, ...
    cpp: str  # C++ expression (CUDA device code and host code alike)
    logical: bool = False  # the result is a boolean


def _unary(triton: str, cpp: str) -> Op:
    return Op(1, f"{triton}({{0}})", f"{cpp}({{0}})")


def _compare(symbol: str) -> Op:
    return Op(2, f"{{0}} {symbol} {{1}}", f"({{0}} {symbol} {{1}})", logical=True)


OPS: dict[str, Op] = {
    "copy": Op(1, "{0}", "{0}"),  # a broadcast or a copy into a fresh buffer
    "neg": Op(1, "-{0}", "(-{0})"),
    "add": Op(2, "{0} + {1}", "({0} + {1})"),
    "sub": Op(2, "{0} - {1}", "({0} - {1})"),
    "mul": Op(2, "{0} * {1}", "({0} * {1})"),
    "div": Op(2, "{0} / {1}", "(static_cast<float>({0}) / {1})"),  # true division
    "maximum": Op(2, "tl.maximum({0}, {1})", "fmaxf({0}, {1})"),
    "minimum": Op(2, "tl.minimum({0}, {1})", "fminf({0}, {1})"),
    "where": Op(3, "tl.where({0}, {1}, {2})", "({0} ? {1} : {2})"),
    # torch.remainder: the divisor's sign (Python's %); Triton's % and C's fmod take the dividend's
    "remainder": Op(2, "(({0} % {1}) + {1}) % {1}", "kw_remainder({0}, {1})"),
    "abs": _unary("tl.abs", "fabsf"),
    "exp": _unary("tl.exp", "expf"),
    "exp2": _unary("tl.exp2", "exp2f"),
    "log": _unary("tl.log", "logf"),
    "log2": _unary("tl.log2", "log2f"),
    "sqrt": _unary("tl.sqrt", "sqrtf"),
    "rsqrt": _unary("tl.rsqrt", "kw_rsqrt"),
    "sigmoid": _unary("tl.sigmoid", "kw_sigmoid"),
    "sin": _unary("tl.sin", "sinf"),
    "cos": _unary("tl.cos", "cosf"),
    "erf": _unary("tl.erf", "erff"),
    "floor": _unary("tl.floor", "floorf"),
    "ceil": _unary("tl.ceil", "ceilf"),
    "eq": _compare("=="),
    "ne": _compare("!="),
    "lt": _compare("<"),
    "le": _compare("<="),
    "gt": _compare(">"),
    "ge": _compare(">="),
    "and": Op(2, "({0} != 0) & ({1} != 0)", "(({0} != 0) && ({1} != 0))", logical=True),
    "or": Op(2, "({0} != 0) | ({1} != 0)", "(({0} != 0) || ({1} != 0))", logical=True),
    "not": Op(1, "{0} == 0", "({0} == 0)", logical=True),
}


def triton_literal(x: float | int | bool | None) -> str:
    if not isinstance(x, float | int | bool | None):  # a Size: code over the launcher's sizes
        return f"{x}"
    if isinstance(x, bool):
        return "True" if x else "False"
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
        return 'float("nan")' if math.isnan(x) else 'float("inf")' if x > 0 else '-float("inf")'
    return repr(x)


def cpp_literal(x: float | int | bool | None) -> str:
    if not isinstance(x, float | int | bool | None):  # a Size: code over the launcher's sizes
        return f"{x}"  # (emit_cpp makes its `//` C's `/`)
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        if math.isnan(x):
            return "NAN"
        if math.isinf(x):
            return "INFINITY" if x > 0 else "(-INFINITY)"
        return f"{x!r}f"
    if isinstance(x, int):
        return f"{x}LL" if abs(x) > 2**31 - 1 else str(x)
    raise ValueError(f"no C++ literal for {x!r}")
