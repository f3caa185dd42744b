#!/usr/bin/env bash
# Install everything, then evaluate a bundled candidate against its KernelBench problem.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
.venv/bin/kernelwright eval examples/problems/level1/03_softmax.py examples/candidates/level1/03_softmax.py "$@"
