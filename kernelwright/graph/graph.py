"""The whole optimisation flow on one page.

    analyze -> plan -> code (x K, Send) -> queue -> evaluate (x pending, Send) -> queue
                 ^    |                           |
                 |    +-> observe (stopped)       +-> fix -> queue   (failures to repair)
                 |                                +-> profile -> critique   (all evaluated)
                 |                                                     |
                 +---- while the critic says go on <---- observe <---- remember <-+

This file only wires the nodes and routes between them. Each role's node (with its offline and
LLM policy) is in its file under agents/; analyze and evaluate are in steps.py, remember is the
memory's (memory/learn.py). `observe` hands each ended round, and the end, to whoever built the
graph (the served graph's MLflow tracker, api.py; nothing for the CLI, which watches the stream).
The planner recalls experiences for each round's coders; remember
scores the round, moves the Q-values of what the coders saw and stores what the round taught.
Each pending candidate is evaluated by its own task, in parallel on the configured evaluator
(tools/evaluators.py); LangGraph saves each finished task's result, so a resumed run neither
loses nor repeats an evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from kernelwright.agents import coder, critic, fixer, planner, profiler
from kernelwright.config import RunConfig, run_config
from kernelwright.core.records import CandidateStatus, Inputs, Outputs, State
from kernelwright.graph.steps import analyze, evaluate
from kernelwright.memory import learn


def fan_out(state: State) -> list[Send] | Literal["__end__"]:
    if state.get("stop"):
        return "__end__"  # END
    return [Send("code", {**state, "task": t}) for t in state["tasks"]]  # one coder each


def queue(state: State) -> dict[str, Any]:
    """Where coding, repairs and evaluations meet; `dispatch` routes on from here."""
    return {}


def dispatch(state: State, runtime: Runtime[RunConfig]) -> list[Send] | Literal["fix", "profile"]:
    """One evaluate task per pending candidate (run in parallel), else repairs, else profile."""
    pending = [c.id for c in state["tree"] if c.status == CandidateStatus.PENDING]
    if pending:
        return [Send("evaluate", {**state, "evaluating": i}) for i in pending]
    return "fix" if fixer.to_fix(state, run_config(runtime)) else "profile"


def after_round(state: State) -> Literal["plan", "__end__"]:
    return "__end__" if state.get("stop") else "plan"  # "__end__" is END


def unobserved(state: State, runtime: Runtime[RunConfig]) -> dict[str, Any]:
    return {}


def build_graph(checkpointer: Any = None, context_schema: type[RunConfig] = RunConfig,
                observe: Callable[..., dict[str, Any]] = unobserved
                ) -> Any:
    """The compiled graph; the CLI passes a SQLite checkpointer, the server none (and its
    tracker as `observe`)."""
    g = StateGraph(State, input_schema=Inputs, output_schema=Outputs,
                   context_schema=context_schema)
    g.add_node("analyze", analyze)
    g.add_node("plan", planner.node)
    g.add_node("code", coder.node)
    g.add_node("queue", queue)
    g.add_node("evaluate", evaluate)
    g.add_node("fix", fixer.node)
    g.add_node("profile", profiler.node)
    g.add_node("critique", critic.node)
    g.add_node("remember", learn.node)
    g.add_node("observe", observe)
    g.add_edge(START, "analyze")
    g.add_edge("analyze", "plan")
    g.add_conditional_edges("plan", fan_out, {"code": "code", END: "observe"})
    g.add_edge("code", "queue")
    g.add_edge("fix", "queue")
    g.add_edge("evaluate", "queue")
    g.add_conditional_edges("queue", dispatch, ["evaluate", "fix", "profile"])
    g.add_edge("profile", "critique")
    g.add_edge("critique", "remember")
    g.add_edge("remember", "observe")
    g.add_conditional_edges("observe", after_round, ["plan", END])
    return g.compile(checkpointer=checkpointer)
