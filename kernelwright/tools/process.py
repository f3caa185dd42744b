"""Run a function in a fresh process with a wall-clock limit; its faults stay there.

The child is a new Python started with `subprocess` (never forked from the caller, so it holds
none of the caller's state), in its own session; it writes stdout and stderr to a log whose tail
comes back, sends its answer as length-prefixed messages over a pipe, and exits without
interpreter teardown (CUDA and Triton atexit hooks can hang or crash). With a `Sandbox` the child
is confined (tools/sandbox.py) and the caller watches its resident memory; either way every
process it started is killed at the end.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.tools.sandbox import Confinement, Limits

BOOT = ("import json, sys; h = json.loads(sys.stdin.readline()); sys.path[:0] = h['path']; "
        "from kernelwright.tools.process import child_main; child_main(h)")


@dataclass
class Sandbox:
    """Confine the child: `caches` is the one shared folder it may write besides its own."""

    caches: Path
    limits: Limits
    cuda: bool = False  # the worker will use CUDA (which refuses a PID namespace)


@dataclass
class Spawned:
    """What came back from a child: its JSON answer, or how it ended without one."""

    payload: str | None
    timed_out: bool
    exit_how: str  # "exit code 0", "signal SIGSEGV", ...
    log_tail: str
    killed_for: str | None = None  # "memory" when the caller stopped it over its ceiling
    confinement: Confinement = field(default_factory=Confinement)


def spawn(target: str, job_json: str, timeout_s: float, name: str,
          sandbox: Sandbox | None = None, gpu: str | None = None) -> Spawned:
    """Call `target` ("package.module:function", JSON in, JSON out) in a fresh process; with
    `gpu`, the process sees only that GPU."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    log_fd, log_path = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
    read_fd, write_fd = os.pipe()
    env = dict(os.environ)
    if sandbox is not None:
        from kernelwright.tools.sandbox import worker_env

        sandbox.caches.mkdir(parents=True, exist_ok=True)
        env = worker_env(workdir, sandbox.caches)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    header = {"path": [p or os.getcwd() for p in sys.path], "target": target, "fd": write_fd,
              "workdir": str(workdir), "sandbox": None if sandbox is None else {
                  "caches": str(sandbox.caches), "limits": sandbox.limits.model_dump(),
                  "cuda": sandbox.cuda}}
    try:
        child = subprocess.Popen([sys.executable, "-c", BOOT], stdin=subprocess.PIPE,
                                 stdout=log_fd, stderr=log_fd, env=env, pass_fds=(write_fd,),
                                 cwd=workdir if sandbox is not None else None,
                                 start_new_session=True)
    finally:
        os.close(write_fd)
        os.close(log_fd)
    try:
        assert child.stdin is not None
        child.stdin.write((json.dumps(header) + "\n" + job_json).encode())
        child.stdin.close()
    except BrokenPipeError:
        pass  # it died at once; the exit status says how
    try:
        messages, timed_out, killed_for = _watch(child, read_fd, timeout_s,
                                                 sandbox.limits.memory_mb if sandbox else None)
    finally:
        os.close(read_fd)
        log_tail = _tail(log_path)
        os.unlink(log_path)
        shutil.rmtree(workdir, ignore_errors=True)
    confinement = Confinement.model_validate_json(messages[0]) if messages else Confinement()
    payload = messages[1] if len(messages) > 1 else None
    if sandbox is not None:
        payload, log_tail = scrub(payload, env), scrub(log_tail, env) or ""
    code = child.returncode
    how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 \
        else f"exit code {code}"
    return Spawned(payload, timed_out, how, log_tail, killed_for, confinement)


def _watch(child: subprocess.Popen[bytes], fd: int, timeout_s: float, memory_mb: int | None
           ) -> tuple[list[str], bool, str | None]:
    """Read the child's messages until its answer, its end, the deadline or its memory ceiling;
    then kill it and every process it started that was seen on the way."""
    import psutil

    deadline = time.monotonic() + timeout_s
    buffer, messages = b"", list[str]()
    seen: dict[int, psutil.Process] = {}
    timed_out, killed_for = False, None
    try:
        root = psutil.Process(child.pid)
        seen[child.pid] = root
    except psutil.NoSuchProcess:
        root = None
    try:
        while len(messages) < 2:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break  # EOF: every holder of the pipe is gone
                buffer += chunk
                while len(buffer) >= 8 and len(buffer) >= 8 + int.from_bytes(buffer[:8], "big"):
                    size = int.from_bytes(buffer[:8], "big")
                    messages.append(buffer[8:8 + size].decode(errors="replace"))
                    buffer = buffer[8 + size:]
                continue
            if child.poll() is not None:
                break  # it ended without (all of) its answer
            if time.monotonic() > deadline:
                timed_out = True
                break
            tree = _tree(root, seen)
            if memory_mb is not None and sum(_rss(p) for p in tree) > memory_mb << 20:
                killed_for = "memory"
                break
    finally:
        if len(messages) == 2:  # answered: its keeper ends what the worker left, then exits
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _kill(child, root, seen)
    return messages, timed_out, killed_for


def _tree(root: Any, seen: dict[int, Any]) -> list[Any]:
    """The child and its descendants now; each is remembered for the final kill."""
    import psutil

    if root is None:
        return []
    try:
        found = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for p in found:
        seen.setdefault(p.pid, p)
    return found


def _rss(process: Any) -> int:
    import psutil

    try:
        return int(process.memory_info().rss)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0


def _kill(child: subprocess.Popen[bytes], root: Any, seen: dict[int, Any]) -> None:
    """Stop the child's tree (stopped processes cannot fork away), then kill it, its session
    (process group) and every process of it ever seen."""
    import psutil

    for _ in range(20):
        tree = _tree(root, seen)
        for p in tree:
            try:
                p.suspend()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        if len(_tree(root, seen)) == len(tree):
            break
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for p in seen.values():
        try:
            if p.is_running():  # also checks the pid was not reused
                p.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=10)


PLAIN = {"PWD", "OLDPWD", "USER", "LOGNAME", "SHELL", "TERM", "_"}  # never secrets; paths read better


def scrub(text: str | None, allowed: dict[str, str]) -> str | None:
    """Blank out the caller's environment values that the worker was not given: whatever came
    back (its answer, its log) never carries the caller's secrets."""
    if not text:
        return text
    given = "\0".join(allowed.values())
    for key, value in os.environ.items():
        if key in PLAIN or len(value) < 8 or value in given:
            continue
        if value in text:
            text = text.replace(value, f"[{key} redacted]")
    return text


def _send(fd: int, text: str) -> None:
    data = text.encode()
    os.write(fd, len(data).to_bytes(8, "big") + data)


def child_main(header: dict[str, Any]) -> None:
    """In the child: confine (with a sandbox), report what is in force, run the target, answer."""
    import importlib

    from kernelwright.tools import sandbox as sb

    job_json = sys.stdin.read()
    fd = header["fd"]
    confinement = sb.Confinement()
    box = header["sandbox"]
    if box is not None:
        confinement = sb.enter(Path(header["workdir"]), Path(box["caches"]),
                               sb.Limits(**box["limits"]), box["cuda"])  # maybe forks
    _send(fd, confinement.model_dump_json())
    module_name, function = header["target"].split(":")
    answer = getattr(importlib.import_module(module_name), function)(job_json)
    _send(fd, answer)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _tail(path: str, lines: int = 30) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
