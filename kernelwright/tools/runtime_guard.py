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

from kernelwright.tools.results import GuardFinding, GuardMode, Precision

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
DENIED_EVENTS = {
    "open": "file_access", "os.listdir": "file_access", "os.scandir": "file_access",
    "os.remove": "file_access", "os.rename": "file_access", "shutil.rmtree": "file_access",
    "subprocess.Popen": "subprocess", "os.system": "subprocess", "os.exec": "subprocess",
    "os.posix_spawn": "subprocess", "os.fork": "subprocess", "os.kill": "subprocess",
    "os.spawn": "subprocess", "pty.spawn": "subprocess",
    "socket.__new__": "network", "socket.connect": "network", "socket.bind": "network",
    "socket.getaddrinfo": "network",
    "ctypes.dlopen": "native_access", "ctypes.dlsym": "native_access",
    "ctypes.addressof": "native_access", "ctypes.cdata": "native_access",
    "_thread.start_new_thread": "threads",
    "exec": "dynamic_code",
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
        findings.append(GuardFinding(rule="torch_compute", message=f"{op} ran: {why}"))
    return findings


def _is_stdlib(filename: str, _roots: tuple[str, ...] = ()) -> bool:
    roots = _roots or (sysconfig.get_paths()["stdlib"],)
    return filename.startswith(roots) or filename.startswith("<frozen")


class RuntimeGuard:
    """Watches candidate code in the worker; call `check()` after each guarded stretch."""

    def __init__(self, guard: GuardMode, precision: Precision, candidate_file: str,
                 watched: list[Any]):
        self.guard = guard
        self.precision = precision
        self.candidate_file = candidate_file
        self.ops: set[str] = set()
        self.findings: list[GuardFinding] = []
        self._watched = watched
        self._identity = self._snapshot()
        self._threads = threading.active_count()
        self._armed = False
        self._stdlib = (sysconfig.get_paths()["stdlib"],)
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
        return [f"{mod}.{key}" for (mod, key), ident in self._identity.items()
                if now.get((mod, key), ident) != ident]

    # -- audit hook -------------------------------------------------------------------------
    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        if not self._armed:
            return
        rule = DENIED_EVENTS.get(event)
        if rule is None and event.startswith("os.exec"):
            rule = "subprocess"
        if rule is None or not self._from_candidate():
            return
        self.findings.append(GuardFinding(rule=rule, message=f"candidate code raised audit event "
                                                             f"{event} {str(args)[:120]}"))
        raise PermissionError(f"kernelwright: {event} refused for candidate code")

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
    def watching(self, record_ops: bool = True) -> Iterator[None]:
        """Run candidate code under every runtime check; raise GuardViolation afterwards."""
        from torch.utils._python_dispatch import TorchDispatchMode

        guard = self

        class _Record(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                guard.ops.add(str(func))
                if str(func).startswith("aten._to_copy") and str(kwargs.get("dtype")) in LOW_PRECISION:
                    guard.ops.add(f"aten._to_copy[{kwargs.get('dtype')}]")
                return func(*args, **kwargs)

        self._armed = True
        try:
            if record_ops:
                with _Record():
                    yield
            else:
                yield
        finally:
            self._armed = False
        self.check()

    def check(self) -> None:
        findings = list(self.findings)
        findings += classify_ops({op for op in self.ops if "[" not in op}, self.guard)
        if self.precision in {"fp32", "tf32"}:
            findings += [GuardFinding(rule="precision_downgrade",
                                      message=f"{op} ran under the {self.precision} policy")
                         for op in sorted(self.ops) if "[" in op]
        patched = self._patched()
        if patched:
            findings.append(GuardFinding(rule="patching", message="replaced while the candidate "
                                         f"ran: {', '.join(patched[:8])}"))
        if threading.active_count() > self._threads:
            findings.append(GuardFinding(rule="threads", message=f"thread count went from "
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
