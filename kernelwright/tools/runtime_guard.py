"""Runtime guard, inside the worker: what the candidate actually did while it ran.

- an aten dispatch record of its forward: compute ops the guard mode forbids are refused, so a
  fallback hidden from the static check (`getattr(torch, "re" + "lu")`, `eval`) is caught;
- identity checks of torch, triton, timer and harness functions before and after;
- the number of threads before and after;
- a Python audit hook that refuses file, process and network access from the candidate's code.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kernelwright.core.results import GuardFinding, GuardMode, Precision, Rule

# aten ops that allocate, view, copy or describe: allowed in both modes.
ALLOWED_OPS = {
    "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full",
    "full_like", "new_empty", "new_empty_strided", "new_zeros", "new_ones", "new_full",
    "scalar_tensor", "arange", "fill", "fill_", "zero_", "set_", "resize_", "lift_fresh",
    "lift_fresh_copy", "view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand",
    "expand_as", "squeeze", "unsqueeze", "slice", "select", "narrow", "as_strided", "alias",
    "detach", "split", "split_with_sizes", "chunk", "unbind", "flatten", "unflatten", "view_as",
    "contiguous", "clone", "copy_", "_to_copy", "to", "_local_scalar_dense", "sym_size",
    "sym_stride", "sym_numel", "sym_storage_offset", "is_contiguous", "_reshape_alias",
    "_unsafe_index", "diagonal", "movedim", "view_as_real", "view_as_complex", "_pin_memory",
    "record_stream", "is_pinned", "_has_compatible_shallow_copy_type", "dim", "size", "stride",
    "numel", "result_type", "_conj", "conj", "_neg_view", "resolve_conj", "resolve_neg",
}
# aten GEMMs and convolutions: allowed in library mode.
LIBRARY_OPS = {
    "mm", "addmm", "bmm", "baddbmm", "addbmm", "mv", "addmv", "dot", "vdot", "matmul",
    "linear", "_addmm_activation", "convolution", "_convolution", "conv1d", "conv2d", "conv3d",
    "cudnn_convolution", "cudnn_convolution_transpose", "convolution_overrideable",
    "mkldnn_convolution", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "_slow_conv2d_forward", "slow_conv3d_forward", "slow_conv_transpose2d", "_mm_plus_mm",
}
LOW_PRECISION = {"torch.float16", "torch.bfloat16", "torch.float8_e4m3fn", "torch.float8_e5m2"}
# Audit events refused when the candidate's own code asks for them.
DENIED_EVENTS: dict[str, Rule] = {
    "open": Rule.FILE_ACCESS, "os.listdir": Rule.FILE_ACCESS, "os.scandir": Rule.FILE_ACCESS,
    "os.remove": Rule.FILE_ACCESS, "os.rename": Rule.FILE_ACCESS, "shutil.rmtree": Rule.FILE_ACCESS,
    "subprocess.Popen": Rule.SUBPROCESS, "os.system": Rule.SUBPROCESS, "os.exec": Rule.SUBPROCESS,
    "os.posix_spawn": Rule.SUBPROCESS, "os.fork": Rule.SUBPROCESS, "os.kill": Rule.SUBPROCESS,
    "os.spawn": Rule.SUBPROCESS, "pty.spawn": Rule.SUBPROCESS,
    "socket.__new__": Rule.NETWORK, "socket.connect": Rule.NETWORK, "socket.bind": Rule.NETWORK,
    "socket.getaddrinfo": Rule.NETWORK,
    "ctypes.dlopen": Rule.NATIVE_ACCESS, "ctypes.dlsym": Rule.NATIVE_ACCESS,
    "ctypes.addressof": Rule.NATIVE_ACCESS, "ctypes.cdata": Rule.NATIVE_ACCESS,
    "_thread.start_new_thread": Rule.THREADS,
    "exec": Rule.DYNAMIC_CODE,
}


class GuardViolation(Exception):
    """Raised in the worker when a runtime guard refuses the candidate."""

    def __init__(self, findings: list[GuardFinding]):
        super().__init__("; ".join(f"{f.rule}: {f.message}" for f in findings))
        self.findings = findings


def classify_ops(ops: set[str], guard: GuardMode) -> list[GuardFinding]:
    """Findings for recorded aten op names (`aten.relu.default`) the guard mode forbids."""
    findings = []
    for op in sorted(ops):
        parts = op.split(".")
        name = parts[1] if len(parts) > 1 and parts[0] in {"aten", "prims"} else parts[0]
        if name in ALLOWED_OPS or name.rstrip("_") in ALLOWED_OPS:
            continue
        if name in LIBRARY_OPS and guard == "library":
            continue
        why = "library GEMM/convolution, allowed in `library` mode only" if name in LIBRARY_OPS \
            else "torch compute inside forward"
        findings.append(GuardFinding(rule=Rule.TORCH_COMPUTE, message=f"{op} ran: {why}"))
    return findings


# Events refused by what they ask for, whoever asks (the candidate's process holds nothing but
# the candidate and the harness): files outside the worker's own and the installed software,
# processes other than the compilers Triton and load_inline run, any socket, any signal.
PATH_EVENTS = {"open", "os.listdir", "os.scandir", "os.remove", "os.rename", "shutil.rmtree",
               "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen", "ctypes.dlopen"}
ALWAYS_DENIED = {"os.system", "os.fork", "os.forkpty", "os.kill", "os.killpg", "pty.spawn",
                 "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo"}
COMPILERS = {"cc", "gcc", "g++", "c++", "clang", "clang++", "nvcc", "ptxas", "ninja",
             "ldconfig", "cuobjdump", "nvdisasm", "which", "cicc", "fatbinary", "nvlink", "ld",
             "as", "collect2", "cc1", "cc1plus", "uname", "x86_64-linux-gnu-gcc",
             "x86_64-linux-gnu-g++", "nvidia-smi"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _is_stdlib(filename: str, _roots: tuple[str, ...] = ()) -> bool:
    roots = _roots or (sysconfig.get_paths()["stdlib"],)
    return filename.startswith(roots) or filename.startswith("<frozen")


def readable_roots(writable: list[str]) -> tuple[str, ...]:
    """Where the candidate's process may read: its own folder, the installed software (the
    interpreter, site-packages, kernelwright, system libraries), devices and its own /proc
    entry. The problem file, the caller's working tree and home are not among them."""
    import site

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, *sysconfig.get_paths().values(),
             *site.getsitepackages(), site.getusersitepackages(),
             os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
             "/usr", "/lib", "/lib64", "/etc", "/dev", "/sys", "/proc/self",
             f"/proc/{os.getpid()}", "/opt/nvidia", "/run/nvidia-persistenced", *writable}
    for name in ("torch", "triton", "numpy"):
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None) if module is not None else None
        if file:
            paths.add(os.path.dirname(os.path.dirname(os.path.abspath(file))))
    return tuple(sorted(os.path.realpath(p) for p in paths if p))


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


class CodeRegistry:
    """Whether a frame's code object is what an installed file says: the file it names is
    compiled afresh and the code object must be found there with the same bytecode, constants
    and names. Code made at run time, or claiming a file it does not come from, is not genuine.
    Frozen standard-library modules (no file) are checked by identity against their functions."""

    def __init__(self, excluded: tuple[str, ...], readable: tuple[str, ...]):
        self.excluded, self.readable = excluded, readable
        self.files: dict[str, dict[tuple[str, int], list[types.CodeType]] | None] = {}
        self.frozen: set[int] = set()
        self.frozen_refs: list[Any] = []

    def genuine(self, code: types.CodeType) -> bool:
        file = code.co_filename
        if file.startswith("<frozen "):
            return self._frozen(code)
        index = self._index(file)
        if index is None:
            return False
        return any(_same_code(code, known) for known in index.get((code.co_name, code.co_firstlineno), []))

    def module_code(self, code: types.CodeType) -> bool:
        """Whether `code` is the top-level code of an installed file (a module being imported)."""
        return code.co_name == "<module>" and self.genuine(code)

    def _index(self, file: str) -> dict[tuple[str, int], list[types.CodeType]] | None:
        if file in self.files:
            return self.files[file]
        index: dict[tuple[str, int], list[types.CodeType]] | None = None
        real = os.path.realpath(file)
        if os.path.isfile(real) and _under(real, self.readable) and not _under(real, self.excluded):
            try:
                with open(real, "rb") as f:
                    top = compile(f.read(), file, "exec", dont_inherit=True)
                index = {}
                todo = [top]
                while todo:
                    c = todo.pop()
                    index.setdefault((c.co_name, c.co_firstlineno), []).append(c)
                    todo.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
            except (OSError, SyntaxError, ValueError):
                index = None
        self.files[file] = index
        return index

    def _frozen(self, code: types.CodeType) -> bool:
        if id(code) not in self.frozen:
            for module in list(sys.modules.values()):
                spec = getattr(module, "__spec__", None) if type(module) is types.ModuleType else None
                if spec is None or getattr(spec, "origin", None) != "frozen":
                    continue
                for value in list(module.__dict__.values()):
                    self._collect(value, 0)
        return id(code) in self.frozen

    def _collect(self, value: Any, depth: int) -> None:
        """Code objects reachable from a frozen module's attribute, by exact type only."""
        kind = type(value)
        if depth > 3:
            return
        if kind is types.FunctionType:
            todo = [value.__code__]
            while todo:
                c = todo.pop()
                if id(c) not in self.frozen:
                    self.frozen.add(id(c))
                    self.frozen_refs.append(c)  # kept: an id is never reused while it lives
                    todo.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
        elif kind is staticmethod or kind is classmethod:
            self._collect(value.__func__, depth + 1)
        elif issubclass(kind, type):
            for member in list(type.__dict__["__dict__"].__get__(value).values()):
                self._collect(member, depth + 1)


def _same_code(a: types.CodeType, b: types.CodeType) -> bool:
    """Same bytecode, names and constants (nested code objects compared the same way)."""
    if a.co_code != b.co_code or a.co_names != b.co_names or len(a.co_consts) != len(b.co_consts):
        return False
    for x, y in zip(a.co_consts, b.co_consts, strict=True):
        if isinstance(x, types.CodeType) or isinstance(y, types.CodeType):
            if not (isinstance(x, types.CodeType) and isinstance(y, types.CodeType)
                    and _same_code(x, y)):
                return False
        elif type(x) is not type(y) or x != y:
            if not (isinstance(x, float) and x != x and y != y):  # NaN constants
                return False
    return True


def numeric_state() -> dict[str, str]:
    """Process-wide settings that change what torch computes: a candidate must leave them as
    the precision policy set them."""
    import torch

    state = {"float32_matmul_precision": torch.get_float32_matmul_precision(),
             "cuda.matmul.allow_tf32": str(torch.backends.cuda.matmul.allow_tf32),
             "cudnn.allow_tf32": str(torch.backends.cudnn.allow_tf32),
             "default_dtype": str(torch.get_default_dtype()),
             "default_generator": str(id(torch.default_generator)),
             "deterministic": str(torch.are_deterministic_algorithms_enabled())}
    matmul = torch.backends.cuda.matmul
    for flag in ("allow_bf16_reduced_precision_reduction", "allow_fp16_reduced_precision_reduction"):
        state[f"cuda.matmul.{flag}"] = str(getattr(matmul, flag, None))
    return state


class RuntimeGuard:
    """Watches candidate code in the worker; call `check()` after each guarded stretch.

    With `writable` (the candidate's own process), file, process, network and signal events are
    refused by what they ask for, whoever asks; the rest (native memory, threads, dynamic code)
    are refused when the nearest frame that is not the standard library's is not genuine
    installed code (its code object is checked, not the file name it claims)."""

    def __init__(self, guard: GuardMode, precision: Precision, candidate_file: str,
                 watched: list[Any], writable: list[str] | None = None):
        self.guard = guard
        self.precision = precision
        self.candidate_file = candidate_file
        self.ops: set[str] = set()
        self.findings: list[GuardFinding] = []
        self._watched = watched
        self._identity = self._snapshot()
        self._numeric = numeric_state()
        self._threads = threading.active_count()
        self._armed = False
        self._audit_on = True
        self.audit_enabled = True
        self._stdlib = (sysconfig.get_paths()["stdlib"],)
        self._writable = tuple(os.path.realpath(p) for p in writable or [])
        self._readable = readable_roots(list(self._writable)) if writable is not None else ()
        self._registry = CodeRegistry(self._writable, self._readable) if writable is not None \
            else None
        self._busy = False
        sys.addaudithook(self._audit)

    # -- identity of functions the harness relies on ---------------------------------------
    def _snapshot(self) -> dict[tuple[str, str], int]:
        ids = {}
        for module in self._watched:
            for key, value in list(vars(module).items()):
                if callable(value):
                    ids[(getattr(module, "__name__", repr(module)), key)] = id(value)
        return ids

    def _patched(self) -> list[str]:
        now = self._snapshot()
        changed = [f"{mod}.{key}" for (mod, key), ident in self._identity.items()
                   if now.get((mod, key), ident) != ident]
        mods = {mod for mod, _ in self._identity}
        added = [f"{mod}.{key} (new)" for (mod, key) in now
                 if (mod, key) not in self._identity and mod in mods and not key.startswith("_")]
        return changed + added

    # -- audit hook -------------------------------------------------------------------------
    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        if not self._armed or not self._audit_on or self._busy:
            return
        if self._registry is not None:
            self._busy = True  # the checks below open files and compile: not events to judge
            try:
                refused = self._refused_by_what(event, args)
                if refused is None and event in DENIED_EVENTS and event not in PATH_EVENTS \
                        and event not in ALWAYS_DENIED and not (
                            event == "exec" and isinstance(args[0], types.CodeType)
                            and self._registry.module_code(args[0])):  # importing a module
                    refused = DENIED_EVENTS[event] if self._untrusted_caller() else None
            finally:
                self._busy = False
        else:
            rule = DENIED_EVENTS.get(event)
            if rule is None and event.startswith("os.exec"):
                rule = Rule.SUBPROCESS
            refused = rule if rule is not None and self._from_candidate() else None
        if refused is None:
            return
        self.findings.append(GuardFinding(rule=refused, message=f"the candidate's process raised "
                                          f"audit event {event} {str(args)[:160]}"))
        raise PermissionError(f"kernelwright: {event} refused in the candidate's process")

    def _refused_by_what(self, event: str, args: tuple[Any, ...]) -> str | None:
        """The rule an event breaks by what it asks for, or None (path and process events)."""
        if event in ALWAYS_DENIED:
            return DENIED_EVENTS.get(event, Rule.SUBPROCESS)
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            if not isinstance(path, str | bytes):
                return None  # an open file descriptor
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                (isinstance(flags, int) and bool(flags & WRITE_FLAGS))
            return None if self._allowed(path, writing) else Rule.FILE_ACCESS
        if event in {"os.listdir", "os.scandir"}:
            path = args[0] if args and args[0] is not None else "."
            return None if isinstance(path, int) or self._allowed(path, False) else Rule.FILE_ACCESS
        if event in {"os.remove", "os.rename", "shutil.rmtree"}:
            paths = [a for a in args[:2] if isinstance(a, str | bytes)]
            return None if all(self._allowed(p, True) for p in paths) else Rule.FILE_ACCESS
        if event == "ctypes.dlopen":
            name = args[0] if args else None
            if name is None or (isinstance(name, str) and "/" not in name):
                return None  # the process itself, or a system library by name
            return None if self._allowed(name, False) else Rule.NATIVE_ACCESS
        if event == "subprocess.Popen" or event.startswith(("os.exec", "os.posix_spawn",
                                                            "os.spawn")):
            exe = args[0] if args else None
            if event == "subprocess.Popen" and exe is None and len(args) > 1:
                argv = args[1]
                exe = argv[0] if isinstance(argv, list | tuple) and argv else argv
            name = os.path.basename(os.fsdecode(exe)) if isinstance(exe, str | bytes) else ""
            # a compiler, or a tool installed code runs (platform's `file`): fine; anything
            # the candidate's own code starts is not
            return None if name in COMPILERS or not self._untrusted_caller() else Rule.SUBPROCESS
        return None

    def _allowed(self, path: str | bytes, writing: bool) -> bool:
        real = os.path.realpath(os.fsdecode(path))
        if writing:
            return _under(real, self._writable) or real.startswith("/dev/") and \
                not real.startswith("/dev/shm") or _under(real, (f"/proc/{os.getpid()}",
                                                                 "/proc/self"))
        return _under(real, self._readable) and not real.startswith("/dev/shm")

    def _untrusted_caller(self) -> bool:
        """True when the nearest frame outside the standard library and this file is not
        genuine installed code (the candidate's, or code claiming another file's name)."""
        assert self._registry is not None
        frame: types.FrameType | None = sys._getframe(1)
        while frame is not None:
            code = frame.f_code
            genuine = self._registry.genuine(code)
            if genuine and (code.co_filename == __file__ or _is_stdlib(code.co_filename, self._stdlib)):
                frame = frame.f_back
                continue
            return not genuine
        return False

    def _from_candidate(self) -> bool:
        """True when the nearest non-stdlib frame that asked for the event is the candidate's."""
        frame: types.FrameType | None = sys._getframe(2)
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename == __file__ or _is_stdlib(filename, self._stdlib):
                frame = frame.f_back
                continue
            return filename == self.candidate_file
        return False

    # -- guarded stretches ------------------------------------------------------------------
    @contextmanager
    def watching(self, record_ops: bool = True, audit: bool = True) -> Iterator[None]:
        """Run candidate code under every runtime check; raise GuardViolation afterwards.
        Without `audit` the audit hook stays quiet (timed reps: its host cost would leak into
        short kernels' times; what it would refuse, Landlock and the namespaces still do)."""
        from torch.utils._python_dispatch import TorchDispatchMode

        guard = self

        class _Record(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                guard.ops.add(str(func))
                if str(func).startswith("aten._to_copy") and str(kwargs.get("dtype")) in LOW_PRECISION:
                    guard.ops.add(f"aten._to_copy[{kwargs.get('dtype')}]")
                return func(*args, **kwargs)

        before = self._armed, self._audit_on
        self._armed, self._audit_on = True, audit and self.audit_enabled
        try:
            if record_ops:
                with _Record():
                    yield
            else:
                yield
        finally:
            self._armed, self._audit_on = before if before[0] else (False, True)
        self.check()

    def check(self) -> None:
        findings = list(self.findings)
        findings += classify_ops({op for op in self.ops if "[" not in op}, self.guard)
        if self.precision in {"fp32", "tf32"}:
            findings += [GuardFinding(rule=Rule.PRECISION_DOWNGRADE,
                                      message=f"{op} ran under the {self.precision} policy")
                         for op in sorted(self.ops) if "[" in op]
        patched = self._patched()
        if patched:
            findings.append(GuardFinding(rule=Rule.PATCHING, message="replaced while the candidate "
                                         f"ran: {', '.join(patched[:8])}"))
        numeric = numeric_state()
        changed = [f"{k}: {v} -> {numeric.get(k)}" for k, v in self._numeric.items()
                   if numeric.get(k) != v]
        if changed:
            findings.append(GuardFinding(rule=Rule.GLOBAL_STATE, message="the candidate changed "
                                         f"process-wide numeric settings: {'; '.join(changed)}"))
        if threading.active_count() > self._threads:
            findings.append(GuardFinding(rule=Rule.THREADS, message=f"thread count went from "
                                         f"{self._threads} to {threading.active_count()}"))
        if findings:
            raise GuardViolation(findings)


def watched_modules() -> list[Any]:
    """Modules whose functions a candidate must not replace: torch, timers, the harness."""
    import time

    import torch
    import torch._dynamo  # noqa: F401  (importing it rebinds torch.manual_seed: settle that first)
    import torch.utils._python_dispatch  # noqa: F401

    spaces: list[Any] = [torch, torch.cuda, torch.nn.functional, time, os, torch.Tensor,
                         torch.cuda.Event]
    spaces += [sys.modules[n] for n in ("triton", "triton.testing", "triton.language")
               if n in sys.modules]
    return spaces + [m for n, m in sys.modules.items() if n.startswith("kernelwright.") and m]
