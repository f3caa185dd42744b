"""The graph with the LLM policy over real HTTP: ChatOpenAI against a scripted
OpenAI-compatible server on 127.0.0.1 (tests/scripted_llm.py)."""

import json
import re
from pathlib import Path

import pytest
from scripted_llm import ScriptedLLM
from scripted_llm import relu_reply as reply

from kernelwright.api import optimize
from kernelwright.config import RoleConfig, RunConfig

PROBLEM = Path(__file__).resolve().parents[2] / "examples" / "problems" / "level1" / "01_relu.py"


def critique(lesson, stop):
    return json.dumps({"lesson": lesson, "stop": stop})


@pytest.fixture
def scripted_times(monkeypatch):
    """Real correctness on the CPU; the time is read from the candidate (no GPU here)."""
    import kernelwright.tools.evaluate as harness

    real = harness.evaluate

    def evaluate(problem, source, settings=None):
        result = real(problem, source, settings)
        found = re.search(r"scripted-runtime: ([\d.]+)", source)
        if result.ok and found:
            result = result.model_copy(update={"runtime_us": float(found.group(1))})
        return result

    monkeypatch.setattr(harness, "evaluate", evaluate)


def llm_config(server, **kw):
    role = RoleConfig(policy="llm", model="scripted", base_url=server.base_url, api_key="test",
                      max_retries=2, timeout_s=30)
    return RunConfig(candidates=1, fix_tries=1, iterations=4, coder=role, fixer=role, critic=role,
                     **kw)


def test_draft_fix_refine_over_http(scripted_times):
    script = [
        reply(body="tl.maximum(x, 0.0) + tl.no_such_function(x)"),  # draft: fails to compile
        500,  # a transient server error: retried by the client
        reply(runtime=100.0),  # the fixer's repair: correct
        critique("the repair compiled; try a bigger block", False),
        reply(block=4096, runtime=60.0),  # the refinement: faster
        "this is not JSON",  # a garbage critique: asked again
        critique("a 4096 block was 1.7x faster; stop here", True),
    ]
    with ScriptedLLM(script) as server:
        result = optimize(PROBLEM, llm_config(server))
    draft, repair, refined = result.tree
    assert draft.status in {"build_error", "runtime_error"} and draft.stage == "draft"
    assert repair.stage == "fix" and repair.parent == draft.id and repair.correct
    assert refined.stage == "refine" and refined.parent == repair.id and refined.correct
    assert result.best is not None and result.best.id == refined.id
    assert result.stop and result.stop.startswith("critic:")
    assert len(server.requests) == 7 and not server.script
    assert result.tokens == server.tokens_served > 0  # every reply's usage counted once
    # the refine prompt carried the parent's source and time; structured output was requested
    assert "60.0" not in server.requests[4]["messages"][0]["content"]
    assert "scripted-runtime: 100.0" in server.requests[4]["messages"][0]["content"]
    assert server.requests[3].get("response_format", {}).get("type") == "json_schema"


def test_a_wrong_answer_reaches_the_fixer_with_its_mismatch_report(scripted_times):
    script = [
        reply(body="tl.maximum(x, 0.0) * 1.5"),  # draft: builds and runs, but wrong
        reply(runtime=90.0),  # the fixer's repair: correct
        critique("repaired; good enough", True),
    ]
    with ScriptedLLM(script) as server:
        result = optimize(PROBLEM, llm_config(server))
    draft, repair = result.tree
    assert draft.status == "incorrect" and draft.reason == "mismatch"
    assert repair.stage == "fix" and repair.parent == draft.id and repair.correct
    fixer_prompt = server.requests[1]["messages"][0]["content"]
    assert "Failure: incorrect: output 0" in fixer_prompt  # which output, how many, how far off
    assert "exceed the tolerance" in fixer_prompt and "first at [" in fixer_prompt  # and where
    assert result.best is not None and result.best.id == repair.id


def test_endpoint_going_down_ends_the_run_with_its_tree(scripted_times):
    with ScriptedLLM([reply(runtime=80.0), "DOWN"]) as server:
        result = optimize(PROBLEM, llm_config(server))
    assert result.stop and result.stop.startswith("LLM failure")
    assert [c.status for c in result.tree] == ["correct"]  # the evaluated draft is kept
    assert result.best is not None and result.best.source


def test_endpoint_without_json_schema_and_replies_without_code():
    from kernelwright.agents.critic import Critique
    from kernelwright.agents.llm import LLMError, ask

    with ScriptedLLM([400, critique("plain JSON works", True), "no code, sorry", reply(),
                      "still none", "none again", "nor now"]) as server:
        role = RoleConfig(policy="llm", model="scripted", base_url=server.base_url,
                          api_key="test", max_retries=0)
        got = ask(role, "review", schema=Critique)
        assert got.parsed == Critique(lesson="plain JSON works", stop=True)
        assert "response_format" in server.requests[0]
        assert "response_format" not in server.requests[1]  # fell back to plain JSON
        code = ask(role, "write", want_code=True)  # first reply has no code: asked again
        assert "class ModelNew" in code.text and code.tokens > 0
        with pytest.raises(LLMError, match="no fenced code block") as failed:
            ask(role, "write", want_code=True)  # three replies without code
        assert failed.value.tokens > 0  # what the failed exchange spent still counts


def plan_choice(parent, strategy):
    return json.dumps({"parent": parent, "strategy": strategy})


def diagnosis(bottleneck, advice):
    return json.dumps({"bottleneck": bottleneck, "advice": advice})


def test_every_role_on_the_llm_policy(scripted_times):
    """--model puts all five roles on the LLM: the planner's choice and strategy reach the
    coders, the profiler's diagnosis reaches the refinement, a bad parent falls back."""
    script = [
        plan_choice(None, "STRATEGY-A: one program per 1024 elements"),
        reply(runtime=100.0),
        diagnosis("DIAG-B: memory-bound at 40% of bandwidth", "use 4096-element blocks"),
        critique("the draft works", False),
        plan_choice(7, "STRATEGY-C: larger blocks"),  # #7 does not exist: refine the best
        reply(block=4096, runtime=60.0),
        diagnosis("close to the floor", "stop"),
        critique("done", True),
    ]
    with ScriptedLLM(script) as server:
        config = RunConfig(candidates=1, iterations=2).with_model("scripted", server.base_url)
        result = optimize(PROBLEM, config)
    draft, refined = result.tree
    assert draft.correct and refined.parent == draft.id and refined.stage == "refine"
    assert draft.diagnosis.startswith("DIAG-B") and refined.diagnosis.startswith("close")
    prompts = [r["messages"][0]["content"] for r in server.requests]
    assert "STRATEGY-A" in prompts[1] and "STRATEGY-C" in prompts[5]
    assert "DIAG-B" in prompts[5]  # the refinement saw the profiler's diagnosis
    assert "#0" in prompts[4]  # the planner saw the tree
    assert any("planner chose #7" in line for line in result.log)
    assert result.tokens == server.tokens_served and not server.script


def test_planner_failure_and_time_budget_end_runs_cleanly(scripted_times):
    with ScriptedLLM(["DOWN"]) as server:
        config = RunConfig(candidates=1).with_model("scripted", server.base_url)
        result = optimize(PROBLEM, config.model_copy(update={"planner": config.planner.model_copy(
            update={"max_retries": 0})}))
    assert result.stop and "planner" in result.stop and result.tree == []
    with ScriptedLLM([reply(runtime=90.0), critique("go on", False)]) as server:
        result = optimize(PROBLEM, llm_config(server, max_seconds=0.001))
    assert result.stop and result.stop.startswith("time budget spent")
    assert result.seconds > 0.001 and len(result.tree) == 1


def test_resume_after_an_endpoint_failure_retries(scripted_times, tmp_path):
    """A run ended by an LLM failure (the endpoint answering 500 past its retries) is retried
    by --resume: the next round sends requests again and finishes the run."""
    checkpoint = tmp_path / "runs.sqlite"
    with ScriptedLLM([500, 500, 500]) as server:
        first = optimize(PROBLEM, llm_config(server), checkpoint=checkpoint, thread_id="t1")
    assert first.stop and first.stop.startswith("LLM failure") and first.best is None
    with ScriptedLLM([reply(runtime=70.0), critique("fine", True)]) as server:
        lines: list[str] = []
        resumed = optimize(PROBLEM, llm_config(server), checkpoint=checkpoint, thread_id="t1",
                           resume=True, progress=lines.append)
        assert len(server.requests) == 2 and not server.script  # the retry asked the model again
    assert any("retrying" in line for line in lines)
    assert resumed.best is not None and resumed.best.correct
    assert resumed.stop and resumed.stop.startswith("critic:")
