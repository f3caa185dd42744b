"""Emit one readable Triton source for the fusion groups: imports, kernels, launchers, ModelNew.

Each group's kernel is written by its kind's writer (writer/kinds/: pointwise, pool, row
reductions and scans, GEMMs, attention; vendor calls in `library` mode); this module puts them
in one file with the forward that allocates the buffers and launches them, and a ModelNew
holding the reference's parameters. Sizes are arguments (writer/sizes.py): the launcher reads
them off the inputs and checks what the kernels assume of them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from kernelwright.writer.fuse import view_base
from kernelwright.writer.ir import Graph, Group
from kernelwright.writer.kinds import kind_of
from kernelwright.writer.kinds.base import WIDE, tensor_expr
from kernelwright.writer.schedule import KernelConfig
from kernelwright.writer.sizes import guards, hint


def write_module(title: str, graph: Graph, groups: list[Group], configs: list[KernelConfig],
                 param_names: list[str], buffer_names: set[str], precision: str = "fp32",
                 init_inputs: list[Any] | None = None, init_taken: set[int] | None = None) -> str:
    """The candidate source: kernels, launchers, a forward and ModelNew holding the parameters.
    Each group's kernels come from its kind's writer (writer/kinds/)."""
    pointer_of: dict[int, str] = {}
    for v in graph.inputs:
        pointer_of[v.id] = f"in{v.input_index}_ptr"
    for g in groups:
        for v in g.outputs:
            pointer_of[v.id] = f"buf{v.id}_ptr"
    kernels, launches, helpers, partials = [], [], set(), []
    wide = any(hint(v.numel) >= WIDE for v in graph.every_value())
    for i, (g, cfg) in enumerate(zip(groups, configs, strict=True)):
        writer_type = kind_of(g).writer
        if writer_type.vendor:  # `library` mode: the vendor's GEMM or convolution
            launches.append(writer_type(g, "", cfg, pointer_of).launch(precision))
            continue
        if precision != "fp32":  # a configuration's dot choice is the fp32 policy's alone
            cfg = replace(cfg, dot="ieee")
        try:
            stages = writer_type.stages(g, cfg)
        except ValueError as exc:
            raise ValueError(f"kernel{i}: {exc}") from exc
        if len(stages) > 1:  # a split: its partial buffers, keyed -id in pointer_of
            split = writer_type(g, "", cfg, pointer_of)
            for key, allocation in split.partials():
                pointer_of[key] = allocation.split(" = ")[0] + "_ptr"
                partials.append(allocation)
        for stage in stages:
            name = f"kernel{i}_{g.kind}" + ("" if stage.name == "whole" else f"_{stage.name}")
            writer = writer_type(g, name, stage.config, pointer_of, stage.name, stage.grid)
            writer.wide = wide
            body = writer.write(precision)
            helpers |= writer.helpers
            kernels.append("\n".join([f"# {writer.cost(graph)}; {writer_type.describe(cfg)}"]
                                     + body))
            launches.append(writer.launch(precision))
    lines = [f'"""{title}"""', "", "import torch", "import torch.nn as nn", "import triton",
             "import triton.language as tl", "", ""]
    for h in sorted(helpers):
        lines += [h, ""]
    for k in kernels:
        lines += [k, "", ""]
    lines += forward_impl(graph, groups, partials, launches, init_taken, wide)
    lines += ["", ""] + model_class(graph, param_names, buffer_names, init_inputs, init_taken)
    return "\n".join(lines) + "\n"


def forward_impl(graph: Graph, groups: list[Group], partials: list[str], launches: list[str],
                 init_taken: set[int] | None = None, wide: bool = False) -> list[str]:
    """The module's forward_impl: read the sizes off the inputs, check what the kernels assume
    of them, allocate each group's buffers, run the launches. The constructor arguments the
    kernels take at run time (`init2`) come after the inputs. Kernels with 32-bit offsets
    (`wide` False) refuse sizes where a buffer reaches 2^31 elements."""
    n_in = len(graph.inputs)
    names = [f"in{i}" for i in range(n_in)] + [f"init{i}" for i in sorted(init_taken or ())]
    lines = [f"def forward_impl({', '.join(names)}):",
             f'    """Run the {len(groups)} kernel(s); inputs: parameters, then forward arguments."""']
    lines += size_checks(graph)
    lines += [f"    in{v.input_index} = in{v.input_index}.contiguous()" for v in graph.inputs]
    device = "in" + str(graph.n_params if graph.n_params < n_in else 0)
    outs = {view_base(o).id for o in graph.outputs}  # an output's dtype, even through a view
    for g in (g for g in groups if not kind_of(g).writer.vendor):
        for v in g.outputs:
            dtype = v.dtype if v.id in outs or not v.dtype.is_floating_point else torch.float32
            lines.append(f"    buf{v.id} = torch.empty({tuple(v.shape)!r}, device={device}.device, "
                         f"dtype={dtype})")
    lines += ["    " + p.format(device=device) for p in partials]
    if graph.size_names and not wide:
        buffers = [f"in{v.input_index}" for v in graph.inputs] + [
            f"buf{v.id}" for g in groups if not kind_of(g).writer.vendor for v in g.outputs]
        lines += [f"    if max({', '.join(f'{b}.numel()' for b in buffers)}) >= {WIDE}:",
                  '        raise ValueError("these kernels were written with 32-bit offsets, for '
                  'tensors under 2^31 elements; write them for these sizes (kernelwright run at '
                  'them)")']
    lines += launches
    results = [tensor_expr(o) for o in graph.outputs]
    lines.append(f"    return {results[0] if len(results) == 1 else '(' + ', '.join(results) + ')'}")
    return lines


def size_checks(graph: Graph) -> list[str]:
    """Bind the size arguments (`in2_size0 = in2.shape[0]`), then check every input's shape
    against what the kernels were written for and every guard torch recorded while they were
    written (a size the writer specialised on, two sizes it took as equal)."""
    lines, bound = [], set()
    for v in graph.inputs:
        i, name = v.input_index, graph.input_names[v.input_index]
        lines += [f"    if in{i}.dim() != {len(v.shape)}:",
                  f'        raise ValueError(f"{name}: these kernels take {len(v.shape)} dims, '
                  f'got {{in{i}.dim()}}")']
        for d in range(len(v.shape)):
            arg = f"in{i}_size{d}"
            if arg in graph.size_names.values() and arg not in bound:
                bound.add(arg)
                lines.append(f"    {arg} = in{i}.shape[{d}]")
    for v in graph.inputs:
        i, name = v.input_index, graph.input_names[v.input_index]
        expected = repr(tuple(v.shape))
        lines += [f"    if tuple(in{i}.shape) != {expected}:",
                  f'        raise ValueError(f"{name}: these kernels take shape {expected} '
                  f'(inN_sizeD: input N\'s dim D), got {{tuple(in{i}.shape)}}")']
    for arg in sorted(bound):
        lines += [f"    if {arg} < 2:",
                  f'        raise ValueError(f"{arg} is {{{arg}}}: these kernels were written for '
                  f'sizes of 2 or more; write them for this size (kernelwright run at it)")']
    for cond in guards(graph):
        lines += [f"    if not ({cond}):",
                  f'        raise ValueError("these kernels were written for sizes where {cond}; '
                  f'write them for these (kernelwright run at them)")']
    return lines


def model_class(graph: Graph, param_names: list[str], buffer_names: set[str],
                init_inputs: list[Any] | None = None, init_taken: set[int] | None = None
                ) -> list[str]:
    """ModelNew with the reference's parameter and buffer names, so its state dict loads. The
    constructor arguments the kernels take at run time (`init_taken`, floats such as a scale)
    are kept and passed to them; for the others the kernels were written for the problem's
    values (get_init_inputs()): other values are refused with the reason, never silently
    computed with the old ones."""
    taken = sorted(init_taken or ())
    lists = {name.rsplit(".", 1)[0] for name in _prefixes(param_names)
             if "." in name and name.rsplit(".", 1)[1].isdigit()}  # nn.Sequential and friends
    lines = ["class ModelNew(nn.Module):",
             '    """Same parameters (names and shapes) as the reference; the kernels do the work."""',
             "", "    def __init__(self, *args, **kwargs):", "        super().__init__()"]
    written_for = _plain(init_inputs or [])
    if written_for is not None:
        written_for = [a if i not in taken else "any" for i, a in enumerate(written_for)]
    if written_for:
        lines += ["        given = [list(a) if isinstance(a, tuple) else a for a in args]",
                  f"        if [a if i not in {taken!r} else 'any' for i, a in enumerate(given)] != "
                  f"{written_for!r} or kwargs:",
                  '            raise ValueError(f"these kernels were written for the constructor '
                  f'arguments {written_for!r}, "',
                  '                             f"not {args!r} {kwargs!r}: write them for these")']
    for prefix in _prefixes(param_names):
        container = "nn.ModuleDict()" if prefix in lists else "nn.Module()"
        lines.append(f"        {_attr(prefix)} = {container}")
    for i, name in enumerate(param_names):
        parent, _, leaf = name.rpartition(".")
        owner = _attr(parent) if parent else "self"
        init = f"torch.zeros({hint(tuple(graph.inputs[i].shape))!r}, dtype={graph.inputs[i].dtype})"
        if name in buffer_names:
            lines.append(f"        {owner}.register_buffer({leaf!r}, {init})")
        else:
            lines.append(f"        {owner}.register_parameter({leaf!r}, nn.Parameter({init}))")
    args = [f"a{i}" for i in range(len(graph.inputs) - graph.n_params)]
    params = [_attr(name) for name in param_names]
    lines += [f"        self.init{i} = float(args[{i}])" for i in taken]
    lines += ["", f"    def forward(self, {', '.join(args)}):",
              f"        return forward_impl({', '.join(params + args + [f'self.init{i}' for i in taken])})"]
    return lines


def _plain(values: list[Any]) -> list[Any] | None:
    """The constructor arguments as the harness passes them (JSON: tuples become lists), or
    None when one is not a plain value (a tensor, a dtype): then nothing is checked."""
    plain = (int, float, bool, str, type(None))

    def ok(v: Any) -> bool:
        return isinstance(v, plain) or isinstance(v, list | tuple) and all(ok(x) for x in v)

    if not all(ok(v) for v in values):
        return None
    return [list(v) if isinstance(v, tuple) else v for v in values]


def _prefixes(names: list[str]) -> list[str]:
    """Every submodule path above the given parameter names, parents first."""
    out: list[str] = []
    for name in names:
        parts = name.split(".")[:-1]
        for k in range(1, len(parts) + 1):
            prefix = ".".join(parts[:k])
            if prefix not in out:
                out.append(prefix)
    return out


def _attr(path: str) -> str:
    """`self.net["0"].weight` for "net.0.weight"."""
    expr = "self"
    for part in path.split("."):
        expr = f"{expr}[{part!r}]" if part.isdigit() else f"{expr}.{part}"
    return expr


