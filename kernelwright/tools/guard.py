"""Static guard: read a candidate's source and refuse known hacks before anything runs.

It catches honest mistakes and the well-known reward hacks (torch fallbacks, silent
try/except fallbacks, patched timers, threads, subprocesses, reading the reference). A
determined, obfuscated payload can slip past any static check; the runtime guard in the worker
(aten dispatch record, identity checks) and the correctness and timing checks back it up.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kernelwright.core.results import Backend, GuardFinding, GuardMode, Precision, Rule

if TYPE_CHECKING:
    from kernelwright.hardware.backends import BackendSpec

# Imported modules a kernel never needs, with the rule each one breaks.
FORBIDDEN_MODULES: dict[str, Rule] = {
    "threading": Rule.THREADS, "_thread": Rule.THREADS, "concurrent": Rule.THREADS,
    "multiprocessing": Rule.SUBPROCESS, "subprocess": Rule.SUBPROCESS, "pty": Rule.SUBPROCESS,
    "signal": Rule.SUBPROCESS, "resource": Rule.SUBPROCESS,
    "socket": Rule.NETWORK, "ssl": Rule.NETWORK, "http": Rule.NETWORK, "urllib": Rule.NETWORK,
    "requests": Rule.NETWORK, "httpx": Rule.NETWORK, "asyncio": Rule.NETWORK,
    "ctypes": Rule.NATIVE_ACCESS, "cffi": Rule.NATIVE_ACCESS,
    "sys": Rule.INTROSPECTION, "gc": Rule.INTROSPECTION, "inspect": Rule.INTROSPECTION,
    "importlib": Rule.INTROSPECTION, "builtins": Rule.INTROSPECTION, "types": Rule.INTROSPECTION,
    "code": Rule.INTROSPECTION, "codeop": Rule.INTROSPECTION, "dis": Rule.INTROSPECTION,
    "marshal": Rule.INTROSPECTION, "pickle": Rule.INTROSPECTION, "runpy": Rule.INTROSPECTION,
    "traceback": Rule.INTROSPECTION, "kernelwright": Rule.INTROSPECTION,
    "io": Rule.FILE_ACCESS, "pathlib": Rule.FILE_ACCESS, "shutil": Rule.FILE_ACCESS,
    "tempfile": Rule.FILE_ACCESS, "glob": Rule.FILE_ACCESS, "fileinput": Rule.FILE_ACCESS,
    "mmap": Rule.FILE_ACCESS,
    "time": Rule.TIMERS, "timeit": Rule.TIMERS,
    "numpy": Rule.HOST_COMPUTE,
    "torch._inductor": Rule.TORCH_COMPUTE, "torch._dynamo": Rule.TORCH_COMPUTE,
    "torch.utils._python_dispatch": Rule.INTROSPECTION, "torch.overrides": Rule.INTROSPECTION,
    "torch.library": Rule.TORCH_COMPUTE, "torch._C": Rule.INTROSPECTION,
}

# torch.* calls that allocate, describe or build parameters: allowed in both modes.
TORCH_ALLOWED = {
    "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full",
    "full_like", "arange", "tensor", "as_tensor", "device", "dtype", "Size", "Tensor",
    "is_tensor", "is_floating_point", "no_grad", "inference_mode", "get_default_dtype",
    "promote_types", "result_type", "broadcast_shapes", "finfo", "iinfo", "manual_seed",
    "cuda.current_device", "cuda.device_count", "cuda.get_device_properties",
    "cuda.get_device_capability", "cuda.is_available", "cuda.device", "cuda.current_stream",
    "cuda.synchronize", "utils.cpp_extension.load_inline", "utils.cpp_extension.load",
    "cdiv",
}
# torch.* calls that are library GEMMs or convolutions: allowed in library mode only.
TORCH_LIBRARY = {
    "matmul", "mm", "bmm", "addmm", "baddbmm", "addbmm", "mv", "addmv", "dot", "einsum",
    "nn.functional.linear", "nn.functional.conv1d", "nn.functional.conv2d",
    "nn.functional.conv3d", "nn.functional.conv_transpose1d", "nn.functional.conv_transpose2d",
    "nn.functional.conv_transpose3d", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
    "conv_transpose2d", "conv_transpose3d",
}
# Tensor methods that compute. Views (view, reshape, t, permute, contiguous, ...) are allowed.
TENSOR_COMPUTE_METHODS = {
    "abs", "add", "addcmul", "addcdiv", "all", "amax", "amin", "any", "argmax", "argmin",
    "argsort", "bernoulli", "ceil", "clamp", "clamp_min", "clamp_max", "clip", "cos", "cosh",
    "cummax", "cummin", "cumprod", "cumsum", "div", "eq", "erf", "exp", "exp2", "expm1",
    "floor", "fmod", "gather", "ge", "gelu", "gt", "index_add", "index_select",
    "le", "lerp", "log", "log10", "log1p", "log2", "log_softmax", "logsumexp", "lt",
    "masked_fill", "masked_scatter", "masked_select", "max", "maximum", "mean", "median",
    "min", "minimum", "mish", "mul", "nan_to_num", "ne", "neg", "norm", "pow", "prod",
    "reciprocal", "relu", "remainder", "round", "rsqrt", "scatter", "scatter_add",
    "scatter_reduce", "sigmoid", "sign", "silu", "sin", "sinh", "softmax", "sort", "sqrt",
    "square", "std", "sub", "sum", "tan", "tanh", "topk", "tril", "triu", "trunc", "var",
    "where", "unique", "kthvalue", "mode", "nansum", "diff", "cross", "outer",
    "softplus", "hardtanh", "leaky_relu", "elu", "selu", "true_divide", "floor_divide",
    "logical_and", "logical_or", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor",
}
TENSOR_LIBRARY_METHODS = {"matmul", "mm", "bmm", "addmm", "baddbmm", "mv", "dot"}
HOST_METHODS = {"cpu", "numpy", "tolist"}
LOW_PRECISION_METHODS = {"half", "bfloat16"}
LOW_PRECISION_NAMES = {
    "float16", "half", "bfloat16", "float8_e4m3fn", "float8_e5m2", "float8e4nv", "float8e5",
    "float8e4b15",
}
STREAM_APIS = {"cuda.Stream", "cuda.stream", "cuda.set_stream", "cuda.ExternalStream",
               "cuda.StreamContext", "Stream"}
BUILTIN_RULES: dict[str, Rule] = {
    "eval": Rule.DYNAMIC_CODE, "exec": Rule.DYNAMIC_CODE, "compile": Rule.DYNAMIC_CODE,
    "__import__": Rule.DYNAMIC_CODE, "globals": Rule.INTROSPECTION, "locals": Rule.INTROSPECTION,
    "vars": Rule.INTROSPECTION, "setattr": Rule.PATCHING, "delattr": Rule.PATCHING,
    "open": Rule.FILE_ACCESS, "breakpoint": Rule.INTROSPECTION, "input": Rule.INTROSPECTION,
}
OS_ALLOWED = {"environ", "getenv", "cpu_count"}
OS_PROCESS = {"system", "popen", "fork", "forkpty", "kill", "killpg", "spawnl", "spawnv",
              "execv", "execve", "execl", "execlp", "execvp", "posix_spawn", "posix_spawnp"}
DUNDER_INTROSPECTION = {"__dict__", "__globals__", "__builtins__", "__code__", "__closure__",
                        "__subclasses__", "__mro__", "__bases__", "__getattribute__"}
# Fragments of inline C++/CUDA sources that do what the Python rules forbid.
NATIVE_PATTERNS: dict[str, Rule] = {
    "cudaStreamCreate": Rule.SIDE_STREAM, "cudaStreamBeginCapture": Rule.SIDE_STREAM,
    "pthread_create": Rule.THREADS, "std::thread": Rule.THREADS, "std::async": Rule.THREADS,
    "popen(": Rule.SUBPROCESS, "system(": Rule.SUBPROCESS, "fork(": Rule.SUBPROCESS,
    "execve(": Rule.SUBPROCESS, "socket(": Rule.NETWORK, "fopen(": Rule.FILE_ACCESS,
    "ifstream": Rule.FILE_ACCESS, "dlopen(": Rule.NATIVE_ACCESS,
}
SUBCLASS_CALLS = {"_make_subclass", "as_subclass", "_make_wrapper_subclass"}
JIT_DECORATORS = {"triton.jit", "triton.autotune", "triton.heuristics", "triton.runtime.jit.jit"}


CONTAINER_CALLS = {"set", "dict", "list", "frozenset", "defaultdict", "OrderedDict", "Counter",
                   "deque"}


def _is_container(value: ast.expr) -> bool:
    if isinstance(value, ast.Set | ast.Dict | ast.List | ast.SetComp | ast.DictComp | ast.ListComp):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(
            func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == \
            "collections" else None
        return name in CONTAINER_CALLS
    return False


def _receiver_key(node: ast.expr) -> str | None:
    """`name` or `self.attr` (the forms a container is tracked under), else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return f"self.{node.attr}"
    return None


@dataclass
class _Scope:
    in_jit: bool = False
    in_init: bool = False


@dataclass
class _Checker(ast.NodeVisitor):
    guard: GuardMode
    precision: Precision
    problem_name: str
    aliases: dict[str, str] = field(default_factory=dict)
    findings: list[GuardFinding] = field(default_factory=list)
    jit_names: set[str] = field(default_factory=set)
    launched: set[str] = field(default_factory=set)
    uses_load_inline: bool = False
    load_inline_kwargs: set[str] = field(default_factory=set)
    scope: _Scope = field(default_factory=_Scope)
    containers: set[str] = field(default_factory=set)  # names bound to sets, dicts and lists

    def flag(self, rule: str, node: ast.AST, message: str) -> None:
        self.findings.append(GuardFinding(rule=rule, message=message, line=getattr(node, "lineno", None)))

    # -- names ------------------------------------------------------------------------------
    def dotted(self, node: ast.AST) -> str | None:
        """Resolve `F.relu` to `torch.nn.functional.relu` through the imports; None if unknown."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.aliases:
            return ".".join([self.aliases[node.id], *reversed(parts)])
        return None

    # -- imports ----------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.check_module(alias.name, node)
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                root = alias.name.split(".")[0]
                self.aliases[root] = root

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        self.check_module(base, node)
        for alias in node.names:
            full = f"{base}.{alias.name}"
            self.check_module(full, node)
            self.aliases[alias.asname or alias.name] = full

    def check_module(self, name: str, node: ast.AST) -> None:
        for forbidden, rule in FORBIDDEN_MODULES.items():
            if name == forbidden or name.startswith(forbidden + "."):
                self.flag(rule, node, f"imports `{name}`, which a kernel does not need ({rule})")
                return

    # -- structure --------------------------------------------------------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        is_jit = any(self.decorator_name(d) in JIT_DECORATORS for d in node.decorator_list)
        if is_jit:
            self.jit_names.add(node.name)
        if node.name in {"__torch_function__", "__torch_dispatch__"}:
            self.flag(Rule.TENSOR_SUBCLASS, node, f"defines {node.name}: tensor subclasses are refused")
        saved = self.scope
        self.scope = _Scope(in_jit=saved.in_jit or is_jit,
                            in_init=saved.in_init or node.name == "__init__")
        for decorator in node.decorator_list:
            self.visit(decorator)
        for stmt in node.body:
            self.visit(stmt)
        self.scope = saved

    visit_AsyncFunctionDef = visit_FunctionDef

    def decorator_name(self, node: ast.expr) -> str | None:
        target = node.func if isinstance(node, ast.Call) else node
        return self.dotted(target)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            if self.dotted(base) in {"torch.Tensor", "torch.nn.Parameter"}:
                self.flag(Rule.TENSOR_SUBCLASS, node, f"class {node.name} subclasses torch.Tensor")
        self.generic_visit(node)

    def visit_Try(self, node: ast.Try) -> None:
        self.flag(Rule.TRY_EXCEPT, node, "try/except can hide a fallback when a kernel fails; "
                                      "let errors surface")
        self.generic_visit(node)

    visit_TryStar = visit_Try  # type: ignore[assignment]

    # -- assignments: patching --------------------------------------------------------------
    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self.check_patch(target)
            self.note_container(target, node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.note_container(node.target, node.value)
        self.generic_visit(node)

    def note_container(self, target: ast.expr, value: ast.expr) -> None:
        """Remember names (and `self.x`) bound to a Python set, dict or list, whose `.add()` and
        the like are not torch compute."""
        if _is_container(value) and (key := _receiver_key(target)) is not None:
            self.containers.add(key)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.check_patch(node.target)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self.check_patch(target)
        self.generic_visit(node)

    def check_patch(self, target: ast.expr) -> None:
        if isinstance(target, ast.Attribute) and self.dotted(target) is not None:
            self.flag(Rule.PATCHING, target, f"assigns to `{self.dotted(target)}`: patching "
                                          "torch, triton, timers or other modules is refused")

    # -- expressions ------------------------------------------------------------------------
    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.MatMult) and not self.scope.in_jit and self.guard == "strict":
            self.flag(Rule.TORCH_COMPUTE, node, "the @ operator runs a library GEMM: allowed in "
                                             "`library` mode only")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "__file__":
            self.flag(Rule.FILE_ACCESS, node, "uses __file__: candidates may not locate files")
        elif node.id in DUNDER_INTROSPECTION:
            self.flag(Rule.INTROSPECTION, node, f"uses {node.id}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self.dotted(node)
        if node.attr in DUNDER_INTROSPECTION:
            self.flag(Rule.INTROSPECTION, node, f"uses .{node.attr}")
        if name is not None:
            self.check_qualified(name, node)
        self.generic_visit(node)

    def check_qualified(self, name: str, node: ast.AST) -> None:
        """Rules on a resolved module attribute, used or called."""
        module, _, attr = name.rpartition(".")
        if name.startswith("torch.") and name[6:] in STREAM_APIS:
            self.flag(Rule.SIDE_STREAM, node, f"uses `{name}`: work on side streams is refused")
        if attr in LOW_PRECISION_NAMES and self.precision in {"fp32", "tf32"}:
            self.flag(Rule.PRECISION_DOWNGRADE, node,
                      f"uses {name} under the {self.precision} policy: compute in the policy's "
                      "precision, or evaluate with --precision bf16/fp16")
        if module == "os" and attr not in OS_ALLOWED:
            rule = Rule.SUBPROCESS if attr in OS_PROCESS or attr.startswith(("exec", "spawn")) \
                else Rule.FILE_ACCESS
            self.flag(rule, node, f"uses os.{attr}")
        if module.startswith("torch") and attr in SUBCLASS_CALLS:
            self.flag(Rule.TENSOR_SUBCLASS, node, f"uses {name}")
        if name.startswith("torch.ops."):
            self.flag(Rule.TORCH_COMPUTE, node, f"calls `{name}`: an aten op, not a kernel of its own")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Subscript) and isinstance(func.value, ast.Name):
            self.launched.add(func.value.id)  # kernel[grid](...)
        name = self.dotted(func)
        if isinstance(func, ast.Name) and func.id in BUILTIN_RULES and func.id not in self.aliases:
            rule = BUILTIN_RULES[func.id]
            self.flag(rule, node, f"calls {func.id}(): refused ({rule})")
        if name is not None:
            self.check_call(name, node)
        elif isinstance(func, ast.Attribute):
            self.check_method(func.attr, node)
        self.generic_visit(node)

    def check_call(self, name: str, node: ast.Call) -> None:
        if name.endswith(("load_inline", "cpp_extension.load")):
            self.uses_load_inline = True
            self.load_inline_kwargs |= {k.arg for k in node.keywords if k.arg}
        if name == "triton.language.dot" or name.endswith("language.dot"):
            self.check_dot_precision(node)
        if not name.startswith("torch.") or self.scope.in_jit:
            return
        rest = name[len("torch."):]
        if rest in TORCH_ALLOWED or rest.startswith(("nn.init.", "cuda.Event")):
            return
        if rest.startswith("nn.") and not rest.startswith("nn.functional."):
            return  # module constructors and nn.Parameter: parameter containers
        if rest == "compile":
            self.flag(Rule.TORCH_COMPUTE, node, "calls torch.compile: the kernels must be its own")
            return
        if self.scope.in_init:
            return  # parameters may be initialised with torch ops
        if rest in TORCH_LIBRARY:
            if self.guard == "strict":
                self.flag(Rule.TORCH_COMPUTE, node, f"calls `{name}`, a library GEMM/convolution: "
                                                 "allowed in `library` mode only")
            return
        self.flag(Rule.TORCH_COMPUTE, node, f"calls `{name}`: torch compute is refused; "
                                         "compute it in the candidate's own kernel")

    def check_method(self, method: str, node: ast.Call) -> None:
        receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
        if receiver is not None and (_is_container(receiver) or
                                     _receiver_key(receiver) in self.containers):
            return  # a Python set, dict or list: `.add()` is not a tensor's
        if method in SUBCLASS_CALLS:
            self.flag(Rule.TENSOR_SUBCLASS, node, f"calls .{method}(): tensor subclasses are refused")
        if self.scope.in_jit or self.scope.in_init:
            return
        if method in HOST_METHODS:
            self.flag(Rule.HOST_COMPUTE, node, f"calls .{method}(): computing on the host is refused")
        elif method in LOW_PRECISION_METHODS and self.precision in {"fp32", "tf32"}:
            self.flag(Rule.PRECISION_DOWNGRADE, node, f"calls .{method}() under the "
                                                   f"{self.precision} policy")
        elif method in TENSOR_LIBRARY_METHODS:
            if self.guard == "strict":
                self.flag(Rule.TORCH_COMPUTE, node, f"calls .{method}(), a library GEMM: allowed "
                                                 "in `library` mode only")
        elif method.rstrip("_") in TENSOR_COMPUTE_METHODS:
            self.flag(Rule.TORCH_COMPUTE, node, f"calls tensor method .{method}(): torch compute "
                                             "is refused; compute it in the candidate's kernel")

    def check_dot_precision(self, node: ast.Call) -> None:
        if self.precision != "fp32":
            return
        kwargs = {k.arg: k.value for k in node.keywords if k.arg}
        precision = kwargs.get("input_precision")
        allow_tf32 = kwargs.get("allow_tf32")
        exact = isinstance(precision, ast.Constant) and precision.value in {"ieee", "tf32x3"}
        no_tf32 = isinstance(allow_tf32, ast.Constant) and allow_tf32.value is False
        if not (exact or no_tf32):
            self.flag(Rule.PRECISION_DOWNGRADE, node, "tl.dot defaults to TF32 for fp32 inputs: pass "
                                                   "input_precision=\"ieee\" under the fp32 policy")

    def visit_Constant(self, node: ast.Constant) -> None:
        if not isinstance(node.value, str):
            return
        text = node.value
        if self.problem_name and f"{self.problem_name}.py" in text:
            self.flag(Rule.FILE_ACCESS, node, f"names the problem file `{self.problem_name}`: "
                                           "candidates may not read the reference")
        for pattern, rule in NATIVE_PATTERNS.items():
            if pattern in text:
                self.flag(rule, node, f"inline native code uses `{pattern}` ({rule})")
        if self.precision == "fp32" and ("__half" in text or "__nv_bfloat16" in text):
            self.flag(Rule.PRECISION_DOWNGRADE, node, "inline native code uses half precision "
                                                   "under the fp32 policy")


def check_source(source: str, guard: GuardMode = "strict", precision: Precision = "fp32",
                 problem_name: str = "", backend: Backend = "triton") -> list[GuardFinding]:
    """Return every static finding on a candidate source; an empty list means it may run."""
    from kernelwright.core.problem import parse_python
    from kernelwright.hardware.backends import get_backend

    try:
        tree = parse_python(source)
    except SyntaxError as exc:
        return [GuardFinding(rule=Rule.SYNTAX_ERROR, message=f"syntax error: {exc.msg}",
                             line=exc.lineno)]
    checker = _Checker(guard=guard, precision=precision, problem_name=problem_name)
    checker.visit(tree)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    if "ModelNew" not in classes:
        checker.flag(Rule.NO_MODEL_NEW, tree, "defines no `class ModelNew(nn.Module)`")
    elif not any(isinstance(n, ast.FunctionDef) and n.name == "forward"
                 for n in classes["ModelNew"].body):
        checker.flag(Rule.NO_MODEL_NEW, classes["ModelNew"], "ModelNew has no forward()")
    if not (checker.jit_names & checker.launched) and not checker.uses_load_inline:
        checker.flag(Rule.NO_KERNEL, tree, "launches no kernel of its own (a @triton.jit kernel "
                                        "called as kernel[grid](...), or load_inline)")
    else:
        wrong = backend_mismatch(
            get_backend(backend), bool(checker.jit_names & checker.launched),
            checker.load_inline_kwargs if checker.uses_load_inline else None)
        if wrong:
            checker.flag(Rule.WRONG_BACKEND, tree, wrong)
    unique = {(f.rule, f.line): f for f in checker.findings}
    return sorted(unique.values(), key=lambda f: (f.line or 1 << 30, f.rule))


def backend_mismatch(spec: BackendSpec, jit_launched: bool, load_inline_kwargs: set[str] | None
                     ) -> str | None:
    """What is wrong with how the candidate builds its kernels for this backend, or None."""
    if not spec.builds_with_load_inline:
        return None  # triton: a launched @triton.jit kernel (or inline CUDA) is checked apart
    if load_inline_kwargs is None:
        return f"the {spec.name} backend builds C++ with load_inline; this source never calls it"
    if spec.cuda_sources and "cuda_sources" not in load_inline_kwargs:
        return "the cuda backend builds CUDA C++: pass it to load_inline as cuda_sources"
    if not spec.cuda_sources and "cuda_sources" in load_inline_kwargs:
        return "the cpu backend builds host C++ only: load_inline without cuda_sources"
    if jit_launched:
        return f"the {spec.name} backend runs C++ kernels; this source launches Triton ones"
    return None
