#!/usr/bin/env bash
# The GPU checks of the verdict issue (judge and candidate in separate processes), on the device
# machine, with carry [".device"] (wheels from ../shared/device/prepare.sh):
#   bash benchmarks/device_issue20.sh smoke     # one example and two hostile candidates
#   bash benchmarks/device_issue20.sh tests N   # the GPU tests in the background; poll N s
#   bash benchmarks/device_issue20.sh poll N  # wait up to N s for the background run; print it
# Results go to $OUT (gpu-tests.log, smoke.txt).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .device/whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH KERNELWRIGHT_CACHE_DIR=/tmp/kwc \
    PYTHONUNBUFFERED=1 KERNELWRIGHT_TRACKING__ENABLED=false KERNELWRIGHT_MEMORY__EMBEDDER=hash
mkdir -p "$OUT"
case "${1:-}" in
  smoke)
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/smoke.txt"
    python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)' \
      | tee -a "$OUT/smoke.txt"
    python3 -m kernelwright.cli eval --explain-sandbox --device cuda 2>&1 | tee -a "$OUT/smoke.txt"
    for pair in "examples/problems/level1/01_relu.py examples/candidates/level1/01_relu.py" \
                "tests/adversarial/problems/relu.py tests/adversarial/forged_pipe.py" \
                "tests/adversarial/problems/relu.py tests/adversarial/value_cache.py"; do
      echo "== $pair $(date +%T)" | tee -a "$OUT/smoke.txt"
      # shellcheck disable=SC2086
      timeout 200 python3 -m kernelwright.cli eval $pair --device cuda --json 2>&1 | python3 -c '
import json, sys
text = sys.stdin.read()
try:
    r = json.loads(text[text.index("{"):])
except ValueError:
    print(text[-3000:]); sys.exit()
keys = ("status", "reason", "message", "runtime_us", "eager_us", "compile_us", "sol_fraction",
        "timed_reps_checked", "timing_wall_s", "own_kernel_fraction")
print({k: r.get(k) for k in keys}); print(r.get("log_tail", "")[-1500:])' | tee -a "$OUT/smoke.txt"
    done
    date +%T | tee -a "$OUT/smoke.txt" ;;
  tests)
    rm -rf /tmp/gpu20 && mkdir -p /tmp/gpu20 && cp -r tests examples kernelwright pyproject.toml /tmp/gpu20/
    (cd /tmp/gpu20 && PYTHONPATH=/tmp/site:/tmp/gpu20 setsid nohup bash -c "python3 -m pytest -q -rf \
      -m gpu tests/gpu -k 'not do_bench' -p no:cacheprovider > /tmp/gpu20/log 2>&1; \
      touch /tmp/gpu20/done" </dev/null >/dev/null 2>&1 &)
    echo "started the GPU tests in the background"
    bash benchmarks/device_issue20.sh poll "${2:-500}" ;;
  poll)
    end=$((SECONDS + ${2:-500}))
    while [ ! -e /tmp/gpu20/done ] && [ $SECONDS -lt $end ]; do sleep 5; done
    cp /tmp/gpu20/log "$OUT/gpu-tests.log" 2>/dev/null
    tail -c 6000 /tmp/gpu20/log; [ -e /tmp/gpu20/done ] && echo "GPU TESTS DONE" ;;
  *) echo "usage: $0 smoke | poll SECONDS" >&2; exit 2 ;;
esac
