#!/usr/bin/env bash
# The GPU runs that issues 10 and 12 still need, one device call per step (each under 10 min):
#   bash benchmarks/device_part2.sh strict    # offline part 2, strict guard, the 9 problems
#   bash benchmarks/device_part2.sh library   # the same, library guard
#   bash benchmarks/device_part2.sh scale     # evaluations per minute; CUDA under the keeper
# Run through the device tool with carry [".whl"] (wheels from ../shared/device/wheels.sh);
# results go to $OUT. Afterwards, here:
#   python benchmarks/offline_part1.py --report <fetched>/off2 > benchmarks/offline-part2-h100.md
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .whl/*.whl >/dev/null 2>&1 || true
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH KERNELWRIGHT_CACHE_DIR=/tmp/kwc \
    PYTHONUNBUFFERED=1 KERNELWRIGHT_TRACKING__ENABLED=false KERNELWRIGHT_MEMORY__EMBEDDER=hash
mkdir -p /tmp/kwc/hardware "$OUT"
cp benchmarks/results/h100-calibrated-profile.json /tmp/kwc/hardware/nvidia-h100-80gb-hbm3.json
P=examples/problems
PROBLEMS="$P/level1/07_matmul.py $P/level1/08_matmul_transposed_b.py
  $P/level1/12_small_batched_matmul.py $P/level2/01_linear_bias_relu_scale.py
  $P/level2/02_linear_gelu_layernorm.py $P/level2/03_conv_relu_bias.py
  $P/level2/06_matmul_sum_rows.py $P/level3/01_mlp.py $P/level3/02_attention_block.py"
case "${1:-}" in
  strict|library)
    # shellcheck disable=SC2086
    python3 benchmarks/offline_part1.py --budget 6 --guard "$1" --out "$OUT/off2" $PROBLEMS \
      2>&1 | tee "$OUT/off2-$1.log"
    python3 benchmarks/offline_part1.py --report "$OUT/off2" | tail -20 ;;
  scale)
    python3 -m kernelwright.cli eval --explain-sandbox --device cuda | tee "$OUT/sandbox-explain.txt"
    python3 -m kernelwright.cli eval examples/problems/level1/01_relu.py \
      examples/candidates/level1/01_relu.py --device cuda 2>&1 | tail -5 | tee "$OUT/relu-keeper.txt"
    python3 benchmarks/eval_throughput.py --candidates 16 --gpus 1 --out "$OUT/throughput-1gpu.json"
    python3 benchmarks/eval_throughput.py --candidates 16 --gpus 1 --per-gpu 2 \
      --out "$OUT/throughput-1gpu-2workers.json" ;;
  *) echo "usage: $0 strict|library|scale" >&2; exit 2 ;;
esac
