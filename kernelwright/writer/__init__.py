"""The offline policy's kernel writer, a compiler pipeline: capture the reference's aten graph,
lower it to a small IR (composites decomposed into named ops), partition it into fusion groups,
pick each kernel's launch configuration, render readable Triton (or C++), and search the
configurations through the harness.

    capture.py    aten graph of the forward, parameters lifted to inputs
    ir.py         the IR: values with shapes and named ops; groups (one kernel's share)
    ops.py        the pointwise op vocabulary, with each backend's rendering
    lower.py      aten ops to IR (pointwise, reductions, scans, pooling; composites decomposed)
    attention.py  finds softmax(q @ k^T) @ v in the aten graph, for one fused kernel
    fuse.py       fusion groups: one kernel each, intermediates materialised between them
    schedule.py   launch configurations: defaults, search spaces and the heuristics behind them
    kinds/        one Triton kernel writer per kind, behind a registry (docs/kinds.md)
    emit.py       the Triton module: the kinds' kernels, the launcher and ModelNew
    emit_cpp.py   the same groups as CUDA C++ or CPU C++ (load_inline)
    write.py      the entry point: a problem in, a Plan out (traced once, cached)
    search.py     launch-configuration search: a tree of candidates evaluated by the harness
"""
