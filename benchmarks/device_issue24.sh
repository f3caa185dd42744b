#!/usr/bin/env bash
# The fp32-accurate GEMM issue on the device machine, with carry [".device"] (wheels and the
# KernelBench dev set from ../shared/device/prepare.sh):
#   bash benchmarks/device_issue24.sh start N   # calibrate, start the bench in the background, poll N s
#   bash benchmarks/device_issue24.sh poll N    # wait up to N s more; copy what finished to $OUT
# The bench (benchmarks/fp32_gemms.py) resumes from benchmarks/results/fp32-gemms-h200/gemms.jsonl
# as carried, so a later machine continues where an earlier one stopped.
set -uo pipefail
W=/tmp/kw24
case "${1:-}" in
  start)
    pkill -f fp32_gemms.py; pkill -f kernelwright; sleep 2
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
        .device/whl/*.whl >/dev/null 2>&1
    rm -rf $W && mkdir -p $W && cp -r kernelwright benchmarks examples tests pyproject.toml .device/kb-dev $W/
    mkdir -p $W/benchmarks/results/fp32-gemms-h200
    cat > /tmp/kw24env <<EOV
export PYTHONPATH=/tmp/site:$W PATH=/tmp/site/bin:\$PATH KERNELWRIGHT_CACHE_DIR=/tmp/kwc \
    PYTHONUNBUFFERED=1 KERNELWRIGHT_TRACKING__ENABLED=false KERNELWRIGHT_MEMORY__EMBEDDER=hash
EOV
    . /tmp/kw24env
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $W/versions.txt
    python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)' \
        | tee -a $W/versions.txt
    (cd $W && setsid nohup bash -c ". /tmp/kw24env; ls /tmp/kwc/hardware/*.json || python3 -m kernelwright.cli hw calibrate \
      > calibrate.txt 2>&1; cp /tmp/kwc/hardware/*.json calibrated.json; \
      python3 benchmarks/fp32_gemms.py kb-dev/level1 kb-dev/level2 kb-dev/level3 \
      --out benchmarks/results/fp32-gemms-h200/gemms.jsonl > bench.log 2>&1; touch done" \
      </dev/null >/dev/null 2>&1 &)
    echo "started $(date +%T)"
    bash "$0" poll "${2:-500}" ;;
  poll)
    end=$((SECONDS + ${2:-500}))
    while [ ! -e $W/done ] && [ $SECONDS -lt $end ]; do sleep 5; done
    mkdir -p "$OUT"
    cp $W/versions.txt $W/calibrate.txt $W/calibrated.json $W/bench.log "$OUT/" 2>/dev/null
    cp $W/benchmarks/results/fp32-gemms-h200/gemms.jsonl "$OUT/" 2>/dev/null
    cat $W/calibrate.txt 2>/dev/null | tail -20
    tail -c 3000 $W/bench.log 2>/dev/null | cut -c1-400
    [ -e $W/done ] && echo "BENCH DONE $(date +%T)" ;;
  *) echo "usage: $0 start SECONDS | poll SECONDS" >&2; exit 2 ;;
esac
