"""The agent graph end to end with the offline policy, on the CPU interpreter."""

from pathlib import Path

import pytest
from corpus import SORTED_ROWS

from kernelwright.api import optimize
from kernelwright.config import RunConfig

SUITE = Path(__file__).resolve().parents[2] / "examples" / "problems"


@pytest.mark.parametrize("name", ["level1/05_rmsnorm", "level2/05_scaled_softmax_mask"])
def test_offline_run_ends_with_a_correct_candidate(name):
    lines = []
    result = optimize(SUITE / f"{name}.py", RunConfig(candidates=2), progress=lines.append)
    assert result.best is not None and result.best.correct
    assert result.best.source and "@triton.jit" in result.best.source
    assert len(result.tree) == 2 and {c.stage for c in result.tree} == {"draft"}
    assert result.stop and "not meaningful" in result.stop  # no GPU: nothing to refine
    assert any(line.startswith("round 1") for line in lines)


def test_a_problem_the_writer_cannot_cover_stops_with_the_missing_ops():
    result = optimize(SORTED_ROWS, RunConfig(candidates=1))
    assert result.best is None
    assert result.tree[0].status == "uncovered" and "sort" in result.tree[0].message
    assert result.stop and "sort" in result.stop


def test_a_failing_candidate_is_repaired_by_the_fixer(monkeypatch):
    """The first draft is broken on purpose (a launcher that raises); the offline fixer's
    rule (back to the writer's default) yields a correct child."""
    import kernelwright.agents.coder as coder

    real = coder.offline_code

    def broken_first(problem, stage, index, parent_configs, tried, *args):
        out = real(problem, stage, index, parent_configs, tried, *args)
        if stage == "draft" and index == 0 and out.source:
            out.source = out.source.replace("def forward_impl(", "def forward_impl(*_):\n"
                                                  "    raise RuntimeError('injected')\n\n\n"
                                                  "def _unused(")
            out.configs = [dict(c, num_warps=1) for c in out.configs]
        return out

    monkeypatch.setattr(coder, "offline_code", broken_first)
    result = optimize(SUITE / "level1/01_relu.py", RunConfig(candidates=1, fix_tries=1))
    first, repaired = result.tree[0], result.tree[1]
    assert first.status == "runtime_error"
    assert repaired.stage == "fix" and repaired.parent == first.id and repaired.correct
    assert result.best is not None and result.best.id == repaired.id


def test_a_wrong_answer_is_repaired_with_the_safest_configuration(monkeypatch):
    """A draft at the writer's default that gives a wrong answer (injected: its kernel stores
    its output scaled) is repaired by the offline fixer with each kernel's safest
    configuration."""
    import re

    import kernelwright.agents.coder as coder

    real = coder.offline_code

    def wrong_first(problem, stage, index, parent_configs, tried, *args):
        out = real(problem, stage, index, parent_configs, tried, *args)
        if stage == "draft" and index == 0 and out.source:
            out.source = re.sub(r"(tl\.store\([^,]+, )(v\d+)\.to", r"\1(\2 * 1.5).to", out.source)
        return out

    monkeypatch.setattr(coder, "offline_code", wrong_first)
    result = optimize(SUITE / "level1/03_softmax.py", RunConfig(candidates=1, fix_tries=1))
    first, repaired = result.tree[0], result.tree[1]
    assert first.status == "incorrect" and first.reason == "mismatch"
    assert repaired.stage == "fix" and repaired.parent == first.id and repaired.correct
    assert "safest configuration" in repaired.change and repaired.configs != first.configs
