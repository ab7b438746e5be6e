#!/usr/bin/env bash
# The GPU check of docs/performance.md, as one short script (about 5 minutes on one GPU).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]      # default OUT_DIR: $OUT, else benchmarks/results
#
# Needs the environment of `pip install -c constraints.txt -e ".[gpu]"` (TensorFlow with its
# CUDA wheels); it stops at once if TensorFlow sees no GPU. It writes gpu_devices.txt and
# scaling_gpu.{json,md} (the scaling benchmark at GPU-sized batches, every execution mode).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-benchmarks/results}}"
mkdir -p "$out"
python="${PYTHON:-.venv/bin/python}"
export TF_CPP_MIN_LOG_LEVEL=2 TF_FORCE_GPU_ALLOW_GROWTH=true

"$python" - <<'PY' | tee "$out/gpu_devices.txt"
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
print("TensorFlow", tf.__version__, "GPUs:", gpus)
if not gpus:
    raise SystemExit("no GPU visible to TensorFlow: install the [gpu] extra (CUDA wheels)")
for gpu in gpus:
    print(tf.config.experimental.get_device_details(gpu))
PY

timeout 480 "$python" benchmarks/bench_scaling.py --tokens 1,64,1024,4096,16384 \
    --experts 4,8,16 --subcarriers 64,256 --repeats 2 --out "$out/scaling_gpu.json"
