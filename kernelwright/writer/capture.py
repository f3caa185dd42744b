"""Capture the reference's forward as an aten graph with shapes, strides and dtypes.

The model is built on the meta device (no memory, any size) and traced with make_fx over fake
tensors with symbolic shapes, its parameters and buffers lifted to graph inputs (first, in
`named_parameters` then `named_buffers` order), so generated code can read them from ModelNew's
own copies.
"""

from __future__ import annotations

import threading
import types
from dataclasses import dataclass
from typing import Any

import torch
from torch.fx import GraphModule

from kernelwright.core.precision import prepare_inputs, prepare_module
from kernelwright.core.results import Precision

_TRACING = threading.Lock()  # make_fx patches torch globally: one trace at a time (the graph's
# coders run in parallel threads)


@dataclass
class Captured:
    graph: GraphModule
    param_names: list[str]  # parameters, then buffers
    buffer_names: set[str]
    param_shapes: list[tuple[int, ...]]
    n_args: int
    init_inputs: list[Any]


def capture(module: types.ModuleType, precision: Precision, init: list[Any] | None = None
            ) -> Captured:
    """Trace `module.Model(*init)` (by default `get_init_inputs()`) on `get_inputs()` into an
    aten graph."""
    from torch.fx.experimental.proxy_tensor import make_fx

    if init is None:
        init = list(module.get_init_inputs()) if hasattr(module, "get_init_inputs") else []
    meta = torch.device("meta")
    with meta:
        model = module.Model(*init)
        inputs = list(module.get_inputs())
    model = prepare_module(model, precision, meta)
    inputs = prepare_inputs(inputs, precision, meta)
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    names = list(state)

    def forward(*flat: Any) -> Any:
        own = dict(zip(names, flat[:len(names)], strict=True))
        return torch.func.functional_call(model, own, tuple(flat[len(names):]))

    from torch.fx.experimental import _config as shape_config

    # symbolic: every size an expression over the inputs' dims (writer/sizes.py); duck sizing
    # off, so two sizes equal at this size are not taken as equal at every size
    no_duck = shape_config.patch(use_duck_shape=False)  # type: ignore[attr-defined]
    with _TRACING, torch.no_grad(), meta, no_duck:
        graph = make_fx(forward, tracing_mode="symbolic")(*state.values(), *inputs)
    return Captured(graph=graph, param_names=names, buffer_names=set(dict(model.named_buffers())),
                    param_shapes=[tuple(t.shape) for t in state.values()],
                    n_args=len(inputs), init_inputs=init)
