"""Row kernels for reductions and scans: BLOCK_R rows per program, the reduced dims as columns,
either persistent (a whole row in registers, read once) or looped over BLOCK_C-wide chunks (one
loop per dependent reduction pass, then one that computes and stores the outputs; re-reads of a
row hit L2). A plain reduction over few long rows is split: SPLIT programs per row each reduce a
slice into a partial buffer, and a second kernel combines the partials and computes what
follows the reduction."""

from __future__ import annotations

from kernelwright.writer.fuse import leaf_map
from kernelwright.writer.ir import Group, Unsupported, Value
from kernelwright.writer.kinds.base import NEUTRAL, PROD_COMBINE, KernelWriter, Stage
from kernelwright.writer.schedule import KernelConfig, splittable, triton_next_pow2
from kernelwright.writer.sizes import Size, ceil_div


class RowKernel(KernelWriter):
    """A reduction or scan group's kernel (or, split, one of its two kernels)."""

    two_d = True
    cpp = True

    def passes(self) -> dict[int, int]:
        """Pass number of each reduction: 1 + the deepest reduction its input depends on."""
        memo: dict[int, int] = {}

        def depth(v: Value) -> int:
            if not self.g.has(v):
                return 0
            if v.id not in memo:
                inner = max((depth(a) for a in v.args), default=0)
                memo[v.id] = inner + 1 if v.kind == "reduce" else inner
            return memo[v.id]

        return {v.id: depth(v) for v in self.g.values if v.kind == "reduce"}

    def body(self, precision: str) -> list[str]:
        rows, cols = self.g.rows, self.g.cols
        self.lines = ["    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)[:, None]",
                      f"    rmask = r < {rows}"]
        passes = self.passes()
        reductions = sorted((v for v in self.g.values if v.kind == "reduce"),
                            key=lambda v: passes[v.id])
        full_outputs = [o for o in self.g.outputs if self.is_full(o)]
        row_outputs = [o for o in self.g.outputs if not self.is_full(o)]
        row_env: dict[object, str] = {}
        if self.stage == "partial":  # this program's slice of each row, into a partial buffer
            chunk = self.split_chunk()
            self.lines.append("    s = tl.program_id(1)")
            for red in reductions:
                self.init_acc(red, 1)
            self.lines += [f"    for c0 in range(0, {chunk}, BLOCK_C):",
                           f"        c = s * {chunk} + c0 + tl.arange(0, BLOCK_C)[None, :]",
                           f"        cmask = c < {cols}",
                           "        mask = rmask & cmask"]
            env: dict[object, str] = {}
            for red in reductions:
                self.update_acc(red, self.emit_arg(red, env, 2), 2)
            for out in full_outputs:  # read by a later kernel; never after the reduction here
                self.store(out, self.emit(out, env, 2), 2)
            for red in reductions:
                self.finish_reduction(red, None, row_env, 1)
                ptr = self.pointer_of[-red.id]
                self.params.append(ptr)
                self.lines.append(f"    tl.store({ptr} + r * {self.cfg.split} + s, v{red.id}, "
                                  "mask=rmask)")
            return self.lines
        if self.stage == "combine":  # reduce the partials, then what follows per row
            self.lines += ["    c = tl.arange(0, BLOCK_C)[None, :]",
                           f"    cmask = c < {self.cfg.split}", "    mask = rmask & cmask"]
            for red in reductions:
                ptr = self.pointer_of[-red.id]
                self.params.append(ptr)
                self.lines.append(f"    p{red.id} = tl.load({ptr} + r * {self.cfg.split} + c, "
                                  f"mask=mask, other={NEUTRAL[red.op]})")
                self.finish_reduction(red, f"p{red.id}", row_env, 1)
            for out in row_outputs:
                self.store(out, self.emit(out, row_env, 1), 1)
            return self.lines
        if self.cfg.persistent:
            self.lines += ["    c = tl.arange(0, BLOCK_C)[None, :]", f"    cmask = c < {cols}",
                           "    mask = rmask & cmask"]
            env = row_env
            for red in reductions:
                self.finish_reduction(red, self.emit_arg(red, env, 1), env, 1)
            self.emit_outputs(full_outputs, env, 1, direct=True)
        else:
            for p in sorted(set(passes.values())):
                group = [v for v in reductions if passes[v.id] == p]
                for red in group:
                    self.init_acc(red, 1)
                self.open_loop()
                env = dict(row_env)
                for red in group:
                    self.update_acc(red, self.emit_arg(red, env, 2), 2)
                for red in group:
                    self.finish_reduction(red, None, row_env, 1)
            if full_outputs:
                scans = [v for v in self.g.values if v.kind == "scan"]
                for s in scans:
                    self.lines.append(f"    carry{s.id} = tl.full([BLOCK_R, 1], "
                                      f"{'0.0' if s.op == 'cumsum' else '1.0'}, tl.float32)")
                self.open_loop()
                self.emit_outputs(full_outputs, dict(row_env), 2, direct=False)
        for out in row_outputs:
            self.store(out, self.emit(out, row_env, 1), 1)
        return self.lines

    def split_chunk(self) -> int:
        """Columns per program of a split row: a multiple of BLOCK_C, so slices never overlap."""
        per = ceil_div(self.g.cols, self.cfg.split)
        return ceil_div(per, self.cfg.block_c) * self.cfg.block_c

    def is_full(self, v: Value) -> bool:
        return any(k in self.g.axes for k, s in zip(self.g.dmap[v.id], v.shape, strict=True)
                   if k is not None and s > 1)

    def open_loop(self) -> None:
        if self.reverse():  # a reverse scan: the chunks last to first, the carry from the right
            self.lines += [f"    chunks = tl.cdiv({self.g.cols}, BLOCK_C)",
                           "    for i in range(0, chunks):",
                           "        c0 = (chunks - 1 - i) * BLOCK_C"]
        else:
            self.lines.append(f"    for c0 in range(0, {self.g.cols}, BLOCK_C):")
        self.lines += ["        c = c0 + tl.arange(0, BLOCK_C)[None, :]",
                       f"        cmask = c < {self.g.cols}",
                       "        mask = rmask & cmask"]

    def reverse(self) -> bool:
        """Whether the group's scans run last column first (all of them, or none)."""
        directions = {bool(v.attrs.get("reverse")) for v in self.g.values if v.kind == "scan"}
        if len(directions) > 1:
            raise Unsupported(["flip"], "scans in both directions in one kernel")
        return directions == {True}

    def emit_arg(self, v: Value, env: dict[object, str], indent: int) -> str:
        arg = v.args[0]
        if self.g.has(arg):
            return self.emit(arg, env, indent)
        amap = leaf_map(arg.shape, self.g.shape, tuple(range(len(self.g.shape))))
        return self.emit(arg, env, indent, amap, arg.shape) if amap is not None else \
            self.emit(arg, env, indent, tuple(range(len(self.g.shape))), self.g.shape)

    def emit_outputs(self, outputs: list[Value], env: dict[object, str], indent: int,
                     direct: bool) -> None:
        pad = "    " * indent
        for s in (v for v in self.g.values if v.kind == "scan"):
            x = self.emit_arg(s, env, indent)
            neutral = "0.0" if s.op == "cumsum" else "1.0"
            self.lines.append(f"{pad}s{s.id} = tl.where(mask, {x}, {neutral})")
            rev = ", reverse=True" if self.reverse() else ""
            if direct:
                self.lines.append(f"{pad}v{s.id} = tl.{s.op}(s{s.id}, axis=1{rev})")
            elif s.op == "cumsum":
                self.lines += [f"{pad}v{s.id} = tl.cumsum(s{s.id}, axis=1{rev}) + carry{s.id}",
                               f"{pad}carry{s.id} += tl.sum(s{s.id}, axis=1)[:, None]"]
            else:
                self.helpers.add(PROD_COMBINE)
                self.lines += [f"{pad}v{s.id} = tl.cumprod(s{s.id}, axis=1{rev}) * carry{s.id}",
                               f"{pad}carry{s.id} *= tl.reduce(s{s.id}, 1, _prod_combine)[:, None]"]
            env[s.id] = f"v{s.id}"
        for out in outputs:
            self.store(out, self.emit(out, env, indent), indent)

    def init_acc(self, red: Value, indent: int) -> None:
        pad = "    " * indent
        self.lines.append(f"{pad}acc{red.id} = tl.full([BLOCK_R, BLOCK_C], {NEUTRAL[red.op]}, "
                          "tl.float32)")
        if red.op.startswith("arg"):
            self.lines.append(f"{pad}idx{red.id} = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.int32)")
        if red.op == "m2":  # each lane's running mean (Welford); acc: its squared deviations
            self.lines.append(f"{pad}mu{red.id} = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.float32)")
            if self.reverse():
                self.lines.append(f"{pad}n{red.id} = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.float32)")

    def update_acc(self, red: Value, arg: str, indent: int) -> None:
        pad = "    " * indent
        x = f"tl.where(mask, {arg}, {NEUTRAL[red.op]})"
        a = f"acc{red.id}"
        if red.op == "sum":
            self.lines.append(f"{pad}{a} += {x}")
        elif red.op == "prod":
            self.lines.append(f"{pad}{a} *= {x}")
        elif red.op in {"max", "min"}:
            fn = "maximum" if red.op == "max" else "minimum"
            self.lines.append(f"{pad}{a} = tl.{fn}({a}, {x})")
        elif red.op == "m2":  # Welford: a lane in the row has seen one element per chunk so far
            mu = f"mu{red.id}"
            if self.reverse():  # the partial chunk first: each lane counts its own
                self.lines.append(f"{pad}n{red.id} += tl.where(mask, 1.0, 0.0)")
                step = f"/ tl.maximum(n{red.id}, 1.0)"
            else:  # the same count in every lane: one reciprocal a chunk, not a division a lane
                self.lines.append(f"{pad}w{red.id} = 1.0 / (c0 // BLOCK_C + 1)")
                step = f"* w{red.id}"
            self.lines += [f"{pad}x{red.id} = {arg}",
                           f"{pad}d{red.id} = tl.where(mask, x{red.id} - {mu}, 0.0)",
                           f"{pad}{mu} += d{red.id} {step}",
                           f"{pad}{a} += d{red.id} * tl.where(mask, x{red.id} - {mu}, 0.0)"]
        else:
            cmp = ">" if red.op == "argmax" else "<"
            self.lines += [f"{pad}x{red.id} = {x}", f"{pad}take = x{red.id} {cmp} {a}",
                           f"{pad}idx{red.id} = tl.where(take, c + 0 * r, idx{red.id})",
                           f"{pad}{a} = tl.where(take, x{red.id}, {a})"]

    def finish_reduction(self, red: Value, direct_arg: str | None, env: dict[object, str],
                         indent: int) -> None:
        """Collapse the accumulator (or, persistent, the whole row) to one value per row."""
        pad = "    " * indent
        name = f"v{red.id}"
        if direct_arg is not None:  # persistent: the row is in registers
            self.lines.append(f"{pad}acc{red.id} = tl.where(mask, {direct_arg}, {NEUTRAL[red.op]})")
            if red.op.startswith("arg"):
                self.lines.append(f"{pad}idx{red.id} = c + 0 * r")
        a = f"acc{red.id}"
        if red.op == "m2" and direct_arg is not None:  # the row in registers: two exact passes
            self.lines += [f"{pad}mean{red.id} = tl.sum({a}, axis=1)[:, None] / {self.g.cols}",
                           f"{pad}d{red.id} = tl.where(mask, {direct_arg} - mean{red.id}, 0.0)",
                           f"{pad}{name} = tl.sum(d{red.id} * d{red.id}, axis=1)[:, None]"]
        elif red.op == "m2":  # the lanes' (count, mean, m2) combined (Chan et al.)
            count = f"n{red.id}" if self.reverse() else \
                f"tl.maximum(({self.g.cols} - tl.arange(0, BLOCK_C)[None, :] + BLOCK_C - 1) " \
                "// BLOCK_C, 0).to(tl.float32)"
            mu = f"mu{red.id}"
            self.lines += [f"{pad}n{red.id} = {count}",
                           f"{pad}mean{red.id} = tl.sum({mu} * n{red.id}, axis=1)[:, None] / "
                           f"{self.g.cols}",
                           f"{pad}d{red.id} = {mu} - mean{red.id}",
                           f"{pad}{name} = tl.sum({a} + n{red.id} * d{red.id} * d{red.id}, "
                           "axis=1)[:, None]"]
        elif red.op == "sum":
            self.lines.append(f"{pad}{name} = tl.sum({a}, axis=1)[:, None]")
        elif red.op in {"max", "min"}:
            self.lines.append(f"{pad}{name} = tl.{red.op}({a}, axis=1)[:, None]")
        elif red.op == "prod":
            self.helpers.add(PROD_COMBINE)
            self.lines.append(f"{pad}{name} = tl.reduce({a}, 1, _prod_combine)[:, None]")
        else:
            best = "max" if red.op == "argmax" else "min"
            self.lines += [f"{pad}best{red.id} = tl.{best}({a}, axis=1)[:, None]",
                           f"{pad}{name} = tl.min(tl.where({a} == best{red.id}, idx{red.id}, "
                           f"{self.g.cols}), axis=1)[:, None]"]
        env[red.id] = name

    def meta(self, precision: str) -> list[str]:
        return ["BLOCK_R", "BLOCK_C"]

    @classmethod
    def stages(cls, g: Group, cfg: KernelConfig) -> list[Stage]:
        if cfg.split == 1:
            return [Stage("whole", cfg, f"(triton.cdiv({g.rows}, {cfg.block_r}),)")]
        if not splittable(g):
            raise ValueError(f"a {g.kind} group cannot be split")
        combine = KernelConfig(block_r=1, block_c=triton_next_pow2(cfg.split), num_warps=4,
                               split=cfg.split)
        return [Stage("partial", cfg, f"(triton.cdiv({g.rows}, {cfg.block_r}), {cfg.split})"),
                Stage("combine", combine, f"({g.rows},)")]

    def partials(self) -> list[tuple[int, str]]:
        """The split's partial buffers: (key in pointer_of, allocation)."""
        return [(-red.id, f"part{red.id} = torch.empty(({self.g.rows}, {self.cfg.split}), "
                 "device={device}.device, dtype=torch.float32)")
                for red in self.g.values if red.kind == "reduce"]

    def launch(self, precision: str) -> str:
        args = ", ".join(p.removesuffix("_ptr") for p in self.params)
        block_c: object = self.cfg.block_c
        if self.cfg.persistent and self.stage != "combine" and isinstance(self.g.cols, Size):
            block_c = f"triton.next_power_of_2({self.g.cols})"  # the whole row, at any size
        return (f"    {self.name}[{self.grid}]({args}, BLOCK_R={self.cfg.block_r}, "
                f"BLOCK_C={block_c}, num_warps={self.cfg.num_warps})")
