"""The offline policy's kernel writer: capture the reference's aten graph, lower it to a small
IR (composites decomposed), partition it into fusion groups, emit readable Triton, and search
each kernel's launch configuration through the harness.

    capture.py  aten graph of the forward, parameters lifted to inputs
    ir.py       the IR: values with shapes, dims mapped onto a kernel's iteration domain
    lower.py    aten ops to IR (pointwise, reductions, scans, pooling; composites decomposed)
    fuse.py     fusion groups: one kernel each, intermediates materialised between them
    emit.py     Triton source for the groups, one readable file defining ModelNew
    search.py   launch-configuration search: a tree of candidates evaluated by the harness
"""
