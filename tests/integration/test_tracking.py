"""MLflow tracking against a real `mlflow server` started on 127.0.0.1: a run's params, stepped
metrics, tags, artifacts and LLM traces; `compare`'s parent and child runs and its table; an
unreachable server that leaves the optimisation intact."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from scripted_llm import ScriptedLLM, relu_reply

from kernelwright.api import optimize
from kernelwright.config import RoleConfig, RunConfig, TrackingConfig
from kernelwright.tracking import TrackingWarning

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "problems"
RELU = EXAMPLES / "level1" / "01_relu.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` with a SQLite store and proxied artifacts, on a free port."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
         str(root / "artifacts"), "--workers", "1"],
        stdout=open(root / "server.log", "w"), stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("mlflow server did not start:\n" + (root / "server.log").read_text())
            time.sleep(0.5)
    yield uri
    proc.terminate()
    proc.wait(timeout=30)


def fake_times(monkeypatch, runtime_us, eager_us=200.0, compile_us=150.0):
    """Real correctness, scripted times (no GPU here): `runtime_us(source, settings)`."""
    import kernelwright.tools.evaluate as harness

    real = harness.evaluate

    def evaluate(problem, source, settings=None):
        result = real(problem, source, settings)
        if not result.ok:
            return result
        us = runtime_us(source, settings)
        return result.model_copy(update=dict(
            runtime_us=us, eager_us=eager_us, sol_fraction=20.0 / us,
            compile_us=compile_us if settings.compile_baseline else None))

    monkeypatch.setattr(harness, "evaluate", evaluate)


def test_a_run_has_params_stepped_metrics_tags_artifacts_and_traces(server, monkeypatch):
    fake_times(monkeypatch, lambda source, _: float(re.search(r"runtime: ([\d.]+)", source)[1]))
    script = [relu_reply(block=1024, runtime=100.0), json.dumps({"lesson": "try 4096", "stop": False}),
              relu_reply(block=4096, runtime=50.0), json.dumps({"lesson": "2x faster; done", "stop": True})]
    with ScriptedLLM(script) as llm:
        role = RoleConfig(policy="llm", model="scripted", base_url=llm.base_url, api_key="sk-secret",
                          max_retries=0)
        config = RunConfig(candidates=1, iterations=3, coder=role, critic=role,
                           tracking=TrackingConfig(uri=server, experiment="a-run"))
        result = optimize(RELU, config)
    assert result.mlflow_run_id and [c.runtime_us for c in result.tree] == [100.0, 50.0]

    mlflow.set_tracking_uri(server)
    runs = mlflow.search_runs(experiment_names=["a-run"], filter_string="tags.problem = '01_relu'",
                              output_format="list")
    assert [r.info.run_id for r in runs] == [result.mlflow_run_id]
    run = runs[0]
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["coder.policy"] == "llm" and params["planner.policy"] == "offline"
    assert params["iterations"] == "3" and params["memory.enabled"] == "True"
    assert not any("api_key" in k for k in params) and "sk-secret" not in json.dumps(params)
    tags = run.data.tags
    assert tags["policy.coder"] == "llm:scripted" and tags["policy.planner"] == "offline"
    assert tags["precision"] == "fp32" and tags["device"] and tags["thread_id"] == result.thread_id

    client = MlflowClient(server)
    history = {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)]
               for k in ("best_speedup_eager", "best_speedup_compile", "sol_fraction",
                         "candidates_evaluated", "fraction_correct", "tokens")}
    assert history["best_speedup_eager"] == [(1, 2.0), (2, 4.0)]
    assert history["best_speedup_compile"] == [(1, 1.5), (2, 3.0)]  # compile timed once, round 1
    assert history["sol_fraction"] == [(1, 0.2), (2, 0.4)]
    assert history["candidates_evaluated"] == [(1, 1.0), (2, 2.0)]
    assert history["fraction_correct"] == [(1, 1.0), (2, 1.0)]
    assert history["tokens"][-1] == (2, float(result.tokens)) and result.tokens > 0

    folder = Path(client.download_artifacts(run.info.run_id, ""))
    assert sorted(p.name for p in folder.iterdir()) == ["best.py", "speedup.png", "summary.json",
                                                        "tree.json"]
    assert (folder / "best.py").read_text() == result.best.source
    assert len(json.loads((folder / "tree.json").read_text())) == 2
    assert json.loads((folder / "summary.json").read_text())["stop"] == result.stop
    assert (folder / "speedup.png").read_bytes()[:4] == b"\x89PNG"

    experiment = client.get_experiment_by_name("a-run").experiment_id
    traces = client.search_traces(locations=[experiment])  # autolog: the graph run, its calls
    models = [s for t in traces for s in t.data.spans if s.span_type == "CHAT_MODEL"]
    assert len(models) == len(llm.requests) == 4, [s.name for t in traces for s in t.data.spans]
    linked = client.search_traces(locations=[experiment], run_id=run.info.run_id)
    assert {t.info.trace_id for t in linked} == {t.info.trace_id for t in traces}  # on its page
    assert run.info.run_name == f"01_relu-{result.thread_id}"  # one name, not doubled


def test_unreachable_tracking_server_leaves_the_optimisation_intact():
    config = RunConfig(candidates=1, iterations=1,
                       tracking=TrackingConfig(uri=f"http://127.0.0.1:{free_port()}"))
    lines = []
    with pytest.warns(TrackingWarning, match="tracking is off"):
        result = optimize(RELU, config, progress=lines.append)
    assert result.best is not None and result.best.correct and result.mlflow_run_id is None
    assert any(line.startswith("tracking: MLflow tracking is off") for line in lines)


def test_compare_two_configurations_over_two_problems(server, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from kernelwright.cli.app import app

    # bf16 candidates "run" twice as fast: the two columns must differ accordingly
    fake_times(monkeypatch, lambda _, settings: 25.0 if settings.precision == "bf16" else 50.0,
               eager_us=100.0, compile_us=80.0)
    suite = tmp_path / "suite"
    (suite / "level1").mkdir(parents=True)
    for name in ("01_relu", "02_gelu_tanh"):
        shutil.copy(EXAMPLES / "level1" / f"{name}.py", suite / "level1" / f"{name}.py")
    first, second = tmp_path / "fp32.yaml", tmp_path / "bf16.yaml"
    first.write_text(f"iterations: 1\ncandidates: 1\ntracking: {{enabled: true, uri: '{server}', "
                     "experiment: cmp}\n")
    second.write_text("iterations: 1\ncandidates: 1\nprecision: bf16\nmemory: {enabled: false}\n")

    out = tmp_path / "out"
    got = CliRunner().invoke(app, ["compare", str(first), str(second), "--suite", str(suite),
                                   "--out", str(out)])
    assert got.exit_code == 0, got.output
    printed = [line.split() for line in got.output.splitlines()]
    assert ["vs", "eager", "2.00x", "4.00x"] in [line[-4:] for line in printed]  # the table
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]]
            for line in (out / "comparison.md").read_text().splitlines()[2:]}
    assert rows["correct"] == ["2/2 (100%)", "2/2 (100%)"]
    assert rows["geomean speedup vs eager"] == ["2.00x", "4.00x"]
    assert rows["geomean speedup vs compile"] == ["1.60x", "3.20x"]
    assert rows["fast_1 vs eager"] == ["100%", "100%"]

    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("cmp").experiment_id
    parents = client.search_runs([experiment], "tags.kind = 'compare'")
    assert len(parents) == 1
    parent = parents[0].info.run_id
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'")
    assert sorted(c.data.tags["config"] for c in children) == ["bf16", "fp32"]
    for child in children:
        bf16 = child.data.tags["config"] == "bf16"
        assert child.data.params["precision"] == ("bf16" if bf16 else "fp32")
        assert child.data.metrics["geomean_speedup_eager"] == pytest.approx(4.0 if bf16 else 2.0)
        assert child.data.metrics["correct_pct"] == 100.0
        runs = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{child.info.run_id}'")
        assert sorted(r.data.tags["problem"] for r in runs) == ["01_relu", "02_gelu_tanh"]
        assert all(r.info.status == "FINISHED" for r in runs)
        assert all(r.info.run_name.count(r.data.tags["problem"]) == 1 for r in runs)  # one name
    table = Path(client.download_artifacts(parent, "comparison.md")).read_text()
    assert "| geomean speedup vs eager | 2.00x | 4.00x |" in table
    problems = Path(client.download_artifacts(parent, "problems.md")).read_text()
    assert "| level1/01_relu | correct, 2.00x eager | correct, 4.00x eager |" in problems
    rows = json.loads(Path(client.download_artifacts(parent, "problems.json")).read_text())
    assert rows["columns"][:3] == ["problem", "config", "status"] and len(rows["data"]) == 4


def test_tracing_llm_calls_downloads_no_model_catalog(monkeypatch):
    """Traces of LLM calls are priced from MLflow's bundled model catalog: no attempt to reach
    GitHub for the latest one (offline, each attempt was a warning)."""
    from mlflow.utils import providers

    from kernelwright.tracking import no_catalog_download

    monkeypatch.delenv("MLFLOW_MODEL_CATALOG_URI", raising=False)
    monkeypatch.setattr(providers, "_remote_cache", None)

    def no_network(provider, url):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(providers, "_fetch_http_provider", no_network)
    no_catalog_download()
    assert providers._fetch_remote_provider("openai") is None
    monkeypatch.setenv("MLFLOW_MODEL_CATALOG_URI", "file:///mirror")  # a user's own is kept
    no_catalog_download()
    assert os.environ["MLFLOW_MODEL_CATALOG_URI"] == "file:///mirror"
