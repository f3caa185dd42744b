"""Build: import a candidate, compile it, construct ModelNew with the reference's parameters."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path
from typing import Any

import torch


def import_candidate(source: str, workdir: Path) -> tuple[types.ModuleType, str]:
    """Write the source to a private file (Triton reads kernel source through inspect) and import it."""
    file = workdir / "candidate.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location("kw_candidate", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, str(file)


def construct_pair(model_cls: type[torch.nn.Module], new_cls: type[torch.nn.Module],
                   init_inputs: list[Any], seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Construct reference and candidate from the same seed; copy reference state where names match."""
    torch.manual_seed(seed)
    reference = model_cls(*init_inputs)
    torch.manual_seed(seed)
    candidate = new_cls(*init_inputs)
    ref_state = reference.state_dict()
    own = candidate.state_dict()
    shared = {k: v for k, v in ref_state.items() if k in own and own[k].shape == v.shape}
    if shared:
        candidate.load_state_dict(shared, strict=False)
    return reference, candidate
