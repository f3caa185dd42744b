"""MLflow tracking: one MLflow run per optimisation, the same shape for every configuration.

    params     the whole RunConfig, flattened (coder.model, memory.enabled, ...; no API keys)
    metrics    per round (step = round): best speedup vs eager and vs torch.compile, SOL
               fraction, best time, candidates evaluated, fraction correct, tokens
    tags       problem, device, precision, backend, the policy of each role, the thread id
    artifacts  best.py, tree.json, summary.json, speedup.png
    traces     MLflow's LangChain autolog, when a role uses an LLM

Tracking never costs the optimisation: a tracking server that cannot be reached, or any MLflow
error, becomes one warning and the run goes on untracked.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernelwright.config import RunConfig
    from kernelwright.core.records import Candidate, Result

log = logging.getLogger(__name__)
DEFAULT_URI = "sqlite:///mlflow.db"
SECRET_FIELDS = {"api_key"}


class TrackingWarning(UserWarning):
    """MLflow failed; the optimisation went on without it."""


def tracking_uri(config: RunConfig) -> str:
    return config.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def flatten(config: RunConfig) -> dict[str, str]:
    """Every setting as `section.field -> text`, the API keys left out."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k not in SECRET_FIELDS:
                    walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = "" if value is None else str(value)

    walk("", config.model_dump(mode="json"))
    return out


def policy_tags(config: RunConfig) -> dict[str, str]:
    from kernelwright.config import ROLES

    roles = {r: getattr(config, r) for r in ROLES}
    return {f"policy.{r}": f"llm:{c.model}" if c.policy == "llm" else "offline"
            for r, c in roles.items()}


def round_metrics(tree: list[Candidate], tokens: int) -> dict[str, float]:
    """The figures logged at each round's step."""
    evaluated = [c for c in tree if c.evaluated]
    correct = [c for c in evaluated if c.correct]
    out = {"candidates_evaluated": float(len(evaluated)), "tokens": float(tokens),
           "fraction_correct": len(correct) / len(evaluated) if evaluated else 0.0}
    timed = [c for c in correct if c.runtime_us]
    best = min(timed, key=lambda c: c.runtime_us or 0.0, default=None)
    if best is None or not best.runtime_us:
        return out  # no timing (the CPU interpreter): no speedups are logged, none invented
    out["best_us"] = best.runtime_us
    # one eager and one compile figure for the whole run (the first measured): every round's
    # speedup is then over the same baseline, and a faster kernel never charts as a fall
    eager = next((c.eager_us for c in tree if c.eager_us), None)
    compiled = next((c.compile_us for c in tree if c.compile_us), None)
    if eager and not best.within_noise:  # within the noise: no speedup is claimed
        out["best_speedup_eager"] = eager / best.runtime_us
    if compiled:
        out["best_speedup_compile"] = compiled / best.runtime_us
    if best.sol_fraction:
        out["sol_fraction"] = best.sol_fraction
    return out


class MlflowRun:
    """An MLflow run whose every call is guarded: the first failure warns once and turns the
    run's tracking off. Used as is for the runs that group others (`compare`'s parent run and
    one child per configuration); `Tracker` adds what an optimisation logs."""

    def __init__(self, config: RunConfig, *, parent_run_id: str | None = None,
                 say: Callable[[str], None] = lambda _: None) -> None:
        self.config, self.parent, self.say = config, parent_run_id, say
        self.client: Any = None
        self.run_id: str | None = None
        self.experiment = ""

    def open(self, name: str, tags: dict[str, str], params: dict[str, str] | None = None) -> None:
        if self.config.tracking.enabled:
            self._guard(self._open, name, tags, params or {}, None)

    def close(self, metrics: dict[str, float], texts: dict[str, str], status: str) -> None:
        """Log final metrics and text artifacts (name -> content), then end the run."""
        if self.run_id is not None:
            self._guard(self._close, metrics, texts, status)

    def log_table(self, table: dict[str, list[Any]], name: str) -> None:
        """A table (column -> values) as an artifact the MLflow UI shows as a table."""
        if self.run_id is not None:
            self._guard(lambda: self.client.log_table(self.run_id, table, name))

    def _open(self, name: str, tags: dict[str, str], params: dict[str, str],
              resume_thread: str | None) -> None:
        from mlflow import MlflowClient
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

        uri = tracking_uri(self.config)
        _reachable(uri)
        client = MlflowClient(uri)
        launched = os.environ.get("MLFLOW_RUN_ID")  # by `mlflow run` (the MLproject): nest in it
        if launched and not self.parent:
            self.parent = launched
            experiment = client.get_run(launched).info.experiment_id
        else:
            experiment = experiment_id(client, self.config.tracking.experiment)
        self.experiment = experiment
        resumed = client.search_runs([experiment], f"tags.thread_id = '{resume_thread}'",
                                     max_results=1) if resume_thread else []
        if resumed:  # a resumed thread continues its run
            self.run_id = resumed[0].info.run_id
            client.update_run(self.run_id, "RUNNING")
        else:
            tags = {MLFLOW_RUN_NAME: name, **tags}
            if self.parent:
                tags[MLFLOW_PARENT_RUN_ID] = self.parent
            self.run_id = client.create_run(experiment, tags=tags).info.run_id
            log_params(client, self.run_id, params)
        self.client = client

    def _close(self, metrics: dict[str, float], texts: dict[str, str], status: str) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        if metrics:
            self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, 0)
                                                        for k, v in metrics.items()])
        for name, text in texts.items():
            self.client.log_text(self.run_id, text, name)
        self._end(status, None)

    def _end(self, status: str, why: str | None) -> None:
        if why:
            self.client.set_tag(self.run_id, "error", why[:5000])
        self.client.set_terminated(self.run_id, status)

    def _guard(self, call: Callable[..., None], *args: Any) -> None:
        """Run one tracking call; a failure warns once and turns tracking off."""
        try:
            call(*args)
        except Exception as exc:  # MLflow raises many kinds; none may stop the optimisation
            first = str(exc).splitlines()[0] if str(exc) else ""
            message = (f"MLflow tracking is off for this run ({tracking_uri(self.config)}): "
                       f"{type(exc).__name__}: {first}. The optimisation goes on; check "
                       "tracking.uri or MLFLOW_TRACKING_URI.")
            warnings.warn(message, TrackingWarning, stacklevel=3)
            self.say(f"tracking: {message}")
            self.run_id = None


class Tracker(MlflowRun):
    """One optimisation's MLflow run. `start(thread_id)` first, `step(state)` after every graph
    step, `finish(result)` at the end, `fail(error)` if the run raised. With `parent_run_id`
    the run is nested under it (how `kernelwright compare` groups a suite)."""

    def __init__(self, config: RunConfig, problem: str, *, parent_run_id: str | None = None,
                 say: Callable[[str], None] = lambda _: None) -> None:
        super().__init__(config, parent_run_id=parent_run_id, say=say)
        self.problem = problem
        self.rounds: dict[int, dict[str, float]] = {}
        self.logged: set[int] = set()
        self.tagged = False
        self.tracing = False
        self.started_ms = 0
        self.traced = False  # LLM traces were autologged for this run

    def start(self, thread_id: str) -> None:
        if self.config.tracking.enabled:
            self._guard(self._start, thread_id)

    def step(self, state: dict[str, Any]) -> None:
        """Keep the round's figures; log the rounds that have ended."""
        if self.run_id is None:
            return
        current = state.get("round", 0)
        if current:
            self.rounds[current] = round_metrics(state.get("tree", []), state.get("tokens", 0))
        if not self.tagged and state.get("hardware"):
            self._guard(self._tag_device, state)
        ended = [r for r in self.rounds if r < current and r not in self.logged]
        if ended:
            self._guard(self._log_rounds, ended)

    def round_ended(self, state: dict[str, Any]) -> None:
        """Log the round that `state` ends (the served graph's `observe` node calls this; a
        tracker there lives for one call, so it cannot wait for the next round to begin)."""
        current = state.get("round", 0)
        if self.run_id is None or not current:
            return
        if not self.tagged and state.get("hardware"):
            self._guard(self._tag_device, state)
        self.rounds[current] = round_metrics(state.get("tree", []), state.get("tokens", 0))
        if current not in self.logged:
            self._guard(self._log_rounds, [current])

    def finish(self, result: Result) -> None:
        self._stop_tracing()
        if self.run_id is None:
            return
        self._guard(self._log_rounds, [r for r in self.rounds if r not in self.logged])
        self._guard(self._finish, result)

    def fail(self, error: BaseException) -> None:
        self._stop_tracing()
        if self.run_id is not None:
            status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            self._guard(self._end, status, f"{type(error).__name__}: {error}")

    def _stop_tracing(self) -> None:
        """Send the traces still queued, and trace nothing after this run."""
        if self.tracing:
            self.tracing = False
            self._guard(_autolog_off)

    def _start(self, thread_id: str) -> None:
        from kernelwright.core import VERSION

        tags = {"problem": self.problem, "thread_id": thread_id,
                "precision": self.config.precision, "backend": self.config.backend,
                "guard": self.config.guard, "kernelwright": VERSION,
                **policy_tags(self.config)}
        # one name: a suite's thread id already holds the problem's name
        name = thread_id if self.problem in thread_id else f"{self.problem}-{thread_id}"
        self._open(name, tags, flatten(self.config), thread_id)
        self.started_ms = int(time.time() * 1000)
        self.logged = {int(m.step) for m in self.client.get_metric_history(self.run_id, "tokens")}
        self.tracing = self.config.tracking.traces and any(
            t.startswith("llm") for t in policy_tags(self.config).values())
        if self.tracing:
            _autolog_traces(tracking_uri(self.config), self.experiment)
            self.traced = True
        self.say(f"tracking: MLflow run {self.run_id} at {tracking_uri(self.config)}")

    def _tag_device(self, state: dict[str, Any]) -> None:
        import torch
        import triton

        timings = ("measured" if state.get("device") == "cuda" or self.config.backend == "cpu"
                   else "not meaningful (Triton interpreter on the CPU): none logged")
        for key, value in {"device": state["hardware"], "timings": timings,
                           "torch": torch.__version__, "triton": triton.__version__}.items():
            self.client.set_tag(self.run_id, key, value)
        self.tagged = True

    def _log_rounds(self, rounds: list[int]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, r) for r in sorted(rounds) for k, v in self.rounds[r].items()]
        self.client.log_batch(self.run_id, metrics=batch)
        self.logged.update(rounds)

    def _finish(self, result: Result) -> None:
        client, run = self.client, self.run_id
        if result.best is not None and result.best.source:
            client.log_text(run, result.best.source, "best.py")
        client.log_text(run, json.dumps([c.model_dump(mode="json") for c in result.tree], indent=1),
                        "tree.json")
        summary = result.model_dump(mode="json", exclude={"tree"})
        summary["metrics"] = self.rounds.get(max(self.rounds, default=0), {})
        client.log_dict(run, summary, "summary.json")
        client.log_figure(run, speedup_figure(self.rounds, self.problem), "speedup.png")
        client.set_tag(run, "stop", (result.stop or "")[:5000])
        self._link_traces()
        self._end("FINISHED" if result.best is not None else "FAILED", None)

    def _link_traces(self) -> None:
        """Link this run's LLM traces (autologged, so not tied to any run) to it: the traces of
        its experiment that started while it ran and belong to no run yet."""
        if not self.traced:
            return
        found = self.client.search_traces(
            locations=[self.experiment], include_spans=False, max_results=500,
            filter_string=f"timestamp_ms >= {self.started_ms}")
        mine = [t.info.trace_id for t in found
                if not (t.info.trace_metadata or {}).get("mlflow.sourceRun")]
        for i in range(0, len(mine), 100):
            self.client.link_traces_to_run(mine[i:i + 100], self.run_id)


def log_file(config: RunConfig, run_id: str, path: Path,
             say: Callable[[str], None] = lambda _: None) -> None:
    """Log a file (a report page) as an artifact of a run; a failure warns and is said."""
    run = MlflowRun(config, say=say)
    run.run_id = run_id

    def log() -> None:
        from mlflow import MlflowClient

        MlflowClient(tracking_uri(config)).log_artifact(run_id, str(path))

    run._guard(log)


def experiment_id(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def log_params(client: Any, run_id: str, params: dict[str, str]) -> None:
    """MLflow takes at most 100 params per call."""
    from mlflow.entities import Param

    items = [Param(k, v[:6000]) for k, v in sorted(params.items())]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i:i + 100])


def speedup_figure(rounds: dict[int, dict[str, float]], title: str) -> Any:
    """Best speedup over the rounds (vs eager and vs compile); says so when nothing was timed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    steps = sorted(rounds)
    for key, label in (("best_speedup_eager", "vs eager"), ("best_speedup_compile", "vs compile")):
        points = [(s, rounds[s][key]) for s in steps if key in rounds[s]]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    if ax.lines:
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no timings (correctness only on this machine)", ha="center",
                va="center", transform=ax.transAxes)
    ax.set(xlabel="round", ylabel="best speedup", title=title)
    fig.tight_layout()
    return fig


def _reachable(uri: str) -> None:
    """A tracking server that does not answer fails fast, not after MLflow's retries."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.request

    with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5):
        pass


def no_catalog_download() -> None:
    """MLflow prices traced LLM calls from a model catalog it downloads from GitHub, once per
    provider; its bundled copy prices them as well without the network (offline, each attempt
    printed a warning). A catalog the user points MLflow at (MLFLOW_MODEL_CATALOG_URI) is kept."""
    os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")


def _autolog_traces(uri: str, experiment_id: str) -> None:
    import mlflow
    import mlflow.langchain

    no_catalog_download()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    mlflow.langchain.autolog(log_traces=True, silent=True)


def _autolog_off() -> None:
    import mlflow
    import mlflow.langchain

    mlflow.flush_trace_async_logging()
    mlflow.langchain.autolog(disable=True, silent=True)
