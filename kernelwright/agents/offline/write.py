"""The offline coder's entry point: a problem in, one Triton candidate source out."""

from __future__ import annotations

from dataclasses import dataclass, field

from kernelwright.agents.offline.capture import capture
from kernelwright.agents.offline.emit import KernelConfig, default_config, write_module
from kernelwright.agents.offline.fuse import Group, partition
from kernelwright.agents.offline.ir import Graph, Unsupported
from kernelwright.agents.offline.lower import lower
from kernelwright.problem import Problem
from kernelwright.tools.results import GuardMode, Precision


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

    def source(self, configs: list[KernelConfig] | None = None) -> str:
        configs = configs or self.configs
        kinds = ", ".join(f"{g.kind}{list(g.shape)}" for g in self.groups)
        title = (f"{self.problem.name}: written by kernelwright's offline policy "
                 f"(guard {self.guard}, precision {self.precision}).\n\n"
                 f"Kernels: {kinds}.")
        return write_module(title, self.graph, self.groups, configs, self.param_names,
                            self.buffer_names)


def plan(problem: Problem, precision: Precision = "fp32", guard: GuardMode = "strict") -> Plan:
    """Capture, lower and partition `problem`; raise Unsupported naming what is not covered."""
    captured = capture(problem.module(), precision)
    graph = lower(captured, library=guard == "library")
    groups = partition(graph)
    if all(g.kind == "extern" for g in groups):
        raise Unsupported([g.values[0].op for g in groups],
                          "only vendor calls: nothing around them for a kernel of its own")
    return Plan(problem=problem, precision=precision, guard=guard, graph=graph, groups=groups,
                param_names=captured.param_names, buffer_names=captured.buffer_names,
                configs=[default_config(g) for g in groups])


__all__ = ["Plan", "Unsupported", "plan"]
