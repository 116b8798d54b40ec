#!/usr/bin/env bash
# One call on the lent GPU machine, most valuable results first: versions; the Triton backend's
# correctness and latency beside PyTorch (bench/gpu_check.py, bounded by CHECK_BUDGET seconds);
# then, when asked for, the `gpu` tests (GPU_TESTS, a pytest -k expression) and the pytest-benchmark
# suite (BENCH_MODELS). The log and the results go to $OUT.
#   run on the device:  bash bench/gpu_session.sh
#   dry run here:       OUT=/tmp/out bash bench/gpu_session.sh   (GPU parts skip without CUDA)
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/fastcnn-gpu}
mkdir -p "$OUT"
PY=${PY:-python3}
status=0

step() {  # step NAME COMMAND...: run COMMAND, log to $OUT/session.log, remember a failure
    local name=$1; shift
    echo "=== $name: $*" | tee -a "$OUT/session.log"
    "$@" 2>&1 | tee -a "$OUT/session.log"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc" | tee -a "$OUT/session.log"
    [ "$rc" -eq 0 ] || status=1
}

step versions bash -c "date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1; \
  $PY -c 'import sys, torch, triton, onnx, onnxruntime; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"triton\", triton.__version__, \"onnx\", onnx.__version__, \"onnxruntime\", onnxruntime.__version__)'"
CHECK_BUDGET=${CHECK_BUDGET:-300}
step gpu_check timeout $((CHECK_BUDGET + 90)) "$PY" bench/gpu_check.py --out "$OUT" --budget "$CHECK_BUDGET" \
    ${CHECK_ARGS:-}
if [ -n "${GPU_TESTS:-}" ]; then
    step gpu_tests timeout "${GPU_TESTS_TIMEOUT:-240}" "$PY" -m pytest -q -m gpu -p no:cacheprovider tests \
        -k "$GPU_TESTS" --durations=10
fi
for model in ${BENCH_MODELS:-}; do  # one model per pytest run and JSON file: a cut-off run keeps the rest
    FASTCNN_BENCH_MODELS=$model step "bench_$model" timeout 240 "$PY" -m pytest -q -p no:cacheprovider \
        bench/test_latency.py -k "${BENCH_FILTER:-cuda}" --benchmark-json="$OUT/bench_$model.json" \
        --benchmark-columns=min,median,mean,iqr,rounds --benchmark-sort=name
done
exit $status
