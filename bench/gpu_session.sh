#!/usr/bin/env bash
# One call on the lent GPU machine: versions, GPU tests, the main job on CUDA, the CUDA latency
# benchmarks; most valuable results first. The log and one benchmark JSON per model go to $OUT.
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

step versions bash -c "date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1; \
  $PY -c 'import sys, torch, triton, onnx, onnxruntime; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"triton\", triton.__version__, \"onnx\", onnx.__version__, \"onnxruntime\", onnxruntime.__version__)'"
step gpu_tests "$PY" -m pytest -q -m gpu -p no:cacheprovider tests
step main_job "$PY" -m fastcnn run googlenet --batch 8 --device "${DEVICE:-cuda}" --backend torch
# One model per pytest run and JSON file, so that a run cut off by the time limit keeps the rest.
for model in ${BENCH_MODELS:-resnet18 googlenet squeezenet1_1 densenet121}; do
    FASTCNN_BENCH_MODELS=$model step "bench_$model" "$PY" -m pytest -q -p no:cacheprovider \
        bench/test_latency.py -k "${BENCH_FILTER:-cuda}" --benchmark-json="$OUT/bench_$model.json" \
        --benchmark-columns=min,median,mean,iqr,rounds --benchmark-sort=name --benchmark-min-rounds=20
done
exit $status
