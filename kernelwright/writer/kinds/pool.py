"""Pooling kernels (max and average, 1-d, 2-d and 3-d): one output element per lane, the window's
taps unrolled; what follows the pool in the group is computed on the result."""

from __future__ import annotations

import math

from kernelwright.writer.fuse import view_base
from kernelwright.writer.ir import Unsupported, Value, contiguous_strides
from kernelwright.writer.kinds.base import NEUTRAL, view_strides, with_offset
from kernelwright.writer.kinds.pointwise import PointwiseKernel


class PoolKernel(PointwiseKernel):
    """A pointwise kernel whose first value is a pool window."""

    cpp = False

    def emit_computed(self, v: Value, env: dict[object, str], indent: int) -> str:
        """A pool window of each output element, loaded once per element and tap."""
        pad = "    " * indent
        p = v.attrs
        nd = int(p["nd"])  # type: ignore[arg-type]
        src = v.args[0]
        in_sp = src.shape[-nd:]
        out_sp = v.shape[-nd:]
        ptr = with_offset(self.pointer(view_base(src)), src)
        if src.kind == "view" and view_strides(src) != contiguous_strides(src.shape):
            raise Unsupported(["pooling a permuted tensor"])
        lines = [f"lead = r // {math.prod(out_sp)}"]
        for i in range(nd):
            inner = math.prod(out_sp[i + 1:])
            q = "r" if inner == 1 else f"(r // {inner})"
            lines.append(f"o{i} = {q} % {out_sp[i]}")
        kernel, stride, padding, dil = (p[k] for k in ("kernel", "stride", "padding", "dilation"))
        acc = f"v{v.id}"
        is_max = v.op == "max"
        lines.append(f"{acc} = tl.full([BLOCK], {NEUTRAL['max'] if is_max else '0.0'}, "
                     "tl.float32)")
        if not is_max:
            lines.append(f"cnt{v.id} = tl.zeros([BLOCK], dtype=tl.float32)")
        body_pad = ""
        for i in range(nd):
            lines.append(f"{body_pad}for k{i} in tl.static_range({kernel[i]}):")  # type: ignore[index]
            body_pad += "    "
            lines.append(f"{body_pad}i{i} = o{i} * {stride[i]} - {padding[i]} + k{i} * {dil[i]}")  # type: ignore[index]
        ok = " & ".join(f"(i{i} >= 0) & (i{i} < {in_sp[i]})" for i in range(nd))
        off = f"lead * {math.prod(in_sp)}" + "".join(
            f" + i{i} * {math.prod(in_sp[i + 1:])}" for i in range(nd))
        other = NEUTRAL["max"] if is_max else "0.0"
        lines.append(f"{body_pad}ok = rmask & {ok}")
        lines.append(f"{body_pad}x = tl.load({ptr} + {off}, mask=ok, other={other}).to(tl.float32)")
        if is_max:
            lines.append(f"{body_pad}{acc} = tl.maximum({acc}, x)")
        else:
            lines.append(f"{body_pad}{acc} += x")
            lines.append(f"{body_pad}cnt{v.id} += tl.where(ok, 1.0, 0.0)")
        if not is_max:
            lines.append(f"{acc} = {acc} / {self.avg_divisor(v, in_sp, out_sp)}")
        self.lines += [f"{pad}{line}" for line in lines]
        env[v.id] = acc
        return acc

    def avg_divisor(self, v: Value, in_sp: tuple[int, ...], out_sp: tuple[int, ...]) -> str:
        p = v.attrs
        if p["divisor"]:
            return f"{float(p['divisor'])!r}"  # type: ignore[arg-type]
        if not p["include_pad"]:
            return f"tl.maximum(cnt{v.id}, 1.0)"
        terms = []
        for i in range(len(in_sp)):
            k, s, pd = p["kernel"][i], p["stride"][i], p["padding"][i]  # type: ignore[index]
            start = f"(o{i} * {s} - {pd})"
            end = f"tl.minimum({start} + {k}, {in_sp[i] + pd})"
            terms.append(f"({end} - {start})")
        return "(" + " * ".join(terms) + ").to(tl.float32)"
