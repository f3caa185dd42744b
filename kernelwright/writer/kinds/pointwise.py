"""Pointwise kernels: 1-D over the flattened domain, BLOCK elements per program."""

from __future__ import annotations

import math

from kernelwright.writer.kinds.base import KernelWriter


class PointwiseKernel(KernelWriter):
    """Every value of the group computed per element; its outputs stored where they are."""

    cpp = True

    def body(self, precision: str) -> list[str]:
        n = math.prod(self.g.shape)
        self.lines = ["    r = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
                      f"    rmask = r < {n}"]
        env: dict[object, str] = {}
        for out in self.g.outputs:
            self.store(out, self.emit(out, env, 1), 1)
        return self.lines

    def meta(self, precision: str) -> list[str]:
        return ["BLOCK"]

    def launch(self, precision: str) -> str:
        args = ", ".join(p.removesuffix("_ptr") for p in self.params)
        grid = f"(triton.cdiv({math.prod(self.g.shape)}, {self.cfg.block_r}),)"
        return (f"    {self.name}[{grid}]({args}, BLOCK={self.cfg.block_r}, "
                f"num_warps={self.cfg.num_warps})")
