#!/usr/bin/env bash
# One call on the lent GPU machine: versions, the Triton backend's correctness on the GPU, the
# `gpu` tests, the main job on CUDA, the CUDA latency benchmarks; most valuable results first. The log and one benchmark JSON per model go to $OUT.
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
# Most valuable first. 1: the Triton backend is right on a real GPU (reduced-size networks and
# every kernel's own tests on CUDA tensors, then the compile check against this Triton's ptxas).
step triton_networks timeout 300 "$PY" -m pytest -q -p no:cacheprovider tests/backends/test_triton_networks.py \
    tests/kernels -m "not slow"
# 2: every zoo model at full size in float32/float16/bfloat16 against torch (the `gpu` tests).
step gpu_tests timeout 420 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests -x --durations=20
# 3: latency, the Triton backend beside eager, torch.compile and the torch backend.
step main_job "$PY" -m fastcnn run googlenet --batch 8 --device "${DEVICE:-cuda}" --backend triton
# One model per pytest run and JSON file, so that a run cut off by the time limit keeps the rest.
for model in ${BENCH_MODELS:-resnet50 googlenet densenet121 squeezenet1_1}; do
    FASTCNN_BENCH_MODELS=$model step "bench_$model" timeout 240 "$PY" -m pytest -q -p no:cacheprovider \
        bench/test_latency.py -k "${BENCH_FILTER:-cuda}" --benchmark-json="$OUT/bench_$model.json" \
        --benchmark-columns=min,median,mean,iqr,rounds --benchmark-sort=name
done
exit $status
