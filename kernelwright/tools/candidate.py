"""The candidate's process: imports the candidate and runs it when the judge asks; decides nothing.

It is started, confined, by the judge (tools/worker.py) and never sees the problem file, the
reference module or a reference output: it gets constructor arguments, parameter values and
inputs through the exchange buffer (tools/exchange.py), and gives back outputs, times and what
its runtime guard saw. Everything it says is a claim. The judge compares the outputs itself,
checks the claims it can (times against its own clock and the SOL floor, timed outputs against
the reference) and trusts none of the rest, so a candidate that takes this process over gains
nothing it could not gain by computing the right answer.

Requests (JSON, one at a time): build, load, call, calls, fetch, read, measure, drop.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from kernelwright.core.results import EvalSettings, GuardFinding
from kernelwright.tools.process import Channel

if TYPE_CHECKING:
    from kernelwright.hardware.backends import BackendSpec


class Failure(BaseModel):
    """Why a request failed: `guard` (a runtime guard refused), `build` or `forward` (it raised)."""

    kind: str
    message: str
    findings: list[GuardFinding] = []


class Server:
    def __init__(self, exchange_fd: int):
        self.fd = exchange_fd
        self.inputs: dict[str, list[Any]] = {}
        self.kept: list[list[Any]] = []  # earlier fresh inputs stay alive: new data_ptrs
        self.outputs: dict[str, list[Any]] = {}
        self.model: Any = None
        self.guard: Any = None
        self.module: Any = None
        self.settings: EvalSettings | None = None
        self.device = "cpu"
        self.source = ""
        self.workdir = Path(tempfile.mkdtemp(prefix="kw-candidate-", dir=os.getcwd()))

    # -- requests ---------------------------------------------------------------------------
    def build(self, req: dict[str, Any]) -> dict[str, Any]:
        from kernelwright.hardware.backends import get_backend

        self.settings = settings = EvalSettings.model_validate(req["settings"])
        self.source = req["source"]
        self.device = req["device"]
        prepare_for(get_backend(settings.backend), self.device, req["source"])
        import torch

        from kernelwright.core.precision import apply_policy, prepare_module
        from kernelwright.tools import exchange
        from kernelwright.tools.build import import_candidate
        from kernelwright.tools.runtime_guard import RuntimeGuard, watched_modules

        apply_policy(settings.precision)
        state = dict(zip(req["names"], exchange.read(self.fd, [exchange.Slot(**s) for s in
                                                             req["state"]], "cpu"), strict=True))
        self.guard = RuntimeGuard(settings.guard, settings.precision,
                                  str(self.workdir / "candidate.py"), watched_modules(),
                                  writable=[str(self.workdir.parent)])
        self.guard.audit_enabled = settings.audit_hook
        with self.guard.watching(record_ops=False):
            self.module, _ = import_candidate(req["source"], self.workdir)
            torch.manual_seed(settings.seed)
            model = self.module.ModelNew(*req["init_inputs"])
            own = model.state_dict()
            model.load_state_dict({k: v for k, v in state.items()
                                   if k in own and own[k].shape == v.shape}, strict=False)
            self.model = prepare_module(model, settings.precision, torch.device(self.device))
            have = {k: list(v.shape) for k, v in self.model.state_dict().items()}
        return {"state": have}

    def load(self, req: dict[str, Any]) -> dict[str, Any]:
        """Inputs into a named set: `into` an existing set keeps its memory (same data_ptr,
        new contents); otherwise new memory, the set it replaces kept alive."""
        from kernelwright.tools import exchange

        values = exchange.read(self.fd, [exchange.Slot(**s) for s in req["slots"]], self.device)
        name = req["name"]
        if req.get("into") and name in self.inputs:
            for dst, src in zip(self.inputs[name], values, strict=True):
                if hasattr(dst, "copy_"):
                    dst.copy_(src)
        else:
            # the set it replaces stays alive until the next load (only it: memory stays
            # bounded), so these inputs get new memory, never the last call's data_ptr
            self.kept = [self.inputs[name]] if name in self.inputs else []
            self.inputs[name] = values
        return {"ptrs": [v.data_ptr() for v in self.inputs[name] if hasattr(v, "data_ptr")]}

    def call(self, req: dict[str, Any]) -> dict[str, Any]:
        """Run the forward on named input sets, back to back, and keep the outputs by label."""
        from kernelwright.tools import correctness

        metas = []
        for name, label in zip(req["names"], req["labels"], strict=True):
            correctness.poison(self._like())
            with self.guard.watching():
                out = correctness.as_outputs(self._forward(*self.inputs[name]))
            self.outputs[label] = out
        for label in req["labels"]:
            metas.append([_meta(o) for o in self.outputs[label]])
        return {"outputs": metas, "ops": sorted(self.guard.ops)}

    def fetch(self, req: dict[str, Any]) -> dict[str, Any]:
        from kernelwright.tools import exchange

        out = self.outputs[req["label"]]
        if not all(_meta(o)["exact_type"] for o in out):
            raise ValueError("only plain tensors are sent")
        return {"slots": [s.model_dump() for s in exchange.write(self.fd, out)]}

    def read(self, req: dict[str, Any]) -> dict[str, Any]:
        from kernelwright.tools import exchange

        return {"slots": [s.model_dump() for s in exchange.write(self.fd, self.inputs[req["name"]])]}

    def drop(self, req: dict[str, Any]) -> dict[str, Any]:
        for label in req.get("labels", list(self.outputs)):
            self.outputs.pop(label, None)
        if req.get("inputs"):
            self.inputs.clear()
            self.kept.clear()
        return {}

    def measure(self, req: dict[str, Any]) -> dict[str, Any]:
        """Timed reps (GPU: CUDA events; CPU: times the judge discards), each on fresh contents:
        input set k scaled by the rep's factor. A fingerprint of every rep's outputs comes back
        for the judge to check; on a GPU, first the kernel census of one call."""
        from kernelwright.tools.timing import no_grad, peak_memory, scaled_inputs, time_calls

        assert self.settings is not None
        sets = [self.inputs[n] for n in req["names"]]
        plan = [(int(k), float(f)) for k, f, _ in req["plan"]]
        watched = {rep for rep, (_, _, w) in enumerate(req["plan"]) if w}
        make = scaled_inputs(sets, plan)
        answer: dict[str, Any] = {}
        if req.get("census"):
            answer["census"] = self._census(sets[0]).model_dump()

        def watch(rep: int) -> Any:  # the reps the judge chose get the full aten record
            import contextlib

            return self.guard.watching() if rep in watched else contextlib.nullcontext()

        with self.guard.watching(record_ops=False, audit=False):
            stats, prints = time_calls(no_grad(self._forward), make, len(plan),
                                       self.settings.warmup_ms, self.device,
                                       timed=req.get("timed", True), watch=watch)
        self.guard.check()
        answer["times_us"] = stats.times_us
        answer["peak_memory_bytes"] = peak_memory(self.device)
        answer["prints"] = [[float(x) for x in p] for p in prints]
        return answer

    # -- helpers ----------------------------------------------------------------------------
    def _forward(self, *args: Any) -> Any:
        import torch

        with torch.no_grad():
            return self.model(*args)

    def _like(self) -> list[Any]:
        return [o for out in self.outputs.values() for o in out if hasattr(o, "is_floating_point")][:4]

    def _census(self, inputs: list[Any]) -> Any:
        from kernelwright.tools.profile import profile_call
        from kernelwright.tools.timing import no_grad

        assert self.settings is not None
        with self.guard.watching(record_ops=False):
            return profile_call(no_grad(self._forward), inputs,
                                own_kernel_names(self.module, self.source),
                                str(self.workdir / "trace.json"),
                                vendor_streams_ok=self.settings.guard == "library")


def own_kernel_names(module: Any, source: str) -> set[str]:
    """Names of the candidate's Triton kernels and of __global__ functions in inline CUDA."""
    import re

    names = set(re.findall(r"__global__\s+(?:__launch_bounds__\([^)]*\)\s+)?void\s+(\w+)", source))
    for name, obj in vars(module).items():
        if type(obj).__module__.startswith("triton"):
            names.add(getattr(obj, "__name__", None) or getattr(getattr(obj, "fn", None),
                                                                 "__name__", name))
    return names


def _meta(value: Any) -> dict[str, Any]:
    import torch

    if not isinstance(value, torch.Tensor):
        return {"exact_type": False, "type_name": type(value).__name__}
    return {"exact_type": type(value) is torch.Tensor, "type_name": type(value).__name__,
            "dtype": str(value.dtype), "shape": list(value.shape), "device": str(value.device)}


def serve(channel: Channel) -> None:
    """The request loop (the process's target, see tools/process.py)."""
    import json

    from kernelwright.tools.runtime_guard import GuardViolation

    server = Server(int(os.environ["KERNELWRIGHT_EXCHANGE_FD"]))
    while True:
        text = channel.receive()
        if text is None:
            return
        req = json.loads(text)
        try:
            answer = {"ok": getattr(server, req["op"])(req)}
        except GuardViolation as exc:
            answer = {"failure": Failure(kind="guard", message=str(exc)[:4000],
                                         findings=exc.findings).model_dump()}
        except BaseException as exc:  # noqa: B036  (candidate code raised; SystemExit included)
            guard = server.guard
            if guard is not None and guard.findings:
                answer = {"failure": Failure(kind="guard", message="; ".join(
                    f"{f.rule}: {f.message}" for f in guard.findings)[:4000],
                    findings=guard.findings).model_dump()}
            else:
                kind = "build" if req["op"] == "build" else "forward"
                text = f"{type(exc).__name__}: {exc}"
                answer = {"failure": Failure(kind=kind, message=text[:4000]).model_dump()}
                print(traceback.format_exc()[-3000:], file=sys.stderr, flush=True)
        channel.send(json.dumps(answer))


def prepare_for(spec: BackendSpec, device: str, source: str) -> None:
    """Before the candidate is imported in its worker process."""
    if spec.name == "triton" and device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    if spec.name == "triton":  # imported by the harness, before the runtime guard watches
        import triton
        import triton.language  # noqa: F401
    if "load_inline" in source:  # the harness's imports, not the candidate's file access
        import torch.utils.cpp_extension  # noqa: F401
