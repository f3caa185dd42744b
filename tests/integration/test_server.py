"""kernelwright behind a LangGraph server: `langgraph dev` on 127.0.0.1 (a free port), driven
through langgraph_sdk with the offline policy on the Triton interpreter."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
RELU = ROOT / "examples" / "problems" / "level1" / "01_relu.py"


@pytest.fixture
def server(tmp_path, private_memory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "1",
           "KERNELWRIGHT_MEMORY__PATH": str(private_memory),
           "KERNELWRIGHT_TRACKING__ENABLED": "true",  # (the tests turn it off elsewhere)
           "KERNELWRIGHT_TRACKING__URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "langgraph_cli", "dev", "--no-browser", "--no-reload",
         "--allow-blocking", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail(f"langgraph dev did not start:\n{(tmp_path / 'server.log').read_text()}")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def test_runs_stream_progress_and_run_side_by_side(server, tmp_path):
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server)
    [assistant] = client.assistants.search(graph_id="kernelwright")
    # one run streamed, the problem sent as source text
    thread = client.threads.create()
    chunks = list(client.runs.stream(
        thread["thread_id"], assistant["assistant_id"],
        input={"problem_source": RELU.read_text(), "problem_name": "relu"},
        context={"candidates": 1}, stream_mode="updates"))
    nodes = [node for c in chunks if c.event == "updates" for node in c.data]
    assert nodes[:3] == ["analyze", "plan", "code"] and "evaluate" in nodes and "remember" in nodes
    values = client.threads.get_state(thread["thread_id"])["values"]  # read back from the server
    assert values["best"]["status"] == "correct" and "class ModelNew" in values["best"]["source"]
    assert values["problem_path"] == "relu.py" and "not meaningful" in values["stop"]
    # tracked in MLflow like a CLI run: one run for the thread, its round, its best kernel
    from mlflow import MlflowClient

    mlflow = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = mlflow.search_runs([mlflow.get_experiment_by_name("kernelwright").experiment_id],
                               f"tags.thread_id = '{thread['thread_id']}'")
    assert run.info.status == "FINISHED" and run.data.tags["problem"] == "relu"
    assert [m.step for m in mlflow.get_metric_history(run.info.run_id, "tokens")] == [1]
    assert "best.py" in [f.path for f in mlflow.list_artifacts(run.info.run_id)]
    # two threads at once, the problem given by path
    threads = [client.threads.create() for _ in range(2)]
    runs = [client.runs.create(t["thread_id"], assistant["assistant_id"],
                               input={"problem_path": str(RELU)}, context={"candidates": 1})
            for t in threads]
    outputs = [client.runs.join(t["thread_id"], r["run_id"]) for t, r in zip(threads, runs, strict=True)]
    assert [o["best"]["status"] for o in outputs] == ["correct", "correct"]
    assert len({r["run_id"] for r in runs}) == 2


def test_a_client_reads_why_a_run_failed(server):
    """A mistake in what the client sent reaches it with its message, not as "An internal error
    occurred" (the server passes on a ValueError's message; KernelwrightError is one)."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server)
    [assistant] = client.assistants.search(graph_id="kernelwright")
    broken = client.threads.create()
    chunks = list(client.runs.stream(
        broken["thread_id"], assistant["assistant_id"],
        input={"problem_source": "import torch\n\nclass Model:\n    pass\n", "problem_name": "bad"},
        context={"candidates": 1}, stream_mode="updates"))
    [error] = [c.data for c in chunks if c.event == "error"]
    assert error["error"] == "ProblemError" and "internal error" not in error["message"]
    assert error["message"].startswith("bad.py: no `class Model(nn.Module)` found. Fix:")


def test_an_unknown_context_setting_is_refused_by_name(server):
    """The server drops context keys its schema does not list; kernelwright's schema lists
    none, so RunConfig sees a misspelt setting and refuses it instead of ignoring it."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server)
    [assistant] = client.assistants.search(graph_id="kernelwright")
    thread = client.threads.create()
    chunks = list(client.runs.stream(
        thread["thread_id"], assistant["assistant_id"], input={"problem_path": str(RELU)},
        context={"candidats": 1}, stream_mode="updates"))
    [error] = [c.data for c in chunks if c.event == "error"]
    assert "candidats" in error["message"] and "xtra" in error["message"], error
