"""Confinement of the evaluation worker: what a candidate's code can reach.

A candidate is untrusted code. The worker that runs it (tools/process.py starts it) gets:

    environment  an allowlist (CUDA, Triton, compilers, Python paths); keys and tokens are absent
    files        a private working directory (also HOME, TMPDIR and the compile caches, so no
                 candidate can plant an artifact that another one loads), removed afterwards and
                 counted against a disk limit; Landlock refuses writes anywhere but there, the
                 device nodes the worker needs (never /dev/shm or another shared tmpfs) and (CUDA
                 needs it) the worker's own /proc entry
    network      a new network namespace (unprivileged user namespaces), whose loopback is down;
                 else Landlock's TCP rules (bind and connect refused)
    processes    a keeper process waits for the worker and ends all it started: the worker is
                 PID 1 of a new PID namespace (CPU workers), or (CUDA workers: the NVIDIA
                 driver refuses a PID namespace) the keeper is a child subreaper, so nothing
                 the worker starts can leave its tree
    resources    RLIMIT_FSIZE, RLIMIT_CPU, RLIMIT_NPROC, no core files; the caller watches
                 resident memory (RLIMIT_AS would break CUDA's address-space reservations)

Each confinement the kernel lacks degrades to a notice; `Confinement` says what was in force.
"""

from __future__ import annotations

import ctypes
import os
import resource
from pathlib import Path

from pydantic import BaseModel, Field

# what CUDA, Triton, compilers and Python need; nothing else of the caller's environment passes
ENV_NAMES = {"PATH", "LANG", "LANGUAGE", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "VIRTUAL_ENV",
             "LD_LIBRARY_PATH", "CC", "CXX", "CUDA_HOME", "CUDA_PATH", "CUDA_VISIBLE_DEVICES",
             "CUDA_DEVICE_ORDER", "CUDA_LAUNCH_BLOCKING", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
             "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "KERNELWRIGHT_CACHE_DIR"}
ENV_PREFIXES = ("LC_", "TRITON_", "TORCH_CUDA_ARCH", "TORCHINDUCTOR_", "CUDA_MODULE_", "NVCC_")


class Limits(BaseModel):
    """Resource limits of one worker."""

    memory_mb: int = Field(description="resident memory of the worker's processes, all together")
    file_mb: int = Field(4096, description="largest file the worker may write (RLIMIT_FSIZE)")
    disk_mb: int = Field(8192, description="all the worker's files together (its folder, caches "
                         "included; the caller measures it)")
    cpu_s: int = Field(description="CPU seconds (RLIMIT_CPU), all threads together")
    tasks: int = Field(4096, description="processes and threads beyond the user's (RLIMIT_NPROC)")


class Confinement(BaseModel):
    """What was in force for one worker (each field: how, or why not)."""

    environment: str = ""
    files: str = ""
    network: str = ""
    processes: str = ""
    resources: str = ""

    def lines(self) -> list[str]:
        return [f"{k}: {v}" for k, v in self.model_dump().items()]


def worker_env(workdir: Path) -> dict[str, str]:
    """The worker's whole environment: the allowlist, with HOME, TMPDIR and the compile caches
    pointed into the private directory."""
    caches = workdir / "caches"
    env = {k: v for k, v in os.environ.items() if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}
    for secret in [k for k in env if any(w in k for w in ("KEY", "TOKEN", "SECRET", "PASSWORD"))]:
        del env[secret]  # never, even under an allowed prefix
    env.update(HOME=str(workdir), TMPDIR=str(workdir), PYTHONDONTWRITEBYTECODE="1",
               TRITON_CACHE_DIR=str(caches / "triton"),
               TORCHINDUCTOR_CACHE_DIR=str(caches / "inductor"),
               TORCH_EXTENSIONS_DIR=str(caches / "torch_extensions"),
               CUDA_CACHE_PATH=str(caches / "cuda"))
    return env


def confine_resources(limits: Limits) -> str:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb << 20, limits.file_mb << 20))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # RLIMIT_NPROC counts every task of this user, threads included: allow what runs now and
    # room for torch's threads and compilers, not a fork bomb (the kernel exempts root)
    tasks = _user_tasks()
    resource.setrlimit(resource.RLIMIT_NPROC, (tasks + limits.tasks, tasks + limits.tasks))
    exempt = " (not enforced: root)" if os.getuid() == 0 else ""
    return (f"files up to {limits.file_mb} MiB, {limits.cpu_s} CPU s, {limits.tasks} more "
            f"processes and threads{exempt}, no core files, resident memory watched "
            f"(<= {limits.memory_mb} MiB)")


def _user_tasks() -> int:
    """Processes and threads of this user now."""
    import psutil

    uid, count = os.getuid(), 0
    for p in psutil.process_iter(["uids", "num_threads"]):
        if p.info["uids"] is not None and p.info["uids"].real == uid:
            count += p.info["num_threads"] or 1
    return count


def enter(workdir: Path, limits: Limits, cuda: bool = False) -> Confinement:
    """Confine this process (the fresh worker, before it imports torch) and say how.

    This forks. The parent becomes the keeper: it waits, ends every process the worker left
    behind, and exits as the worker did. The child returns and does the work. With user
    namespaces and no CUDA the child is PID 1 of a new PID namespace (when it ends, the kernel
    ends everything it started). CUDA fails to initialise in a PID namespace (error 304 on the
    H100 machine), so there the keeper is a child subreaper instead: whatever the worker
    starts, even in a new session, stays the keeper's descendant until the keeper ends it."""
    import logging

    done = Confinement(environment="allowlist only (no keys, tokens or other variables)")
    done.resources = confine_resources(limits)
    isolated, why = unshare_namespaces(pid=not cuda)
    pid_namespace = isolated and not cuda
    if pid_namespace:
        done.processes = "new PID namespace: everything it starts ends with it"
    else:
        done.processes = ("a keeper process (child subreaper) ends everything it starts"
                          + (" (no PID namespace: the NVIDIA driver refuses one)" if cuda else ""))
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    worker = os.fork()
    if worker:
        _keep(worker, workdir)
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)  # SIGKILL when the keeper goes
    done.network = ("new network namespace (no interface up)" if isolated
                    else f"no network namespace ({why})")
    writable = [workdir, *device_nodes()]
    if cuda:  # the driver writes to the process's own /proc entry (here, its host PID)
        writable.append(Path(f"/proc/{os.getpid()}"))
    files = confine_files(writable, no_tcp=not isolated)
    done.files = f"private directory {workdir} (removed afterwards); {files}"
    if not isolated:
        done.network += ("; TCP refused by Landlock" if "TCP" in files
                         else "; NOT confined (no Landlock network rules either)")
    for line in done.lines():
        if "not confined" in line.lower() or "no network namespace" in line:
            logging.getLogger(__name__).warning("sandbox: %s", line)
    return done


PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36


def device_nodes() -> list[Path]:
    """The device files a worker may open for writing: the null devices and the GPU's nodes."""
    import glob

    names = ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/ptmx", "/dev/pts",
             *glob.glob("/dev/nvidia*"), *glob.glob("/dev/dri"), "/dev/kfd"]
    return [Path(n) for n in names if os.path.exists(n)]


def _keep(worker: int, workdir: Path) -> None:
    """The keeper: wait for the worker, end every descendant left (stopped first, so none can
    fork away meanwhile), then exit as the worker did. Never returns. SIGTERM (the caller died:
    PR_SET_PDEATHSIG) ends the worker at once, then the same; the private folder goes too."""
    import shutil
    import signal
    import time

    import psutil

    ended = []

    def end_worker(signum: int, frame: object) -> None:
        ended.append(signum)
        try:
            os.kill(worker, signal.SIGKILL)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, end_worker)
    _, status = os.waitpid(worker, 0)
    me = psutil.Process()
    for _ in range(100):
        left = me.children(recursive=True)
        if not left:
            break
        for p in left:
            try:
                p.suspend()
            except psutil.Error:
                pass
        for p in me.children(recursive=True):
            try:
                p.kill()
            except psutil.Error:
                pass
        while True:  # reap what was reparented to us
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    time.sleep(0.01)
                    break
            except ChildProcessError:
                break
    if ended:
        shutil.rmtree(workdir, ignore_errors=True)
        os._exit(143)
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status))


def probe(job_json: str) -> str:
    """A worker target that does nothing: `kernelwright eval --explain-sandbox` runs it."""
    return "{}"


# -- namespaces ------------------------------------------------------------------------------

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000


def unshare_namespaces(pid: bool = True) -> tuple[bool, str]:
    """A new user and network namespace, and with `pid` a PID namespace, for this
    (single-threaded) process. The PID namespace holds this process's next child, which must
    then do the work. Returns (whether the namespaces are in force, why not)."""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET | (CLONE_NEWPID if pid else 0)) != 0:
        return False, os.strerror(ctypes.get_errno())
    try:  # keep our own ids inside (files we create stay ours)
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError:
        pass  # unmapped ids still confine; only the names inside differ
    return True, ""


# -- Landlock --------------------------------------------------------------------------------

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
FS_WRITE_FILE, FS_REMOVE_DIR, FS_REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
FS_MAKE = sum(1 << b for b in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    abi = libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(abi), 0)


def confine_files(writable: list[Path], no_tcp: bool) -> str:
    """Landlock: writes only beneath `writable`; with `no_tcp`, no TCP bind or connect; signals
    and abstract unix sockets only within the worker (ABI 6). Returns what is in force."""
    abi = landlock_abi()
    if abi < 1:
        return "not confined: this kernel has no Landlock"
    libc = ctypes.CDLL(None, use_errno=True)
    write = FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE
    write |= (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(write, NET_BIND_TCP | NET_CONNECT_TCP if no_tcp and abi >= 4 else 0,
                        SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                           ctypes.c_uint32(0))
    if ruleset < 0:
        return f"not confined: landlock_create_ruleset failed ({os.strerror(ctypes.get_errno())})"
    try:
        for path in writable:
            if not path.exists():
                continue
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rights = write if path.is_dir() else FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0)
                rule = _PathBeneath(rights, fd)
                if libc.syscall(SYS_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0) != 0:
                    return f"not confined: landlock_add_rule({path}) failed"
            finally:
                os.close(fd)
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, required first
            return "not confined: no_new_privs refused"
        if libc.syscall(SYS_RESTRICT_SELF, ruleset, 0) != 0:
            return f"not confined: landlock_restrict_self failed ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(ruleset)
    tcp = ", TCP bind/connect refused" if no_tcp and abi >= 4 else ""
    return (f"Landlock ABI {abi}: writes only in {', '.join(str(p) for p in writable)}{tcp}"
            + (", signals and abstract sockets scoped" if abi >= 6 else ""))
