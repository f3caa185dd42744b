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
.venv/bin/lint-imports --no-cache  # the layers of pyproject.toml, one direction
# mypy (a minute, cold) checks beside the tests; its verdict counts as much as theirs
types_log=$(mktemp)
.venv/bin/python -m mypy >"$types_log" 2>&1 & types=$!
tests_rc=0
.venv/bin/python -m pytest -q --timeout=900 -n auto --durations=10 tests "$@" || tests_rc=$?
types_rc=0
wait "$types" || types_rc=$?
cat "$types_log"
[ "$types_rc" = 0 ] || echo "kernelwright: mypy failed (above)"
[ "$tests_rc" = 0 ] && [ "$types_rc" = 0 ]
