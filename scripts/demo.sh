#!/usr/bin/env bash
# Install everything, then optimise a bundled KernelBench problem with the offline policy
# (no LLM needed). On a machine without a GPU the run checks correctness only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
.venv/bin/kernelwright run examples/problems/level2/04_residual_add_layernorm.py "$@"
