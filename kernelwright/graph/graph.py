"""The whole optimisation flow on one page.

    analyze -> plan -> code (x K, Send) -> queue -> evaluate (x pending, Send) -> queue
                 ^                                |
                 |                                +-> fix -> queue   (failures to repair)
                 |                                +-> profile -> critique   (all evaluated)
                 |                                                     |
                 +------- while the critic says go on <------- remember <-+

The planner recalls experiences from the memory for each round's coders; remember scores the
round, moves the Q-values of what the coders saw and stores what the round taught.

Each node is a thin function: it reads the state, asks a role's policy (agents/) or a tool
(tools/), and returns a partial update. Each pending candidate is evaluated by its own task,
in parallel on the configured evaluator (tools/evaluators.py: this host's GPUs, or Ray's);
LangGraph saves each finished task's result, so a resumed run neither loses nor repeats an
evaluation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from kernelwright.config import RunConfig
from kernelwright.core.records import FIXABLE, Candidate, CandidateStatus, Inputs, Outputs, State, Task


def analyze(state: State, runtime: Runtime[RunConfig]) -> dict[str, Any]:
    """Load the problem, pick the device the backend runs on, shrink the problem for the CPU."""
    import torch

    from kernelwright.core.problem import load_problem, parse_problem
    from kernelwright.hardware.backends import get_backend
    from kernelwright.hardware.calibrate import device_name
    from kernelwright.memory.learn import signature_of
    from kernelwright.memory.store import open_store

    cfg = _config(runtime)
    backend = get_backend(cfg.backend)
    device = backend.device(cfg.device, torch.cuda.is_available())
    if state.get("problem_path"):
        problem = load_problem(state["problem_path"])
    else:  # a client sent the source text
        problem = parse_problem(state.get("problem_source", ""),
                                f"{state.get('problem_name') or 'problem'}.py")
    problem.check_runs()  # the problem's own failure is reported as such, before any candidate
    if device == "cpu":
        problem = problem.shrink(backend.cpu_elements(cfg.cpu_max_elements,
                                                      cfg.cpu_backend_max_elements))
    if cfg.memory.enabled:
        open_store(cfg.memory)  # a locked or unreadable store stops the run now, not later
    return {"problem_path": problem.path, "problem_source": problem.source,
            "size_overrides": problem.size_overrides,
            "signature": signature_of(problem, cfg).model_dump(),
            "hardware": device_name(device), "device": device, "round": 0, "stale_rounds": 0,
            "tree": [], "best_id": None, "stop": None, "failure": None,
            "log": [f"analyze: {problem.name}, {cfg.backend} backend on {device}"]}


def plan(state: State, runtime: Runtime[RunConfig]) -> dict[str, Any]:
    """The planner: the parent to expand, the stage and the strategy of this round's coders."""
    from kernelwright.agents.llm import LLMError
    from kernelwright.agents.planner import llm_plan, offline_plan
    from kernelwright.memory.experience import Signature
    from kernelwright.memory.learn import recall

    cfg = _config(runtime)
    log, tokens = [], 0
    if cfg.planner.policy == "llm":
        try:
            tasks, tokens, note = llm_plan(state["tree"], cfg, Path(state["problem_path"]).stem)
        except LLMError as exc:
            failure = exc.outcome("planner")
            return {"tasks": [], "failure": failure, "stop": failure, "tokens": exc.tokens,
                    "log": [f"stop: {failure}"]}
        log += [f"  planner: {note}"] if note else []
    else:
        tasks = offline_plan(state["tree"], cfg)
    recalled = recall(cfg, tasks[0]["stage"], Signature(**state["signature"]), state["hardware"])
    for t in tasks:
        t["memory"] = recalled
    log += [f"  recalled: {len(recalled)} experience(s)"] if recalled else []
    what = f"{tasks[0]['stage']} x{len(tasks)}" + (
        f" from #{tasks[0]['parent']}" if tasks[0]["parent"] is not None else "") + (
        f": {tasks[0]['strategy']}" if tasks[0]["strategy"] else "")
    return {"tasks": tasks, "round": state["round"] + 1, "tokens": tokens,
            "log": [f"round {state['round'] + 1}: plan {what}"] + log}


def fan_out(state: State) -> list[Send] | Literal["__end__"]:
    if state.get("stop"):
        return "__end__"  # END
    return [Send("code", {**state, "task": t}) for t in state["tasks"]]  # one coder each


def code(state: State, runtime: Runtime[RunConfig]) -> dict[str, Any]:
    """One coder: the offline writer, or the coder role's model."""
    from kernelwright.agents.coder import llm_code, offline_code
    from kernelwright.agents.llm import LLMError

    task: Task = state["task"]
    cfg = _config(runtime)
    tree: list[Candidate] = state["tree"]
    parent = next((c for c in tree if c.id == task["parent"]), None)
    base = dict(id=task["id"], parent=task["parent"], stage=task["stage"],
                memory=[m["id"] for m in task["memory"]])
    started = time.perf_counter()
    if cfg.coder.policy == "llm":
        try:
            source, strategy, tokens = llm_code(
                _problem(state), cfg.coder, task["stage"], task["index"], task["strategy"],
                parent.source if parent else None,
                f"{parent.runtime_us} us" if parent and parent.runtime_us else "not timed",
                parent.diagnosis if parent else "", cfg.precision, cfg.guard, cfg.backend,
                [m["lesson"] for m in task["memory"]])
        except LLMError as exc:
            return {"tree": [Candidate(**base, change="coder model failed",
                                       status=CandidateStatus.LLM_ERROR,
                                       message=exc.outcome("coder"))], "tokens": exc.tokens}
        return {"tree": [Candidate(**base, change=strategy, source=source)], "tokens": tokens,
                "seconds": time.perf_counter() - started}
    out = offline_code(_problem(state), task["stage"], task["index"],
                       parent.configs if parent else None, [c.configs for c in tree if c.configs],
                       cfg.precision, cfg.guard, cfg.backend,
                       [m["configs"] for m in task["memory"] if m["configs"]])
    if "source" not in out:
        status = CandidateStatus.UNCOVERED if "missing" in out else CandidateStatus.EXHAUSTED
        return {"tree": [Candidate(**base, change=out["message"], status=status,
                                   message=out["message"])]}
    return {"tree": [Candidate(**base, change=out["change"], source=out["source"],
                               configs=out["configs"])],
            "seconds": time.perf_counter() - started}


def queue(state: State) -> dict[str, Any]:
    """Where coding, repairs and evaluations meet; `dispatch` routes on from here."""
    return {}


def dispatch(state: State, runtime: Runtime[RunConfig]) -> list[Send] | Literal["fix", "profile"]:
    """One evaluate task per pending candidate (run in parallel), else repairs, else profile."""
    pending = [c.id for c in state["tree"] if c.status == CandidateStatus.PENDING]
    if pending:
        return [Send("evaluate", {**state, "evaluating": i}) for i in pending]
    return "fix" if _to_fix(state, _config(runtime)) else "profile"


def evaluate(state: State, runtime: Runtime[RunConfig]) -> dict[str, Any]:
    """Evaluate one candidate with the harness, on a free slot of the configured evaluator."""
    from kernelwright.agents.profiler import facts
    from kernelwright.tools.evaluators import get_evaluator

    c = next(c for c in state["tree"] if c.id == state["evaluating"])
    cfg = _config(runtime)
    first = min(t.id for t in state["tree"] if t.status == CandidateStatus.PENDING)
    once = cfg.compile_baseline and c.id == first and not any(t.compile_us for t in state["tree"])
    result = get_evaluator(cfg.evaluator).evaluate(_problem(state), c.source or "",
                                                   cfg.eval_settings(state["device"], once))
    done = c.model_copy(update=dict(
        status=CandidateStatus(result.status.value), reason=result.reason or "", message=result.message,
        runtime_us=result.runtime_us, eager_us=result.eager_us, compile_us=result.compile_us,
        sol_fraction=result.sol_fraction,
        facts=facts(result) if result.ok else ""))
    return {"tree": [done], "seconds": result.wall_s or 0.0,
            "log": [f"  #{c.id} {c.change}: {done.status}"
                    + (f" {done.runtime_us:.1f} us" if done.runtime_us else "")]}


def fix(state: State, runtime: Runtime[RunConfig]) -> dict[str, Any]:
    """Repair each fixable failure of this round with the fixer's policy."""
    from dataclasses import asdict

    from kernelwright.agents.coder import offline_plans, plan_of
    from kernelwright.agents.fixer import llm_fix, offline_fix
    from kernelwright.agents.llm import LLMError

    cfg = _config(runtime)
    next_id = max(c.id for c in state["tree"]) + 1
    made: list[Candidate] = []
    tokens = 0
    plans: list[Any] = []  # the offline writer's plans, captured once for all repairs
    for failed in _to_fix(state, cfg):
        made.append(failed.model_copy(update={"fixes": cfg.fix_tries}))  # repaired once only
        child = dict(id=next_id, parent=failed.id, stage="fix", fixes=failed.fixes + 1)
        if cfg.fixer.policy == "llm":
            try:
                source, used = llm_fix(_problem(state), failed, cfg.fixer, cfg.backend)
            except LLMError as exc:
                made.append(Candidate(**child, change="fixer model failed",
                                      status=CandidateStatus.LLM_ERROR, message=exc.outcome("fixer")))
                tokens += exc.tokens
                break
            tokens += used
            made.append(Candidate(**child, change=f"repair of #{failed.id}", source=source))
        else:
            plans = plans or offline_plans(_problem(state), cfg.precision, cfg.guard, cfg.backend)
            _, writer = plan_of(plans, failed.configs)  # the plan the failed candidate came from
            repair = offline_fix(failed, writer.configs)
            if repair is None:
                continue
            configs, change = repair
            made.append(Candidate(**child, change=change, source=writer.source(configs),
                                  configs=[asdict(c) for c in configs]))
        next_id += 1
    repairs = [c for c in made if c.stage == "fix" and c.status == CandidateStatus.PENDING]
    return {"tree": made, "tokens": tokens, "log": [f"  fix: {len(repairs)} repair(s)"]}


def profile(state: State, runtime: Runtime[RunConfig]) -> dict[str, Any]:
    """The profiler: a diagnosis of each correct candidate not yet diagnosed."""
    from kernelwright.agents.llm import LLMError
    from kernelwright.agents.profiler import llm_profile

    cfg = _config(runtime)
    made, tokens = [], 0
    for c in (c for c in state["tree"] if c.correct and not c.diagnosis):
        if cfg.profiler.policy != "llm":
            made.append(c.model_copy(update={"diagnosis": c.facts}))
            continue
        try:
            text, used = llm_profile(Path(state["problem_path"]).stem, c, cfg.profiler)
        except LLMError as exc:
            return {"tree": made, "tokens": tokens + exc.tokens, "failure": exc.outcome("profiler")}
        tokens += used
        made.append(c.model_copy(update={"diagnosis": text}))
    return {"tree": made, "tokens": tokens,
            "log": [f"  profile #{c.id}: {c.diagnosis}" for c in made]}


def critique(state: State, runtime: Runtime[RunConfig]) -> dict[str, Any]:
    """The round's lessons and the decision to go on; LLM failures end the run cleanly."""
    from kernelwright.agents.critic import lesson, llm_critique, stop_reason
    from kernelwright.agents.llm import LLMError

    cfg = _config(runtime)
    tree = state["tree"]
    first = min(t["id"] for t in state["tasks"])
    this_round = [c for c in tree if c.id >= first]
    best = min((c for c in tree if c.correct), key=lambda c: c.runtime_us or float("inf"),
               default=None)
    before = next((c for c in tree if c.id == state.get("best_id")), None)
    improved = best is not None and (before is None or (best.runtime_us or 0) <
                                     (before.runtime_us or float("inf")))
    stale = 0 if improved else state["stale_rounds"] + 1
    stop = stop_reason(tree, this_round, best, state["round"], stale, state.get("tokens", 0),
                       state.get("seconds", 0.0), state.get("failure"), cfg)
    failed = state.get("failure") or any(c.status == CandidateStatus.LLM_ERROR for c in this_round)
    lessons = [lesson(c) for c in this_round]
    tokens = 0
    if cfg.critic.policy == "llm" and not failed:
        try:
            floor = (f"{best.runtime_us * best.sol_fraction:.1f} us" if best and best.runtime_us
                     and best.sol_fraction else "unknown (no GPU timing yet)")
            verdict, tokens = llm_critique(Path(state["problem_path"]).stem, floor, best,
                                           this_round, cfg.critic)
        except LLMError as exc:
            verdict, stop = None, exc.outcome("critic")
        if verdict is not None:
            lessons = [verdict.lesson]
            stop = stop or (f"critic: {verdict.lesson}" if verdict.stop else None)
    return {"best_id": best.id if best else None, "best": best, "stale_rounds": stale, "stop": stop,
            "tokens": tokens, "lessons": {str(c.id): lesson(c) for c in this_round},
            "log": [f"  critic: {'; '.join(lessons)}"] + ([f"stop: {stop}"] if stop else [])}


def remember(state: State, runtime: Runtime[RunConfig]) -> dict[str, Any]:
    """The memory node: rewards for this round, Q updates, the round's experiences stored."""
    from kernelwright.memory.experience import Signature
    from kernelwright.memory.learn import remember as store_round

    first = min(t["id"] for t in state["tasks"])
    before = [c.runtime_us for c in state["tree"] if c.id < first and c.correct and c.runtime_us]
    log = store_round(_config(runtime), Path(state["problem_path"]).stem,
                      Signature(**state["signature"]), state["hardware"],
                      [c for c in state["tree"] if c.id >= first], min(before, default=None),
                      state.get("lessons", {}), state.get("run_id", ""))
    return {"log": log}


def after_remember(state: State) -> Literal["plan", "__end__"]:
    return "__end__" if state.get("stop") else "plan"  # "__end__" is END


def build_graph(checkpointer: Any = None) -> Any:
    """The compiled graph; the CLI passes a SQLite checkpointer, the server none."""
    g = StateGraph(State, input_schema=Inputs, output_schema=Outputs, context_schema=RunConfig)
    g.add_node("analyze", analyze)
    g.add_node("plan", plan)
    g.add_node("code", code)
    g.add_node("queue", queue)
    g.add_node("evaluate", evaluate)
    g.add_node("fix", fix)
    g.add_node("profile", profile)
    g.add_node("critique", critique)
    g.add_node("remember", remember)
    g.add_edge(START, "analyze")
    g.add_edge("analyze", "plan")
    g.add_conditional_edges("plan", fan_out, ["code", END])
    g.add_edge("code", "queue")
    g.add_edge("fix", "queue")
    g.add_edge("evaluate", "queue")
    g.add_conditional_edges("queue", dispatch, ["evaluate", "fix", "profile"])
    g.add_edge("profile", "critique")
    g.add_edge("critique", "remember")
    g.add_conditional_edges("remember", after_remember, ["plan", END])
    return g.compile(checkpointer=checkpointer)


def _config(runtime: Runtime[RunConfig]) -> RunConfig:
    """The run's settings: the context given with the run, else the defaults (and the
    environment: KERNELWRIGHT_*), as for a server run started without a context."""
    return runtime.context if runtime.context is not None else RunConfig()


def server_graph() -> Any:
    """The graph langgraph.json serves (the server persists threads itself)."""
    return build_graph()


def _problem(state: Any) -> Any:
    from kernelwright.core.problem import Problem

    return Problem(state["problem_path"], state["problem_source"], state["size_overrides"])


def _to_fix(state: State, cfg: RunConfig) -> list[Candidate]:
    return [c for c in state["tree"] if c.status in FIXABLE and c.fixes < cfg.fix_tries
            and (c.configs or cfg.fixer.policy == "llm")]
