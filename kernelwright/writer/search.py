"""Launch-configuration search: a tree of candidates, each evaluated by the harness.

Coordinate descent from the writer's default: for one kernel at a time, try its alternative
configurations (most promising first) with the others held at the best so far; a child that is
correct and faster becomes the new best. Every evaluation is a node of the tree (parent, change,
status, time). The search stops when the budget is spent or the best is near the SOL floor.
Without a GPU, times are not meaningful: the default is checked for correctness and kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic import BaseModel, Field

from kernelwright.core.results import Backend, EvalResult, EvalSettings
from kernelwright.writer.emit import (
    KernelConfig,
    matmul_config,
    matmul_dims,
    rows_are_contiguous,
    splittable,
    triton_next_pow2,
)
from kernelwright.writer.emit_cpp import config_space as cpp_config_space
from kernelwright.writer.fuse import SM_TARGET, Group
from kernelwright.writer.write import Plan

log = logging.getLogger(__name__)

MAX_PERSISTENT_COLS = 32768  # fp32 elements of one row held in registers across a program


class TreeNode(BaseModel):
    """One evaluated candidate."""

    id: int
    parent: int | None
    change: str = Field(description="what differs from the parent, e.g. 'kernel0: BLOCK=2048'")
    configs: list[str]
    status: str
    runtime_us: float | None = None
    sol_fraction: float | None = None


class SearchResult(BaseModel):
    best_id: int
    best_source: str
    best_result: EvalResult
    tree: list[TreeNode]
    stopped: str = Field(description="why the search ended")


MATMUL_TILES = [(128, 128, 32, 8, 3), (128, 64, 32, 4, 4), (64, 128, 32, 4, 4),
                (128, 256, 32, 8, 3), (256, 128, 32, 8, 3), (64, 64, 32, 4, 4),
                (128, 128, 64, 8, 3), (128, 128, 16, 8, 4), (32, 32, 32, 2, 4)]


ATTENTION_TILES = [(64, 64, 4, 2), (128, 64, 8, 2), (64, 32, 4, 3), (128, 32, 4, 2),
                   (32, 64, 4, 2), (128, 128, 8, 2), (64, 128, 4, 2), (32, 32, 2, 3)]


def config_space(group: Group, backend: Backend = "triton") -> list[KernelConfig]:
    """Alternatives for one kernel, most promising first (none for a vendor call)."""
    if backend != "triton":
        return cpp_config_space(group, backend)
    if group.kind == "extern":
        return []
    if group.kind == "attention":  # queries and keys per block, warps, pipeline stages
        *_, m, n = group.shape
        space = []
        for bm, bn, warps, stages in ATTENTION_TILES:
            cfg = KernelConfig(block_r=max(16, min(bm, triton_next_pow2(m))),
                               block_c=max(16, min(bn, triton_next_pow2(n))), num_warps=warps,
                               num_stages=stages)
            if cfg not in space:
                space.append(cfg)
        return space
    if group.kind == "matmul":  # tiles (M, N, K), warps, pipeline stages
        out: list[KernelConfig] = []
        batch, m, n, k = matmul_dims(group)
        few_tiles = batch * -(-m // 64) * -(-n // 64) * 4 < SM_TARGET
        for bm, bn, bk, warps, stages in MATMUL_TILES:
            for split in (1, 4, 16) if few_tiles and k >= 2048 else (1,):  # skinny: split K
                cfg = matmul_config(group, bm, bn, bk, warps, stages, split=split)
                if cfg not in out:
                    out.append(cfg)
        return out
    if group.kind in {"pointwise", "pool"}:
        return [KernelConfig(block_r=b, num_warps=w)
                for b, w in [(1024, 4), (2048, 8), (4096, 8), (512, 4), (2048, 4), (4096, 16)]]
    cols = triton_next_pow2(group.cols)
    out = []
    if splittable(group) and group.cols >= 8192:  # few long rows: spread each over programs
        shapes = [(128, 32, 4), (64, 64, 4)] if rows_are_contiguous(group) else \
            [(1, 2048, 8), (1, 1024, 4)]
        for programs in (SM_TARGET, SM_TARGET // 2, SM_TARGET * 2):
            for block_r, block_c, warps in shapes:
                rows = -(-group.rows // block_r)
                split = min(1024, max(2, programs // rows), -(-group.cols // block_c))
                cfg = KernelConfig(block_r=block_r, block_c=block_c, num_warps=warps, split=split)
                if split > 1 and cfg not in out:
                    out.append(cfg)
    if rows_are_contiguous(group):  # only tiles that read many adjacent rows stay coalesced
        tiles = [(64, 32, 4), (32, 64, 4), (128, 32, 8), (256, 16, 8), (64, 16, 2)]
        return out + [KernelConfig(block_r=r, block_c=c, num_warps=w) for r, c, w in tiles]
    if cols <= MAX_PERSISTENT_COLS:
        for block_r in (1, 2, 4, 8, 16):
            if block_r * cols > MAX_PERSISTENT_COLS or block_r > group.rows:
                continue
            for warps in (4, 8, 16):
                if block_r * cols >= warps * 32:
                    out.append(KernelConfig(block_r=block_r, block_c=cols, num_warps=warps,
                                            persistent=True))
    for block_c in (4096, 2048, 1024):
        if block_c < cols:
            for warps in (8, 4):
                out.append(KernelConfig(block_r=1, block_c=block_c, num_warps=warps))
    return out


def neighbours(plan: Plan, configs: list[KernelConfig]) -> list[tuple[list[KernelConfig], str]]:
    """Configurations one change away from `configs`, most promising first, with the change."""
    out = []
    for i, group in enumerate(plan.groups):
        for alt in config_space(group, plan.backend):
            if alt != configs[i]:
                out.append((configs[:i] + [alt] + configs[i + 1:],
                            f"kernel{i}: {plan.describe(i, alt)}"))
    return out


def refine(plan: Plan, settings: EvalSettings, budget: int = 10, stop_at_sol: float = 0.92,
           evaluate: Callable[..., EvalResult] | None = None,
           progress: Callable[[str], None] = lambda _: None) -> SearchResult:
    """Search the plan's launch configurations; return the best correct candidate and the tree."""
    if evaluate is None:
        from kernelwright.tools.evaluate import evaluate as harness
        evaluate = harness
    tree: list[TreeNode] = []

    def run(configs: list[KernelConfig], parent: int | None, change: str) -> EvalResult:
        result = evaluate(plan.problem, plan.source(configs), settings)
        tree.append(TreeNode(id=len(tree), parent=parent, change=change,
                             configs=[plan.describe(i, c) for i, c in enumerate(configs)],
                             status=result.status.value,
                             runtime_us=result.runtime_us, sol_fraction=result.sol_fraction))
        progress(f"{change}: {result.status.value} {result.runtime_us or '-'} us")
        return result

    best_configs = list(plan.configs)
    best = run(best_configs, None, "default configuration")
    best_id = 0
    stopped = "budget spent"
    if best.runtime_us is None:
        stopped = "no timings (not a GPU, or the default failed): kept the default"
    else:
        for i in range(len(plan.groups)):  # one kernel at a time, the others at the best
            for trial, change in neighbours(plan, best_configs):
                if trial[:i] != best_configs[:i] or trial[i + 1:] != best_configs[i + 1:]:
                    continue
                if len(tree) >= budget:
                    break
                if (best.sol_fraction or 0) >= stop_at_sol:
                    stopped = f"within {1 / stop_at_sol:.2f}x of the SOL floor"
                    break
                result = run(trial, best_id, change)
                if result.ok and result.runtime_us and result.runtime_us < best.runtime_us:
                    best, best_configs, best_id = result, trial, len(tree) - 1
    plan.configs = best_configs
    return SearchResult(best_id=best_id, best_source=plan.source(best_configs), best_result=best,
                        tree=tree, stopped=stopped)
