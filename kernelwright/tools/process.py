"""Run a function in a fresh spawned process with a wall-clock limit; its faults stay there.

The child gets its own process group (so everything it starts can be killed with it), writes
stdout and stderr to a log whose tail comes back, sends one JSON string through a pipe and
exits without interpreter teardown (CUDA and Triton atexit hooks can hang or crash).
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Spawned:
    """What came back from a child: its JSON answer, or how it ended without one."""

    payload: str | None
    timed_out: bool
    exit_how: str  # "exit code 0", "signal SIGSEGV", ...
    log_tail: str


def spawn(target: str, job_json: str, timeout_s: float, name: str) -> Spawned:
    """Call `target` ("package.module:function", JSON in, JSON out) in a spawned process."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    with tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False) as f:
        log_path = f.name
    process = ctx.Process(target=_child, args=(sender, target, job_json, log_path), daemon=True,
                          name=name)
    process.start()
    sender.close()
    payload: str | None = None
    timed_out = False
    try:
        if receiver.poll(timeout_s):
            payload = receiver.recv()
        else:
            timed_out = True
    except EOFError:
        payload = None  # the child died before it answered
    finally:
        _kill_tree(process)
        log_tail = _tail(log_path)
        os.unlink(log_path)
    code = process.exitcode
    how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 \
        else f"exit code {code}"
    return Spawned(payload, timed_out, how, log_tail)


def _child(conn: Any, target: str, job_json: str, log_path: str) -> None:
    os.setsid()  # own process group: the caller can kill everything this process starts
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    module_name, function = target.split(":")
    answer = getattr(importlib.import_module(module_name), function)(job_json)
    conn.send(answer)
    conn.close()
    sys.stdout.flush()
    os._exit(0)


def _kill_tree(process: multiprocessing.process.BaseProcess) -> None:
    """Kill the child's process group (it called setsid), then reap the child."""
    if process.pid is not None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # already gone, or it died before setsid (then it has no group of its own)
    process.join(timeout=10)
    if process.is_alive():
        process.kill()
        process.join(timeout=10)


def _tail(path: str, lines: int = 30) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
