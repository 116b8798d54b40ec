#!/usr/bin/env bash
# One call on the lent GPU machine (about 9 minutes), most valuable results first: versions; the
# Triton backend's correctness and latency beside PyTorch (bench/gpu_check.py, bounded by
# CHECK_BUDGET seconds); torch.compile max-autotune on resnet50; fastcnn's autotuner and its disk
# cache; the `gpu` tests (GPU_TESTS, a pytest -k expression); and, when asked for, the
# pytest-benchmark suite (BENCH_MODELS). The log and the results go to $OUT.
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
# 1. correctness of the families not yet run on a GPU, then float16 latency of the headline models at
#    batch 1 and 256 against eager, eager in a CUDA graph, torch.compile and the torch backend.
CHECK_BUDGET=${CHECK_BUDGET:-240}
step gpu_check timeout $((CHECK_BUDGET + 90)) "$PY" bench/gpu_check.py --out "$OUT" --budget "$CHECK_BUDGET" \
    --correct-share 0.35 --correct-models "${CORRECT_MODELS:-lenet5,alexnet,zfnet,vgg16,nin,bn_inception,inception_v4,inception_resnet_v2,preact_resnet50}" \
    --models "${LATENCY_MODELS:-resnet50,googlenet,densenet121,se_resnet50}" --batches "${BATCHES:-1,256}" ${CHECK_ARGS:-}
# 2. torch.compile max-autotune, on resnet50 alone (its compile takes minutes).
if [ "${MAX_AUTOTUNE:-1}" = 1 ]; then
    step max_autotune timeout 200 "$PY" bench/gpu_check.py --out "$OUT" --budget 170 --correct-models= \
        --models resnet50 --batches 1,256 --impls pytorch-eager,torch-compile-max-autotune,fastcnn-triton
fi
# 3. fastcnn's own autotuner: tune resnet50 (batch 1), then a second process must find the cache.
if [ "${AUTOTUNE:-1}" = 1 ]; then
    export FASTCNN_CACHE_DIR="$OUT/cache"
    for attempt in tune cached; do
        step "autotune_$attempt" timeout 150 "$PY" -m fastcnn run resnet50 --device cuda --dtype float16 --batch 1 \
            --autotune --repeat 50
    done
fi
# 4. the `gpu` tests (a pytest -k expression; by default the engine's buckets, its lock, dependent launches).
GPU_TESTS=${GPU_TESTS-batches or concurrent or dependent}
if [ -n "$GPU_TESTS" ]; then
    step gpu_tests timeout "${GPU_TESTS_TIMEOUT:-240}" "$PY" -m pytest -q -m gpu -p no:cacheprovider tests \
        -k "$GPU_TESTS" --durations=10
fi
for model in ${BENCH_MODELS:-}; do  # one model per pytest run and JSON file: a cut-off run keeps the rest
    FASTCNN_BENCH_MODELS=$model step "bench_$model" timeout 240 "$PY" -m pytest -q -p no:cacheprovider \
        bench/test_latency.py -k "${BENCH_FILTER:-cuda}" --benchmark-json="$OUT/bench_$model.json" \
        --benchmark-columns=min,median,mean,iqr,rounds --benchmark-sort=name
done
exit $status
