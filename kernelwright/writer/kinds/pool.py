"""Pooling kernels (max and average, 1-d, 2-d and 3-d); what follows the pool in the group is
computed on the result.

A program takes BLOCK outputs of one plane (the pooled dims of one batch-channel row), so the
row and its base offset are one division per program, not one per element. The window's taps
are unrolled, except along the last dim of a strided pool (stride > 1, the default of every
torch pool): there one tap a load would leave the lanes `stride` elements apart, each warp's load
touching `stride` times the sectors it uses (AvgPool2d 11 x 11 on the H200: 0.35 of the floor,
bound by L1 wavefronts). Those taps are a second axis of the tile instead, [outputs, taps padded
to a power of two], whose addresses run on from one output's window to the next: the warp's
loads are contiguous, and the tile is reduced along the taps at the end.
"""

from __future__ import annotations

import math

from kernelwright.writer.fuse import view_base
from kernelwright.writer.ir import Group, Unsupported, Value, contiguous_strides
from kernelwright.writer.kinds.base import NEUTRAL, view_strides, with_offset
from kernelwright.writer.kinds.pointwise import PointwiseKernel
from kernelwright.writer.schedule import triton_next_pow2


def pool_of(g: Group) -> Value:
    return next(v for v in g.values if v.kind == "pool")


def tap_tile(g: Group) -> int:
    """Taps along the last pooled dim held as a tile axis (a power of two), or 1 (unrolled)."""
    p = pool_of(g).attrs
    k, s = p["kernel"][-1], p["stride"][-1]  # type: ignore[index]
    return triton_next_pow2(k) if s > 1 and k > 1 else 1


class PoolKernel(PointwiseKernel):
    """A pointwise kernel whose first value is a pool window."""

    cpp = False

    def rows_and_plane(self) -> tuple[object, object]:
        """(batch-channel rows, outputs in one row's plane) of the pool's output."""
        v = pool_of(self.g)
        nd = int(v.attrs["nd"])  # type: ignore[arg-type]
        return math.prod(v.shape[:-nd]), math.prod(v.shape[-nd:])

    def body(self, precision: str) -> list[str]:
        _, plane = self.rows_and_plane()
        self.lines = [f"    blocks = ({plane} + BLOCK - 1) // BLOCK",
                      "    lead = tl.program_id(0) // blocks",
                      "    rp = (tl.program_id(0) % blocks) * BLOCK + tl.arange(0, BLOCK)",
                      f"    rmask = rp < {plane}",
                      f"    r = lead * {plane} + rp"]
        env: dict[object, str] = {}
        for out in self.g.outputs:
            self.store(out, self.emit(out, env, 1), 1)
        return self.lines

    def outputs_per_program(self) -> int:
        return max(16, self.cfg.block_r // tap_tile(self.g))

    def launch(self, precision: str) -> str:
        lead, plane = self.rows_and_plane()
        block = self.outputs_per_program()
        return (f"    {self.name}[({lead} * triton.cdiv({plane}, {block}),)]({self.args()}, "
                f"BLOCK={block}, num_warps={self.cfg.num_warps})")

    def emit_computed(self, v: Value, env: dict[object, str], indent: int) -> str:
        """The pool's window of each output: unrolled taps, the last dim's as a tile axis."""
        pad = "    " * indent
        p = v.attrs
        nd = int(p["nd"])  # type: ignore[arg-type]
        src = v.args[0]
        in_sp, out_sp = src.shape[-nd:], v.shape[-nd:]
        ptr = with_offset(self.pointer(view_base(src)), src)
        if src.kind == "view" and view_strides(src) != contiguous_strides(src.shape):
            raise Unsupported(["pooling a permuted tensor"])
        kernel, stride, padding, dil = (p[k] for k in ("kernel", "stride", "padding", "dilation"))
        taps = tap_tile(self.g)
        last = nd - 1
        lines = []
        for i in range(nd):
            inner = math.prod(out_sp[i + 1:])
            q = "rp" if inner == 1 else f"(rp // {inner})"
            lines.append(f"o{i} = {q}" if i == 0 else f"o{i} = {q} % {out_sp[i]}")
        shape = f"[BLOCK, {taps}]" if taps > 1 else "[BLOCK]"
        is_max = v.op == "max"
        other = NEUTRAL["max"] if is_max else "0.0"
        acc = f"v{v.id}"
        lines.append(f"{acc} = tl.full({shape}, {other}, tl.float32)")
        if not is_max:
            lines.append(f"cnt{v.id} = tl.zeros({shape}, dtype=tl.float32)")
        body_pad = ""
        ok = "rmask"
        for i in range(nd):
            start = f"o{i} * {stride[i]} - {padding[i]}"  # type: ignore[index]
            if i == last and taps > 1:
                lines.append(f"{body_pad}k{i} = tl.arange(0, {taps})")
                lines.append(f"{body_pad}i{i} = ({start})[:, None] + k{i}[None, :] * {dil[i]}")  # type: ignore[index]
                ok = f"rmask[:, None] & (k{i}[None, :] < {kernel[i]})"  # type: ignore[index]
                continue
            lines.append(f"{body_pad}for k{i} in tl.static_range({kernel[i]}):")  # type: ignore[index]
            body_pad += "    "
            lines.append(f"{body_pad}i{i} = {start} + k{i} * {dil[i]}")  # type: ignore[index]
        at = [f"i{i}[:, None]" if taps > 1 and i != last else f"i{i}" for i in range(nd)]
        inside = " & ".join(f"({at[i]} >= 0) & ({at[i]} < {in_sp[i]})" for i in range(nd))
        off = f"lead * {math.prod(in_sp)}" + "".join(
            f" + {at[i]} * {math.prod(in_sp[i + 1:])}" for i in range(nd))
        lines.append(f"{body_pad}ok = {ok} & {inside}")
        lines.append(f"{body_pad}x = tl.load({ptr} + {off}, mask=ok, other={other}).to(tl.float32)")
        if is_max:
            lines.append(f"{body_pad}{acc} = tl.maximum({acc}, x)")
        else:
            lines.append(f"{body_pad}{acc} += x")
            lines.append(f"{body_pad}cnt{v.id} += tl.where(ok, 1.0, 0.0)")
        if taps > 1:  # the taps' axis reduced
            lines.append(f"{acc} = tl.{'max' if is_max else 'sum'}({acc}, axis=1)")
            if not is_max:
                lines.append(f"cnt{v.id} = tl.sum(cnt{v.id}, axis=1)")
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
