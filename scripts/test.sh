#!/usr/bin/env bash
# Install everything, then lint, type-check and run the tests (GPU tests skip without CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
# Chromium and its driver for the report's browser test, from the system's packages, installed
# beside the Python environment (the test skips, saying why, where they cannot be installed)
browser_log=$(mktemp)
export DEBIAN_FRONTEND=noninteractive  # apt-get asks nothing
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  (command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] &&
     { apt-get install -y -q chromium chromium-driver >"$browser_log" 2>&1 ||
       { apt-get update -q >>"$browser_log" 2>&1 &&
         apt-get install -y -q chromium chromium-driver >>"$browser_log" 2>&1; }; } ||
     echo "kernelwright: chromium not installed (see $browser_log); the browser test will skip") &
fi
bash scripts/env.sh
wait
.venv/bin/python -m ruff check kernelwright tests benchmarks
.venv/bin/python -m mypy
.venv/bin/lint-imports --no-cache  # the layers of pyproject.toml, one direction
.venv/bin/python -m pytest -q --timeout=900 -n auto --durations=10 tests "$@"
