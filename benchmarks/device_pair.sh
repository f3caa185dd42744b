#!/usr/bin/env bash
# Two benches side by side on the device machine's two GPUs (kind nvidia-h200-x2), with carry
# [".device"] (wheels and the KernelBench dev set from ../shared/device/prepare.sh):
#   bash benchmarks/device_pair.sh start N   # install, start both in the background, poll N s
#   bash benchmarks/device_pair.sh poll N    # wait up to N s more; copy what finished to $OUT
#   bash benchmarks/device_pair.sh verify N  # the second round (below), then poll N s
# GPU 0: the fp32 GEMMs (issue 24): `hw calibrate`, the K-major copies of row-major operands
#   (level 1 2, 3, 6, 7, 8), the 3xTF32 tile grid on level 2 14, then the problems not yet measured.
# GPU 1: the memory-bound level-1 problems (issue 25): draft, search space, eager, compile.
# Each bench appends one JSON line per problem to benchmarks/results/<dir>/ and skips problems
# already there, so a later machine continues where an earlier one stopped (carry the results).
set -uo pipefail
W=/tmp/kwpair
G=benchmarks/results/fp32-gemms-h200
M=benchmarks/results/memory-bound-h200
# `verify` starts the second round instead: the writer's changes after the first (level 1 6, 7
# and 8 judged again, level 3 50; the 2^31-element pool, argmin and the reverse cumsum).
case "${1:-}" in
  verify)
    GEMMS="python3 benchmarks/fp32_gemms.py kb-dev/level1 kb-dev/level3 --guards strict --no-dots \
      --only 6_Matmul 7_Matmul 8_Matmul 50_ReLU --out $G/gemms-verify.jsonl > gemms.log 2>&1" \
    MEMORY="python3 benchmarks/memory_bound.py kb-dev/level1 --sweep 0 --only 45_ 52_ 91_ \
      --out $M/memory-verify.jsonl > memory.log 2>&1" bash "$0" start "${2:-300}" ;;
  start)
    pkill -f fp32_gemms.py; pkill -f memory_bound.py; sleep 1
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
        .device/whl/*.whl >/dev/null 2>&1
    rm -rf $W && mkdir -p $W && cp -r kernelwright benchmarks examples tests pyproject.toml .device/kb-dev $W/
    mkdir -p $W/$G $W/$M
    cat > /tmp/kwpairenv <<EOV
export PYTHONPATH=/tmp/site:$W PATH=/tmp/site/bin:\$PATH KERNELWRIGHT_CACHE_DIR=/tmp/kwc \
    PYTHONUNBUFFERED=1 KERNELWRIGHT_TRACKING__ENABLED=false KERNELWRIGHT_MEMORY__EMBEDDER=hash
EOV
    . /tmp/kwpairenv
    nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader | tee $W/versions.txt
    python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)' \
        | tee -a $W/versions.txt
    GEMMS=${GEMMS:-"python3 -m kernelwright.cli hw calibrate > calibrate.txt 2>&1; \
      cp /tmp/kwc/hardware/*.json calibrated.json; \
      python3 benchmarks/fp32_gemms.py kb-dev/level1 --guards strict --only 2_Standard 3_Batched \
        6_Matmul 7_Matmul 8_Matmul --out $G/gemms-pack.jsonl > gemms.log 2>&1; \
      python3 benchmarks/fp32_gemms.py kb-dev/level2 --guards strict --only 14_Gemm --tile-grid \
        --out $G/tiles.jsonl >> gemms.log 2>&1; \
      python3 benchmarks/fp32_gemms.py kb-dev/level2 kb-dev/level3 --no-dots \
        --out $G/gemms.jsonl >> gemms.log 2>&1"}
    MEMORY=${MEMORY:-"python3 benchmarks/memory_bound.py kb-dev/level1 --sweep 8 \
      --out $M/memory.jsonl > memory.log 2>&1"}
    (cd $W && CUDA_VISIBLE_DEVICES=0 setsid nohup bash -c ". /tmp/kwpairenv; $GEMMS; \
      touch gemms.done" </dev/null >/dev/null 2>&1 &)
    (cd $W && CUDA_VISIBLE_DEVICES=1 setsid nohup bash -c ". /tmp/kwpairenv; $MEMORY; \
      touch memory.done" </dev/null >/dev/null 2>&1 &)
    echo "started $(date +%T)"
    bash "$0" poll "${2:-500}" ;;
  poll)
    end=$((SECONDS + ${2:-500}))
    while { [ ! -e $W/gemms.done ] || [ ! -e $W/memory.done ]; } && [ $SECONDS -lt $end ]; do
      sleep 5; done
    mkdir -p "$OUT"
    cp $W/versions.txt $W/calibrate.txt $W/calibrated.json $W/gemms.log $W/memory.log "$OUT/" 2>/dev/null
    cp $W/$G/*.jsonl $W/$M/*.jsonl "$OUT/" 2>/dev/null
    tail -12 $W/calibrate.txt 2>/dev/null
    for f in gemms memory; do echo "== $f"; tail -c 1500 $W/$f.log 2>/dev/null | cut -c1-300
      [ -e $W/$f.done ] && echo "$f DONE"; done
    echo "at $(date +%T)" ;;
  *) echo "usage: $0 start SECONDS | poll SECONDS" >&2; exit 2 ;;
esac
