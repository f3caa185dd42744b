#!/usr/bin/env bash
# Install everything, then lint, type-check and run the tests (GPU tests skip without CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
.venv/bin/python -m ruff check kernelwright tests benchmarks
.venv/bin/python -m mypy
.venv/bin/lint-imports --no-cache  # the layers of pyproject.toml, one direction
.venv/bin/python -m pytest -q --timeout=900 -n auto --durations=10 tests "$@"
