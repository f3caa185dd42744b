"""Transposing kernels: a pointwise group that reads a leaf through a transposed view (its last
dim is not the leaf's contiguous dim). A 1-D kernel over the output's elements reads that leaf
with a stride (one 32-byte sector per 4-byte element); a 2-D [BLOCK_R, BLOCK_C] tile lets Triton
load along the leaf's contiguous dim and store along the output's, converting the layout in
shared memory, so both sides move whole sectors."""

from __future__ import annotations

import math
from typing import Any

from kernelwright.writer.ir import Group, Value
from kernelwright.writer.kinds.base import KernelWriter, view_strides
from kernelwright.writer.schedule import KernelConfig


class TransposeKernel(KernelWriter):
    """The group's domain as rows (every dim but the last) by columns (the last dim)."""

    two_d = True

    @staticmethod
    def claims(group: Group) -> bool:
        """A pointwise group over a matrix (or a batch of them) reading a transposed leaf."""
        if group.kind != "pointwise" or len(group.shape) < 2 or group.shape[-1] < 16:
            return False
        return any(_transposed(a, group.shape) for v in group.values for a in v.args)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        last = len(self.g.shape) - 1
        self.rows_dims, self.col_dims = list(range(last)), [last]

    def body(self, precision: str) -> list[str]:
        rows, cols = math.prod(self.g.shape[:-1]), self.g.shape[-1]
        self.lines = ["    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)[:, None]",
                      "    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]",
                      f"    rmask = r < {rows}", f"    cmask = c < {cols}", "    mask = rmask & cmask"]
        env: dict[object, str] = {}
        for out in self.g.outputs:
            self.store(out, self.emit(out, env, 1), 1)
        return self.lines

    def meta(self, precision: str) -> list[str]:
        return ["BLOCK_R", "BLOCK_C"]

    def launch(self, precision: str) -> str:
        rows, cols = math.prod(self.g.shape[:-1]), self.g.shape[-1]
        cfg = self.cfg
        grid = f"(triton.cdiv({rows}, {cfg.block_r}), triton.cdiv({cols}, {cfg.block_c}))"
        return (f"    {self.name}[{grid}]({self.args()}, BLOCK_R={cfg.block_r}, "
                f"BLOCK_C={cfg.block_c}, num_warps={cfg.num_warps})")

    @classmethod
    def describe(cls, config: KernelConfig) -> str:
        return f"tile {config.block_r}x{config.block_c}, num_warps={config.num_warps}"


def _transposed(leaf: Value, shape: tuple[int, ...]) -> bool:
    """A full-size leaf whose last dim is not the one contiguous in memory."""
    if leaf.kind != "view" or leaf.op != "permute" or leaf.shape != shape:
        return False
    strides = view_strides(leaf)
    return strides[-1] != 1 and 1 in strides[:-1]
