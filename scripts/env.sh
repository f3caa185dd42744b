#!/usr/bin/env bash
# Make .venv with everything kernelwright needs; safe to run again (it only adds what is missing).
# A torch you already have (say a CUDA build) is kept: the venv then sees the system packages.
# Where torch is missing, the pinned torch==2.13.0 is installed: on the project's machines that
# is a CPU build from local disk. For a GPU, install your CUDA torch first, then run this.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if "$python" -c "import torch" 2>/dev/null; then
    echo "kernelwright: keeping the torch of $python ($("$python" -c 'import torch; print(torch.__version__)'))"
    "$python" -m venv --system-site-packages .venv
  else
    "$python" -m venv .venv
  fi
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "kernelwright: installing torch==2.13.0"
  .venv/bin/python -m pip install -q torch==2.13.0
fi
.venv/bin/python -m pip install -q -e ".[dev]"
# The LangGraph dev server (the `serve` extra) in a second step: resolved together with the
# rest, pip backtracks for many minutes over grpcio and protobuf; on top of it, it settles at once.
if ! .venv/bin/python -c "import langgraph_api" 2>/dev/null; then
  .venv/bin/python -m pip install -q "langgraph-cli[inmem]>=0.4"
fi
