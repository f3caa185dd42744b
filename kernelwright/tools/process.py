"""Run code in a fresh process with a wall-clock limit; its faults stay there.

The child is a new Python started with `subprocess` (never forked from the caller, so it holds
none of the caller's state), in its own session. It talks over two pipes: the caller's requests
come on its stdin, its answers go out on a pipe of their own, both as length-prefixed messages;
its stdout and stderr are a third pipe whose tail the caller keeps. It exits without interpreter
teardown (CUDA and Triton atexit hooks can hang or crash).

Nothing outlives the caller: the child's private folder is made here and removed here; the child
gets SIGTERM when its parent dies (PR_SET_PDEATHSIG), ends its own children and removes its
folder; with a `Sandbox` it is confined (tools/sandbox.py) and the caller watches its resident
memory and its folder's size. Either way every process it started is killed at the end.

`spawn` is one request and one answer; `Child` is a conversation (the judge drives the
candidate's process with it, tools/worker.py).
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

BOOT = ("import json, sys; h = json.loads(sys.stdin.buffer.readline()); sys.path[:0] = h['path']; "
        "from kernelwright.tools.process import child_main; child_main(h)")
LOG_TAIL_BYTES = 64 << 10


@dataclass
class Sandbox:
    """Confine the child to its private folder (compile caches included), within `limits`."""

    limits: Limits
    cuda: bool = False  # the worker will use CUDA (which refuses a PID namespace)


@dataclass
class Spawned:
    """What came back from a child: its JSON answer, or how it ended without one."""

    payload: str | None
    timed_out: bool
    exit_how: str  # "exit code 0", "signal SIGSEGV", ...
    log_tail: str
    killed_for: str | None = None  # "memory" or "disk" when the caller stopped it over a limit
    confinement: Confinement = field(default_factory=Confinement)


class ChildGone(Exception):
    """The child ended, ran out of time or passed a limit before it answered."""


class Child:
    """A fresh process running `target` ("package.module:function"), which is called with a
    `Channel` and talks until it returns. With `gpu`, the process sees only that GPU; `pass_fds`
    are inherited (the judge's exchange buffer)."""

    def __init__(self, target: str, timeout_s: float, name: str, sandbox: Sandbox | None = None,
                 gpu: str | None = None, pass_fds: tuple[int, ...] = (),
                 env_extra: dict[str, str] | None = None):
        if _STOPPING:
            raise Interrupted("interrupted: no new process is started")
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        _LIVE[id(self)] = self
        self.sandbox = sandbox
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.log = b""
        self.timed_out = False
        self.killed_for: str | None = None
        self._buffer = b""
        self._messages: list[str] = []
        answer_read, answer_write = os.pipe()
        log_read, log_write = os.pipe()
        self._env = dict(os.environ)
        if sandbox is not None:
            from kernelwright.tools.sandbox import worker_env

            self._env = worker_env(self.workdir)
        if gpu is not None:
            self._env["CUDA_VISIBLE_DEVICES"] = gpu
        self._env.update(env_extra or {})
        header = {"path": [p or os.getcwd() for p in sys.path], "target": target,
                  "fd": answer_write, "workdir": str(self.workdir), "parent": os.getpid(),
                  "sandbox": None if sandbox is None else {
                      "limits": sandbox.limits.model_dump(), "cuda": sandbox.cuda}}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", BOOT], stdin=subprocess.PIPE, stdout=log_write,
                stderr=log_write, env=self._env, pass_fds=(answer_write, *pass_fds),
                cwd=self.workdir, start_new_session=True)
        finally:
            os.close(answer_write)
            os.close(log_write)
        self._answers, self._log_fd = answer_read, log_read
        self._seen: dict[int, Any] = {}
        import psutil

        try:
            self._root: Any = psutil.Process(self.process.pid)
            self._seen[self.process.pid] = self._root
        except psutil.NoSuchProcess:
            self._root = None
        self._write((json.dumps(header) + "\n").encode())
        self.confinement = Confinement()
        try:
            self.confinement = Confinement.model_validate_json(self.receive())
        except ChildGone:
            pass

    def ask(self, request: str) -> str:
        """Send one request and wait for its answer; ChildGone if none comes."""
        self.send(request)
        return self.receive()

    def send(self, message: str) -> None:
        data = message.encode()
        self._write(len(data).to_bytes(8, "big") + data)

    def _write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # it died; receive() says how

    def receive(self) -> str:
        """The next answer; ChildGone when the child ends, runs out of time or passes a limit."""
        memory_mb = self.sandbox.limits.memory_mb if self.sandbox else None
        disk_mb = self.sandbox.limits.disk_mb if self.sandbox else None
        checked = 0.0
        while not self._messages:
            ready, _, _ = select.select([self._answers, self._log_fd], [], [], 0.2)
            if self._log_fd in ready:
                chunk = os.read(self._log_fd, 1 << 20)
                self.log = (self.log + chunk)[-LOG_TAIL_BYTES:]
            if self._answers in ready:
                chunk = os.read(self._answers, 1 << 20)
                if not chunk:
                    raise ChildGone("the child closed its answers")
                self._buffer += chunk
                while len(self._buffer) >= 8 and \
                        len(self._buffer) >= 8 + int.from_bytes(self._buffer[:8], "big"):
                    size = int.from_bytes(self._buffer[:8], "big")
                    self._messages.append(self._buffer[8:8 + size].decode(errors="replace"))
                    self._buffer = self._buffer[8 + size:]
                continue
            if ready:
                continue
            if self.process.poll() is not None:
                raise ChildGone("the child ended")
            if time.monotonic() > self.deadline:
                self.timed_out = True
                raise ChildGone("time limit")
            tree = _tree(self._root, self._seen)
            if memory_mb is not None and sum(_rss(p) for p in tree) > memory_mb << 20:
                self.killed_for = "memory"
                raise ChildGone("memory limit")
            if disk_mb is not None and time.monotonic() - checked > 1.0:
                checked = time.monotonic()
                if _folder_bytes(self.workdir) > disk_mb << 20:
                    self.killed_for = "disk"
                    raise ChildGone("disk limit")
        return self._messages.pop(0)

    def close(self, answered: bool) -> None:
        """End the child and all it started; remove its folder. With `answered`, first give its
        keeper a moment to end what the worker left, by itself."""
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        if answered:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _kill(self.process, self._root, self._seen)
        for fd in (self._answers, self._log_fd):
            try:
                rest = os.read(fd, 1 << 20) if fd == self._log_fd else b""
                self.log = (self.log + rest)[-LOG_TAIL_BYTES:]
            except OSError:
                pass
            os.close(fd)
        shutil.rmtree(self.workdir, ignore_errors=True)
        _LIVE.pop(id(self), None)

    def exit_how(self) -> str:
        code = self.process.returncode
        return f"signal {signal.Signals(-code).name}" if code is not None and code < 0 \
            else f"exit code {code}"

    def log_tail(self, lines: int = 30) -> str:
        text = "\n".join(self.log.decode(errors="replace").splitlines()[-lines:])
        return (scrub(text, self._env) or "") if self.sandbox is not None else text

    def scrubbed(self, text: str | None) -> str | None:
        return scrub(text, self._env) if self.sandbox is not None else text


_LIVE: dict[int, Child] = {}  # children of this process, ended by `_end_children` on SIGTERM


def spawn(target: str, job_json: str, timeout_s: float, name: str,
          sandbox: Sandbox | None = None, gpu: str | None = None) -> Spawned:
    """Call `target` ("package.module:function", JSON in, JSON out) in a fresh process; with
    `gpu`, the process sees only that GPU."""
    child = Child(ONE_SHOT + target, timeout_s, name, sandbox, gpu)
    payload = None
    try:
        payload = child.ask(job_json)
    except ChildGone:
        pass
    finally:
        child.close(answered=payload is not None)
    return Spawned(child.scrubbed(payload), child.timed_out, child.exit_how(), child.log_tail(),
                   child.killed_for, child.confinement)


ONE_SHOT = "oneshot:"


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


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


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


class Channel:
    """The child's side of the conversation: requests in on stdin, answers out on a pipe."""

    def __init__(self, fd: int):
        self.fd = fd

    def receive(self) -> str | None:
        """The next request, or None when the caller has closed the conversation."""
        head = sys.stdin.buffer.read(8)
        if len(head) < 8:
            return None
        return sys.stdin.buffer.read(int.from_bytes(head, "big")).decode()

    def send(self, text: str) -> None:
        data = text.encode()
        os.write(self.fd, len(data).to_bytes(8, "big") + data)


PR_SET_PDEATHSIG = 1


class Interrupted(KeyboardInterrupt):
    """The user stopped the command (Ctrl-C, or SIGTERM): its children are ended."""


_STOPPING = False  # set by `interrupt`: no child starts after it


def stop_on_interrupt() -> None:
    """In a command's process: Ctrl-C (SIGINT) or SIGTERM ends every child it started at once
    (evaluations do not run on), then raises Interrupted in the main thread so that the command
    can say how to resume; a second Ctrl-C exits on the spot."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: Any) -> None:
    global _STOPPING
    if _STOPPING:
        os._exit(130)
    _STOPPING = True
    end_children()
    raise Interrupted(f"stopped by {signal.Signals(signum).name}")


def end_children() -> None:
    """End every child this process started (their keepers clean up after them) and remove
    their folders."""
    for child in list(_LIVE.values()):
        try:
            os.kill(child.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    end = time.monotonic() + 3
    for child in list(_LIVE.values()):
        try:
            child.process.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(child.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        shutil.rmtree(child.workdir, ignore_errors=True)


def _end_children(signum: int, frame: Any) -> None:
    """SIGTERM in a child (its parent died, or asked): end its own children, remove its folder,
    and exit."""
    end_children()
    own = os.environ.get("KERNELWRIGHT_CHILD_WORKDIR")
    if own:
        shutil.rmtree(own, ignore_errors=True)
    os._exit(143)


def child_main(header: dict[str, Any]) -> None:
    """In the child: die with the parent, confine (with a sandbox), report what is in force,
    then run the target."""
    import ctypes
    import importlib

    from kernelwright.tools import sandbox as sb

    os.environ["KERNELWRIGHT_CHILD_WORKDIR"] = header["workdir"]
    signal.signal(signal.SIGTERM, _end_children)
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != header["parent"]:  # the parent died before the line above
        _end_children(signal.SIGTERM, None)
    channel = Channel(header["fd"])
    confinement = sb.Confinement()
    box = header["sandbox"]
    if box is not None:
        confinement = sb.enter(Path(header["workdir"]), sb.Limits(**box["limits"]),
                               box["cuda"])  # forks: this process goes on as the worker
    channel.send(confinement.model_dump_json())
    target = header["target"]
    one_shot = target.startswith(ONE_SHOT)
    module_name, function = target.removeprefix(ONE_SHOT).split(":")
    call = getattr(importlib.import_module(module_name), function)
    if one_shot:
        request = channel.receive()
        if request is not None:
            channel.send(call(request))
    else:
        call(channel)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
