"""The graph's routers and prompt templates, without running the graph."""

from types import SimpleNamespace

import pytest

from kernelwright.agents.llm import PROMPTS, prompt
from kernelwright.config import RunConfig
from kernelwright.core.records import Candidate
from kernelwright.graph.graph import after_round, dispatch, fan_out


def tree(*statuses, fixes=0):
    return [Candidate(id=i, stage="draft", change="c", status=s, fixes=fixes,
                      configs=[{"block_r": 1024}]) for i, s in enumerate(statuses)]


def test_dispatch_evaluates_every_pending_candidate_at_once_then_fixes_then_profiles():
    runtime = SimpleNamespace(context=RunConfig(fix_tries=1))
    sends = dispatch({"tree": tree("pending", "correct", "pending")}, runtime)
    assert [s.arg["evaluating"] for s in sends] == [0, 2] and {s.node for s in sends} == {"evaluate"}
    assert dispatch({"tree": tree("correct", "build_error")}, runtime) == "fix"
    assert dispatch({"tree": tree("correct", "build_error", fixes=1)}, runtime) == "profile"
    assert dispatch({"tree": tree("incorrect")}, runtime) == "fix"  # a wrong answer is repaired
    assert dispatch({"tree": tree("rejected")}, runtime) == "profile"  # not fixable


def test_fan_out_sends_one_coder_per_task_unless_stopped():
    tasks = [{"id": 0}, {"id": 1}]
    sends = fan_out({"tasks": tasks, "stop": None})
    assert [s.arg["task"] for s in sends] == tasks and {s.node for s in sends} == {"code"}
    assert fan_out({"tasks": [], "stop": "planner failed"}) == "__end__"
    assert after_round({"stop": "done"}) == "__end__" and after_round({"stop": None}) == "plan"


@pytest.mark.parametrize("name", sorted(p.stem for p in PROMPTS.glob("*.md")))
def test_every_prompt_formats_with_sample_values(name):
    import string

    fields = {f for _, f, _, _ in string.Formatter().parse((PROMPTS / f"{name}.md").read_text())
              if f}
    text = prompt(name, **{f: f"<{f.upper()}-SAMPLE>" for f in fields})
    assert all(f"<{f.upper()}-SAMPLE>" in text for f in fields) and "{" not in text.replace("{{", "")
