"""RunConfig: everything one optimisation run may vary, from YAML, the environment or code.

Environment variables use the KERNELWRIGHT_ prefix (KERNELWRIGHT_ITERATIONS=4); nested fields
use a double underscore (KERNELWRIGHT_CODER__POLICY=llm). The config reaches graph nodes through
LangGraph's context, never through module globals, so a server can pass one per request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kernelwright.core.errors import KernelwrightError
from kernelwright.core.results import (
    CPU_BACKEND_MAX_ELEMENTS,
    CPU_MAX_ELEMENTS,
    Backend,
    EvalSettings,
    GuardMode,
    Precision,
)
from kernelwright.tools.evaluators import EvaluatorConfig

ROLES = ("planner", "coder", "fixer", "profiler", "critic")


class Strict(BaseModel):
    """A config section: a misspelt key is an error that names it, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class RoleConfig(Strict):
    """Which policy plays a role; the model settings apply to the `llm` policy."""

    policy: Literal["offline", "llm"] = "offline"
    model: str = "gpt-4o-mini"
    base_url: str | None = Field(None, description="any OpenAI-compatible endpoint")
    api_key: str | None = Field(None, description="default: OPENAI_API_KEY")
    temperature: float = 0.2
    max_retries: int = Field(3, ge=0, description="transport retries, with backoff")
    timeout_s: float = Field(120.0, gt=0, description="per request")


class MemoryConfig(Strict):
    """The experience memory (kernelwright/memory/): where it lives and how retrieval ranks."""

    enabled: bool = True
    path: Path | None = Field(None, description="local folder; default: the user data dir")
    url: str | None = Field(None, description="a Qdrant server, for teams (wins over path)")
    collection: str = "experiences"
    embedder: Literal["local", "openai", "hash"] = Field(
        "local", description="local: all-MiniLM-L6-v2; openai: an endpoint; hash: no model")
    embed_model: str = Field("text-embedding-3-small", description="for embedder: openai")
    embed_base_url: str | None = None
    n_draft: int = Field(3, ge=0, description="experiences in a drafting coder's context")
    n_refine: int = Field(3, ge=0, description="experiences in a refining coder's context")
    k_factor: int = Field(4, ge=1, description="similarity prefetch: k_factor x n")
    w_draft: float = Field(0.5, ge=0, le=1, description="weight of q_draft (0: similarity only)")
    w_refine: float = Field(0.5, ge=0, le=1, description="weight of q_refine")
    bonus: float = Field(0.1, ge=0, description="exploration bonus / sqrt(1 + visits)")
    alpha: float = Field(0.3, gt=0, le=1, description="Q learning rate")
    merge_above: float = Field(0.97, gt=0, le=1, description="similarity of a near-duplicate")
    same_hardware: bool = Field(False, description="retrieve only this device's experiences")
    same_op_kinds: bool = Field(False, description="only experiences sharing a kernel kind")


class TrackingConfig(Strict):
    """MLflow tracking (kernelwright/tracking.py): one MLflow run per optimisation."""

    enabled: bool = True
    uri: str | None = Field(None, description="default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    experiment: str = "kernelwright"
    traces: bool = Field(True, description="LangChain autolog traces when a role uses an LLM")


class RunConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KERNELWRIGHT_", env_nested_delimiter="__",
                                      extra="forbid")

    backend: Backend = Field("triton", description="triton | cuda (CUDA C++) | cpu (C++)")
    precision: Precision = "fp32"
    guard: GuardMode = "strict"
    device: Literal["auto", "cuda", "cpu"] = "auto"
    iterations: int = Field(6, ge=1, description="rounds of plan -> code -> evaluate")
    candidates: int = Field(2, ge=1, description="candidates coded per round (fanned out)")
    fix_tries: int = Field(2, ge=0, description="repairs of one failing candidate")
    patience: int = Field(3, ge=1, description="rounds without improvement before stopping")
    stop_sol: float = Field(0.92, gt=0, description="stop at this SOL fraction")
    selection: Literal["best_first", "uct"] = "best_first"
    exploration: float = Field(0.1, ge=0, description="bonus for rarely expanded parents")
    timeout_s: float = Field(600.0, gt=0, description="wall-clock limit per evaluation")
    cpu_max_elements: int = Field(CPU_MAX_ELEMENTS, gt=0,
                                  description="Triton interpreter: shrink inputs to this size")
    cpu_backend_max_elements: int = Field(CPU_BACKEND_MAX_ELEMENTS, gt=0,
                                          description="cpu backend: shrink inputs to this size")
    max_tokens: int = Field(2_000_000, gt=0, description="LLM tokens the run may spend")
    max_seconds: float | None = Field(None, gt=0, description="wall-clock budget of the run")
    compile_baseline: bool = Field(True, description="time torch.compile of the reference once "
                                   "per run (GPU), for speedups vs compile")
    sandbox: bool = Field(True, description="confine each candidate's worker (no secrets, "
                          "files, network or stray processes; tools/sandbox.py)")
    planner: RoleConfig = RoleConfig()
    coder: RoleConfig = RoleConfig()
    fixer: RoleConfig = RoleConfig()
    profiler: RoleConfig = RoleConfig()
    critic: RoleConfig = RoleConfig()
    memory: MemoryConfig = MemoryConfig()
    tracking: TrackingConfig = TrackingConfig()
    evaluator: EvaluatorConfig = EvaluatorConfig()

    def with_model(self, model: str | None, base_url: str | None) -> RunConfig:
        """Every role on the LLM policy with this model and endpoint (the CLI's --model)."""
        if model is None and base_url is None:
            return self
        change = {k: v for k, v in dict(model=model, base_url=base_url).items() if v is not None}
        roles = {r: getattr(self, r).model_copy(update=dict(policy="llm", **change))
                 for r in ROLES}
        return self.model_copy(update=roles)

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """A config file; the environment still fills what the file leaves out."""
        import yaml
        from pydantic import ValidationError

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise KernelwrightError(f"{path}: cannot read the config ({exc})") from None
        try:
            return cls(**data)
        except ValidationError as exc:
            lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise KernelwrightError(f"{path}: invalid config: " + "; ".join(lines)) from None

    def eval_settings(self, device: Literal["cuda", "cpu"], compile_baseline: bool = False
                      ) -> EvalSettings:
        return EvalSettings(backend=self.backend, precision=self.precision, guard=self.guard,
                            device=device, timeout_s=self.timeout_s,
                            compile_baseline=compile_baseline, sandbox=self.sandbox,
                            cpu_max_elements=self.cpu_max_elements,
                            cpu_backend_max_elements=self.cpu_backend_max_elements)


def run_config(runtime: Any) -> RunConfig:
    """A graph run's settings: the context given with the run (a LangGraph Runtime's), else the
    defaults (and the environment: KERNELWRIGHT_*), as for a server run started without one."""
    context = getattr(runtime, "context", None)
    return context if context is not None else RunConfig()
