"""The offline coder's entry point: a problem in, one candidate source out (Triton, or C++ for
the `cuda` and `cpu` backends: writer/emit_cpp.py)."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from kernelwright.core.problem import Problem
from kernelwright.core.results import Backend, GuardMode, Precision
from kernelwright.writer.capture import capture
from kernelwright.writer.emit import write_module
from kernelwright.writer.emit_cpp import write_cpp_module
from kernelwright.writer.fuse import partition
from kernelwright.writer.ir import Graph, Group, Unsupported
from kernelwright.writer.kinds import classify, default_config, describe, kind_of, safe_config
from kernelwright.writer.lower import lower
from kernelwright.writer.schedule import KernelConfig
from kernelwright.writer.sizes import InitValue

_WRITING = threading.Lock()


@dataclass
class Plan:
    """What the writer made of a problem: its groups and one configuration per group."""

    problem: Problem
    precision: Precision
    guard: GuardMode
    graph: Graph
    groups: list[Group]
    param_names: list[str]
    buffer_names: set[str]
    configs: list[KernelConfig] = field(default_factory=list)
    backend: Backend = "triton"
    init_inputs: list[Any] = field(default_factory=list)  # get_init_inputs(): what it was written for
    init_taken: set[int] = field(default_factory=set)  # constructor arguments the kernels take
    # at run time (InitValue); the others they were written for

    def source(self, configs: list[KernelConfig] | None = None) -> str:
        with _WRITING:  # writing records guards in the plan's shape environment, shared by
            return self._source(configs or self.configs)  # the run's coders (threads)

    def _source(self, configs: list[KernelConfig]) -> str:
        kinds = ", ".join(f"{g.kind}{list(g.shape)}" for g in self.groups)
        title = (f"{self.problem.name}: written by kernelwright's offline policy "
                 f"(guard {self.guard}, precision {self.precision}).\n\n"
                 f"Kernels: {kinds}.")
        if self.backend == "triton":
            return write_module(title, self.graph, self.groups, configs, self.param_names,
                                self.buffer_names, self.precision, self.init_inputs,
                                self.init_taken)
        return write_cpp_module(title, self.graph, self.groups, configs, self.param_names,
                                self.buffer_names, self.backend, self.init_inputs,
                                self.init_taken)

    def safe_configs(self) -> list[KernelConfig]:
        """Every kernel at its kind's safest configuration (a repair after a wrong answer)."""
        return [safe_config(g, self.backend) for g in self.groups]

    def describe(self, index: int, config: KernelConfig) -> str:
        """One kernel's configuration in words."""
        return describe(self.groups[index], config, self.backend)


def plan(problem: Problem, precision: Precision = "fp32", guard: GuardMode = "strict",
         backend: Backend = "triton") -> Plan:
    """Capture, lower and partition `problem`; raise Unsupported naming what is not covered.

    A problem is traced and lowered once: the plan is cached by its source, sizes and settings
    (every coder, repair and memory signature of a run asks for the same plan), and each caller
    gets its own copy of the configurations (the search replaces them)."""
    made = _cached_plan(problem.source, tuple(sorted(problem.size_overrides.items())), problem.path,
                        precision, guard, backend)
    if isinstance(made, Unsupported):
        raise made
    return replace(made, configs=list(made.configs))


@functools.lru_cache(maxsize=64)
def _cached_plan(source: str, sizes: tuple[tuple[str, int], ...], path: str, precision: Precision,
                 guard: GuardMode, backend: Backend) -> Plan | Unsupported:
    try:
        return _plan(Problem(path, source, dict(sizes)), precision, guard, backend)
    except Unsupported as exc:  # an uncovered problem is not traced again either
        return exc


def _plan(problem: Problem, precision: Precision, guard: GuardMode, backend: Backend) -> Plan:
    module = problem.module()
    captured = capture(module, precision)
    graph = lower(captured, library=guard == "library")
    renumber(graph)
    taken = init_values(graph, module, captured.init_inputs, precision, guard)
    groups = partition(graph)
    for g in groups:  # specialised kinds (writer/kinds/) take the groups they claim
        g.kind = classify(g, backend)
    if all(kind_of(g).writer.vendor for g in groups):
        raise Unsupported([g.values[0].op for g in groups],
                          "only vendor calls: nothing around them for a kernel of its own")
    configs = [default_config(g, backend) for g in groups]
    made = Plan(problem=problem, precision=precision, guard=guard, graph=graph, groups=groups,
                param_names=captured.param_names, buffer_names=captured.buffer_names,
                configs=configs, backend=backend, init_inputs=captured.init_inputs,
                init_taken=taken)
    if backend != "triton":
        made.source()  # what the C++ writer cannot do (Unsupported) shows now, not at evaluation
    return made


def init_values(graph: Graph, module: Any, init: list[Any], precision: Precision,
                guard: GuardMode) -> set[int]:
    """Make the graph's constants that are float constructor arguments themselves (`x *
    self.scale`) InitValues, so the kernels take them at run time; the indices of those
    arguments. Each float argument is traced again at another value: the constants that moved
    from it to exactly the new value are it. An argument that moved anything else (a constant
    computed from it, a shape) stays one the kernels were written for."""
    taken: set[int] = set()
    values = graph.every_value()
    for i, value in enumerate(init):
        if type(value) is not float:
            continue
        other = value * 1.7 + 0.31  # any other value: the constants that follow it move
        moved = lower(capture(module, precision, [*init[:i], other, *init[i + 1:]]),
                      library=guard == "library")
        again = moved.every_value()
        if [(v.kind, v.op, repr(v.shape)) for v in values] != \
                [(v.kind, v.op, repr(v.shape)) for v in again]:
            continue  # it changes the graph itself
        pairs = [(v, w.scalar) for v, w in zip(values, again, strict=True)
                 if repr(v.scalar) != repr(w.scalar)]  # (sizes of two traces: compared as text)
        if pairs and all(type(v.scalar) is float and v.scalar == value and new == other
                         for v, new in pairs):
            for v, _ in pairs:
                v.scalar = InitValue(i)
            taken.add(i)
    return taken


def renumber(graph: Graph) -> None:
    """Number the values 0, 1, ... in graph order, so the same problem always gives the same
    names in the source (the C++ backends then reuse one build across configurations)."""
    numbered: set[int] = set()
    for v in graph.inputs + graph.topo():
        if id(v) not in numbered:
            v.id = len(numbered)
            numbered.add(id(v))


__all__ = ["Plan", "Unsupported", "plan"]
